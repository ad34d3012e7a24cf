"""edgekit matrix with the local executor: plan checks, the run, records, resume after a kill, the report.

A 2 models x 2 targets x 2 recipes matrix (ResNet18 / ResNet18_vd trained on the digits, onnx / openvino,
fp32 / fp16) plus a model whose weights file is garbage, on one device.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from matrix_support import accuracy_of, inputs, local_run, plan_text, shared, write_plan  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.matrix.chart import Point, pareto_front

runner = CliRunner()




def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- plan checks (no work)


@pytest.mark.parametrize("body, expected", [
    ("models: [ResNet18]\ntargets: [onnx]\nrecipies: [fp32]\n", ["unknown key `recipies`", "recipes"]),
    ("models: [ResNet18]\n", ["`targets` is required"]),
    ("models: [ResNet5O]\ntargets: [onnx]\n", ["models[0] (ResNet5O)", "ResNet50"]),
    ("models: [ResNet18]\ntargets: [onyx]\n", ["`targets[0]`", "onyx"]),
    ("models: [ResNet18]\ntargets: [onnx]\nrecipes: [ptq-int8]\n", ["needs labeled images", "calib:"]),
    ("models: [{name: ResNet18, weigths: w.pdparams}]\ntargets: [onnx]\n", ["unknown key `models[0].weigths`"]),
    ("models: [{name: ResNet18, weights: missing.pdparams}]\ntargets: [onnx]\n", ["missing.pdparams"]),
    ("models: [ResNet18]\ntargets: [onnx]\nbench: {iterations: zero}\n", ["`bench.iterations`", "'zero'"]),
    ("models: [ResNet18]\ntargets: [onnx]\ndevices: [local, local]\n", ["names 'local' twice"]),
    ("models: [ResNet18]\ntargets: [onnx]\ndevices: ['ftp://x']\n", ["`devices[0]`"]),
    ("models: [ResNet18\n", ["not valid YAML"]),
    ("- just a list\n", ["must be a YAML mapping"]),
])
def test_bad_plan_files_name_the_file_and_the_key_and_exit_2(tmp_path, body, expected):
    plan = write_plan(tmp_path, "plan.yaml", body)
    result = runner.invoke(app, ["matrix", str(plan), "--dry-run"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "Traceback" not in text and str(plan) in text.replace("\n", "")
    for part in expected:
        assert part in text, (part, text)


def test_dry_run_expands_cells_and_says_why_impossible_ones_are_skipped(inputs, tmp_path):
    plan = write_plan(inputs, "dry.yaml", plan_text(models=("r18",), targets="[onnx, x86-lite, arm-lite]",
                                                    recipes="[fp32, ptq-int8]", device="local"))
    result = runner.invoke(app, ["matrix", str(plan), "--dry-run", "--json", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    cells = {c["id"]: c for c in json.loads(result.stdout)["cells"]}
    assert len(cells) == 6
    assert "does not support precision 'int8'" in cells["r18-x86-lite-ptq-int8@local"]["skipped"]
    assert cells["r18-onnx-ptq-int8@local"]["skipped"] is None
    # The ARM .nb is built, but this x86 host cannot run it: validate and bench say why.
    arm = cells["r18-arm-lite-fp32@local"]
    assert arm["skipped"] is None and "do not run on this host" in arm["validate_skipped"]
    assert not (tmp_path / "o").exists(), "a dry run builds and writes nothing"


def test_a_bundle_goes_only_to_the_devices_that_run_it(inputs, tmp_path):
    from edgekit.demo_matrix import arm_emulator

    plan = write_plan(inputs, "two.yaml", plan_text(models=("r18",), targets="[onnx, arm-lite]", recipes="[fp32]",
                                                    device="local, {name: arm, address: 'emu://aarch64'}"))
    result = runner.invoke(app, ["matrix", str(plan), "--dry-run", "--json", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    cells = {c["id"]: c for c in json.loads(result.stdout)["cells"]}
    assert "r18-onnx-fp32@local" in cells and "r18-onnx-fp32@arm" not in cells  # emu:// runs .nb files only
    if arm_emulator()[0]:  # the .nb runs under emulation: it is not also listed as skipped on this host
        assert set(cells) == {"r18-onnx-fp32@local", "r18-arm-lite-fp32@arm"}
    else:  # no device can run it: both cells stay, each saying why
        assert "do not run on this host" in cells["r18-arm-lite-fp32@local"]["validate_skipped"]
        assert cells["r18-arm-lite-fp32@arm"]["validate_skipped"]


def test_nothing_imports_ray_unless_asked(inputs):
    plan = write_plan(inputs, "dry.yaml", plan_text(models=("r18",)))
    code = ("import sys; from typer.testing import CliRunner; from edgekit.cli import app; "
            f"r = CliRunner().invoke(app, ['matrix', {str(plan)!r}, '--dry-run']); "
            "assert r.exit_code == 0, r.output; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().endswith("False"), out.stderr[-2000:]
    # Asked for without the extra installed (an import that fails, as Python makes it for a None entry).
    code = ("import sys; sys.modules['ray'] = None; from typer.testing import CliRunner; from edgekit.cli import app; "
            f"r = CliRunner().invoke(app, ['matrix', {str(plan)!r}, '--ray', '127.0.0.1:1']); "
            "print(r.exit_code); print(r.output)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.startswith("2\n") and "pip install 'edgekit[ray]'" in out.stdout, out.stdout + out.stderr


def test_pareto_front_keeps_exactly_the_undominated_points():
    def p(name, ms, top1):
        return Point(name, "d", name, "onnx", "fp32", ms, top1)

    points = [p("fast-bad", 1.0, 0.50), p("slow-good", 4.0, 0.95), p("mid", 2.0, 0.90),
              p("dominated", 3.0, 0.80), p("tie-slower", 2.5, 0.90)]
    assert [q.cell for q in pareto_front(points)] == ["fast-bad", "mid", "slow-good"]


# --------------------------------------------------------------------------- the run


def test_local_matrix_builds_validates_benches_and_records_every_cell(local_run):
    result, out, seconds, rc, stderr = local_run
    # The broken model's cells fail; the exit code says so, and everything else completed.
    assert rc == 1, stderr[-3000:]
    records = _records(out)
    assert len(records) == len({r["key"] for r in records}) == 12
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] == "failed"]
    assert len(ok) == 8 and len(failed) == 4
    for r in failed:
        assert r["model_id"] == "broken" and r["stage"] == "build" and "broken.pdparams" in r["error"]
    for r in ok:
        v, bench = r["validation"], r["bench"]["records"][0]
        assert v["images"] == 100 and v["top1"] > 0.8, r["id"]
        assert v["reference"]["kind"] and v["reference"]["agreement"] >= 0.95, r["id"]
        assert bench["batch"] == 1 and bench["median_ms"] > 0 and bench["iterations"] >= 10
        assert r["build"]["precision"] == r["recipe"] and not r["build"]["cache"]["hit"]
        # The validation also joined the bundle's manifest, as `edgekit validate` appends it.
        manifest = json.loads((Path(r["build"]["bundle"]) / "edgekit.json").read_text())
        assert manifest["validations"][-1]["metrics"]["top1"] == v["top1"]
    assert {r["id"] for r in ok} == {f"{m}-{t}-{p}@cpu0" for m in ("r18", "r18vd") for t in ("onnx", "openvino")
                                     for p in ("fp32", "fp16")}
    assert result["ok"] == 8 and result["failed"] == 4 and "FAILED in build" in stderr


def test_report_is_markdown_and_self_contained_html_with_the_chart(local_run):
    _, out, _, _, _ = local_run
    md = (out / "report.md").read_text()
    assert "## Device cpu0 (local)" in md and "![accuracy vs latency, Pareto front](report.png)" in md
    assert md.count("★") >= 2  # the Pareto-front rows, and the legend line
    assert "broken-onnx-fp32@cpu0 | failed (build)" in md
    assert "No cell validated a zoo model with real ImageNet weights" in md
    page = (out / "report.html").read_text()
    assert "<svg" in page and "Pareto front" in page and "src=" not in page and "http" not in page.split("<svg")[0]
    assert (out / "report.png").stat().st_size > 20_000


def test_rerun_resumes_everything_and_a_fresh_out_rebuilds_nothing_from_the_cache(local_run, shared, inputs,
                                                                                   tmp_path):
    result, out, first_seconds, _, _ = local_run
    env = {**os.environ, "EDGEKIT_CACHE_DIR": str(shared / "cache-local")}
    plan = inputs / "plan.yaml"
    # Same out: every ok cell is finished, so only the failed ones run again (and fail again).
    again = subprocess.run([sys.executable, "-c", "from edgekit.cli import app; app()", "matrix", str(plan),
                            "--out", str(out), "--json"], env=env, capture_output=True, text=True, timeout=600)
    record = json.loads(again.stdout)
    assert record["resumed"] == 8 and record["ran"] == 4, again.stderr[-2000:]
    assert "resuming: 8 of 12 cells already finished" in again.stderr
    ok_lines = [r for r in _records(out) if r["status"] == "ok"]
    assert len(ok_lines) == 8, "no finished cell ran twice"
    # A fresh out dir: every build comes out of the cache, byte for byte.
    fresh = tmp_path / "fresh"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from edgekit.cli import app; app()", "matrix", str(plan),
                           "--out", str(fresh), "--json"], env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    cached = {r["id"]: r for r in json.loads(proc.stdout)["records"] if r["status"] == "ok"}
    first = {r["id"]: r for r in result["records"] if r["status"] == "ok"}
    assert set(cached) == set(first)
    for cell, r in cached.items():
        assert r["build"]["cache"]["hit"], cell
        assert r["build"]["files_sha256"] == first[cell]["build"]["files_sha256"], cell
    print(f"\nmatrix: first run {first_seconds:.0f} s; cached re-run into a fresh --out {seconds:.0f} s; "
          f"build stage then {sum(r['build']['seconds'] for r in cached.values()):.1f} s in all vs "
          f"{sum(r['build']['seconds'] for r in first.values()):.1f} s")
    assert sum(r["build"]["seconds"] for r in cached.values()) < 0.3 * sum(r["build"]["seconds"]
                                                                            for r in first.values())
    assert accuracy_of(list(cached.values())) == accuracy_of(list(first.values()))


def test_killed_matrix_resumes_where_it_stopped(local_run, shared, inputs, tmp_path):
    """SIGKILL to the matrix process alone after the second finished cell: its build workers and their children
    die with it, and the re-run completes the rest."""
    from killing import processes_with

    marker = f"EDGEKIT_KILL_TEST={os.getpid()}-{tmp_path.name}"
    env = {**os.environ, "EDGEKIT_CACHE_DIR": str(shared / "cache-local"),  # builds come from the cache: fast
           "EDGEKIT_KILL_TEST": marker.split("=", 1)[1]}
    plan = write_plan(inputs, "kill.yaml", plan_text())
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "from edgekit.cli import app; app()", "matrix", str(plan), "--out", str(out),
           "--jobs", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    records = out / "records.jsonl"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if records.is_file() and records.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 2
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_with(marker)
    for pid in left:  # not to disturb the other tests, whatever the verdict
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, "processes outlived the killed matrix"
    before = _records(out)
    assert 2 <= len(before) < 8, f"the kill landed mid-run ({len(before)} cells had finished)"
    again = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads(again.stdout)
    assert result["resumed"] == len(before) and result["ran"] == 8 - len(before)
    after = _records(out)
    assert len(after) == 8 and len({r["id"] for r in after}) == 8, "no cell lost, none repeated"
    assert after[:len(before)] == before, "the finished cells' records are kept as they were"
