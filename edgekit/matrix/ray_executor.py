"""The Ray executor: builds as Ray tasks anywhere on a cluster, each device's cells on the node that owns it.

A device is a Ray custom resource: the host a device hangs off (or the machine itself, for `local`)
starts its node with `ray start --address HEAD --num-cpus 1 --resources '{"device:NAME": 1}'`. A cell's
device task asks for `device:NAME: 1` and one CPU, so a device runs one cell at a time and, on a
one-CPU node, never beside a build. Bundles travel in Ray's object store (a tar of the bundle), so nodes
need no shared disk; the driver writes each one under <out>/bundles. A task whose process dies (killed,
out of memory, node lost) is retried by Ray (`max_retries`); a cell's own failure is a result, not retried.
Ray is imported only here, only when asked for (`pip install 'edgekit[ray]'`).
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.matrix.cells import build_stage, device_stage
from edgekit.matrix.executors import Progress, Sink, describe_build, pending_builds
from edgekit.matrix.plan import BuildSpec, CellSpec
from edgekit.scratch import scratch_dir

RAY_MISSING = ("--ray needs Ray, which is an optional extra: pip install 'edgekit[ray]' (ray==2.60.0) here and "
               "on every node of the cluster, or run without --ray (the local executor needs nothing).")


def import_ray():
    try:
        import ray
    except ImportError:
        raise EdgekitError(RAY_MISSING) from None
    return ray


def pack(bundle: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(bundle).as_posix())
    return buffer.getvalue()


def unpack(data: bytes, dst: Path) -> Path:
    """Extract a packed bundle to `dst` (atomically: a bundle directory appears whole or not at all)."""
    from edgekit.bundle import atomic_directory

    with atomic_directory(dst, force=True) as tmp:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")  # "data": no absolute paths, links out or devices
    return dst


def build_task(build: BuildSpec) -> tuple[dict[str, Any], bytes | None]:
    """On any node: the build (through that node's cache), returned with the bundle's bytes."""
    work = scratch_dir("edgekit-matrix-build")
    try:
        result = build_stage(build, out=str(work / build.id))
        return result, pack(Path(result["bundle"])) if result.get("status") == "ok" else None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def device_task(cell: CellSpec, built: tuple[dict[str, Any], bytes | None]) -> dict[str, Any]:
    """On the node holding device:NAME: validate and bench a copy of the bundle there."""
    result, data = built
    if result.get("status") != "ok" or data is None:
        return {"status": "failed", "stage": "build", "error": result.get("error", "build failed")}
    work = scratch_dir("edgekit-matrix-cell")
    try:
        return device_stage(cell, str(unpack(data, work / cell.build.id)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str, *, out: Path, max_retries: int = 3):
        self.address, self.out, self.max_retries = address, out, max_retries

    def _connect(self, ray):
        import logging

        try:
            ray.init(address=self.address, namespace="edgekit-matrix", log_to_driver=False,
                     logging_level=logging.ERROR, configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EdgekitError(f"--ray {self.address}: cannot connect to a Ray cluster there ({exc}). Start one "
                               "with `ray start --head --port 6379` (and `ray start --address HEAD:6379 --resources "
                               "'{\"device:NAME\": 1}'` on each device host), then pass --ray HEAD:6379.") from None

    def check_devices(self, ray, cells: list[CellSpec]) -> None:
        offered = ray.cluster_resources()
        missing = sorted({c.device.name for c in cells if f"device:{c.device.name}" not in offered})
        if missing:
            have = sorted(k for k in offered if k.startswith("device:")) or ["none"]
            raise EdgekitError(
                f"--ray {self.address}: no node offers {', '.join(f'device:{m}' for m in missing)} (the cluster "
                f"has {', '.join(have)}). On the host of each device run `ray start --address {self.address} "
                f"--num-cpus 1 --resources '{{\"device:{missing[0]}\": 1}}'`, then re-run.")

    def run(self, cells: list[CellSpec], sink: Sink, progress: Progress) -> None:
        ray = import_ray()
        self._connect(ray)
        try:
            self._run(ray, cells, sink, progress)
        finally:
            ray.shutdown()

    def _run(self, ray, cells: list[CellSpec], sink: Sink, progress: Progress) -> None:
        for cell in cells:
            if cell.build.skipped:
                sink(cell, None, None)
        runnable = [c for c in cells if not c.build.skipped]
        if not runnable:
            return
        self.check_devices(ray, runnable)
        remote_build = ray.remote(build_task)
        remote_device = ray.remote(device_task)
        builds = {b.id: remote_build.options(num_cpus=1, max_retries=self.max_retries, name=f"build {b.id}")
                  .remote(b) for b in pending_builds(runnable)}
        progress(f"submitted {len(builds)} builds and {len(runnable)} cells to the Ray cluster at {self.address}")
        tasks = {remote_device.options(num_cpus=1, resources={f"device:{c.device.name}": 1},
                                       max_retries=self.max_retries, name=f"cell {c.id}")
                 .remote(c, builds[c.build.id]): c for c in runnable}
        written: dict[str, dict[str, Any]] = {}
        while tasks:
            ready, _ = ray.wait(list(tasks), num_returns=1)
            cell = tasks.pop(ready[0])
            build = written.get(cell.build.id) or self._take_build(ray, cell, builds[cell.build.id], progress)
            written[cell.build.id] = build
            try:
                device = ray.get(ready[0])
            except Exception as exc:  # retries used up: the task's process kept dying
                device = {"status": "failed", "stage": "device",
                          "error": f"Ray task for {cell.id} failed after {self.max_retries} retries: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
            sink(cell, build, device)

    def _take_build(self, ray, cell: CellSpec, ref, progress: Progress) -> dict[str, Any]:
        """The build's result, its bundle written under <out>/bundles on this (the driver's) machine."""
        try:
            result, data = ray.get(ref)
        except Exception as exc:
            return {"status": "failed", "stage": "build",
                    "error": f"Ray build task failed after {self.max_retries} retries: {type(exc).__name__}"}
        if result.get("status") == "ok" and data is not None:
            result = {**result, "built_at": result.get("bundle"),
                      "bundle": str(unpack(data, self.out / "bundles" / cell.build.id))}
        progress(describe_build(cell.build, result))
        return result
