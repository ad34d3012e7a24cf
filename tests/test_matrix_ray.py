"""edgekit matrix --ray on a real Ray cluster started here: a head node and a second node offering device:cpu0.

The same plan as tests/test_matrix.py gives the same accuracy records as the local executor; a Ray worker
killed in the middle of a build and of a cell is retried, and the matrix completes with one record per cell.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from matrix_support import (RayCluster, accuracy_of, inputs, local_run, plan_text, ray_tasks,  # noqa: F401
                            shared, write_plan)  # (inputs, local_run, shared: fixtures)

from edgekit import api
from edgekit.bundle import read_manifest, verify_files

pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e .[test] brings it)")




@pytest.fixture(scope="module")
def cluster(shared):
    # The cluster's workers share the local run's build cache: the first test reuses its bundles, the
    # fault test builds afresh (--no-cache) so that there is a build to kill.
    env = {**os.environ, "EDGEKIT_CACHE_DIR": str(shared / "cache-local")}
    ray_cluster = RayCluster(env).start()
    yield ray_cluster
    ray_cluster.stop()
    assert not ray_cluster.alive(), "every process of the test's Ray cluster has exited"


def test_ray_matrix_gives_the_local_executors_accuracy_records(cluster, local_run, shared, inputs, tmp_path,
                                                               monkeypatch):
    local, _, _, _, _ = local_run
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(shared / "cache-local"))
    plan = write_plan(inputs, "plan-ray.yaml", plan_text(broken=True))
    lines = []
    result = api.matrix(plan, out=tmp_path / "ray", ray=cluster.address, progress=lines.append)
    assert result.count("ok") == 8 and result.count("failed") == 4, [r.get("error") for r in result.failed]
    assert all("broken.pdparams" in r["error"] for r in result.failed)
    ok = [r for r in result.records if r["status"] == "ok"]
    assert {r["executor"] for r in ok} == {"ray"}
    assert accuracy_of(ok) == accuracy_of(local["records"]), "same bundles, same images: same numbers"
    for r in ok:
        bundle = Path(r["build"]["bundle"])
        assert bundle.parent == tmp_path / "ray" / "bundles"  # written by the driver from the object store
        verify_files(bundle, read_manifest(bundle))
        assert r["bench"]["records"][0]["median_ms"] > 0
    assert any("submitted" in line for line in lines)
    assert (tmp_path / "ray" / "report.html").read_text().count("<svg") == 1


def test_ray_worker_killed_mid_build_and_mid_cell_is_retried_and_no_record_is_lost_or_doubled(
        cluster, inputs, tmp_path, monkeypatch, shared):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(shared / "cache-local"))
    plan = write_plan(inputs, "plan-kill.yaml", plan_text(models=("r18",), recipes="[fp32]"))
    matrix_plan = api.matrix_plan(plan, out=tmp_path / "killed", use_cache=False)  # real builds on the workers
    killed: dict[str, tuple[int, str]] = {}
    stop = threading.Event()

    def killer() -> None:
        # One SIGKILL to a worker running a build, one to a worker validating/benching a cell.
        while not stop.is_set() and len(killed) < 2:
            for kind in ("build", "cell"):
                if kind not in killed:
                    running = ray_tasks(f"{kind} ")
                    if running:
                        pid, title = sorted(running.items())[0]
                        if kind == "cell":
                            time.sleep(1.0)  # inside the cell's work, not its first instant
                        os.kill(pid, signal.SIGKILL)
                        killed[kind] = (pid, title)
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        result = api.matrix(matrix_plan, ray=cluster.address)
    finally:
        stop.set()
        thread.join(10)
    assert set(killed) == {"build", "cell"}, f"both kills landed: {killed}"
    records = [json.loads(line) for line in (tmp_path / "killed" / "records.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["r18-onnx-fp32@cpu0", "r18-openvino-fp32@cpu0"]
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    assert result.count("ok") == 2
    # The killed tasks' retries ran in other processes (Ray reuses a worker across tasks, so a pid that
    # built one bundle may be the one later killed in a cell: compare each kill with its own task's record).
    by_id = {r["id"].split("@")[0]: r for r in records}
    build_pid, build_title = killed["build"]
    assert by_id[build_title.split("ray::build ", 1)[1]]["build"]["pid"] != build_pid
    cell_pid, cell_title = killed["cell"]
    cell = next(r for r in records if r["id"] == cell_title.split("ray::cell ", 1)[1])
    assert cell["device_pid"] != cell_pid and cell["validation"]["top1"] > 0.8
