"""The local executor: builds in a process pool sized to the cores, then each device's cells one at a time.

Builds spread over the pool (spawned processes: Paddle does not survive fork); once they are all done,
every device runs its own cells' validation and benchmark in order, one cell at a time, devices side by
side. Benchmarks therefore never share the host with a build, and never with each other on one device.
`jobs=1` runs everything in this process (no pool to start).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from edgekit import children
from edgekit.matrix.cells import build_stage, device_stage
from edgekit.matrix.plan import BuildSpec, CellSpec

# sink(cell, build result or None, device result or None): called once per cell, from any thread.
Sink = Callable[[CellSpec, "dict[str, Any] | None", "dict[str, Any] | None"], None]
Progress = Callable[[str], None]


def describe_build(build: BuildSpec, result: dict[str, Any]) -> str:
    if result.get("status") != "ok":
        return f"build {build.id} FAILED: {result.get('error')}"
    cache = result.get("cache") or {}
    if cache.get("hit"):
        how = f"reused from the cache in {cache['seconds']:.1f} s (first built in {cache.get('build_seconds')} s)"
    else:
        how = f"built in {result['seconds']:.1f} s" + (" (stored in the cache)" if cache.get("stored") else "")
    return f"build {build.id}: {how}"


def pending_builds(cells: list[CellSpec]) -> list[BuildSpec]:
    """The distinct builds the cells need, in plan order (a build shared by several devices runs once)."""
    seen: dict[str, BuildSpec] = {}
    for cell in cells:
        if not cell.build.skipped:
            seen.setdefault(cell.build.id, cell.build)
    return list(seen.values())


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int | None = None):
        self.jobs = max(1, jobs or os.cpu_count() or 1)

    def run(self, cells: list[CellSpec], sink: Sink, progress: Progress) -> None:
        for cell in cells:
            if cell.build.skipped:
                sink(cell, None, None)
        builds = pending_builds(cells)
        results = self._builds(builds, progress)
        ready = [c for c in cells if not c.build.skipped]
        for cell in ready:
            if results[cell.build.id].get("status") != "ok":
                sink(cell, results[cell.build.id], None)
        queues: dict[str, list[CellSpec]] = {}
        for cell in ready:
            if results[cell.build.id].get("status") == "ok":
                queues.setdefault(cell.device.name, []).append(cell)

        def device_queue(queue: list[CellSpec]) -> None:
            for cell in queue:
                progress(f"{cell.id}: validate and bench on {cell.device.address}")
                build = results[cell.build.id]
                sink(cell, build, device_stage(cell, build["bundle"]))

        if len(queues) <= 1:
            for queue in queues.values():
                device_queue(queue)
            return
        with ThreadPoolExecutor(max_workers=len(queues), thread_name_prefix="edgekit-device") as pool:
            for future in [pool.submit(device_queue, q) for q in queues.values()]:
                future.result()

    def _builds(self, builds: list[BuildSpec], progress: Progress) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        total = len(builds)
        workers = min(self.jobs, total)
        if workers <= 1:
            for i, build in enumerate(builds, 1):
                progress(f"[build {i}/{total}] {build.id} ...")
                results[build.id] = build_stage(build)
                progress(f"[build {i}/{total}] {describe_build(build, results[build.id])}")
            return results
        import multiprocessing

        progress(f"building {total} bundles in {workers} processes")
        lock = threading.Lock()
        # Workers die with the matrix process (a SIGKILLed matrix leaves no build running).
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=children.die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(build_stage, build): build for build in builds}
            for done, future in enumerate(as_completed(futures), 1):
                build = futures[future]
                try:
                    results[build.id] = future.result()
                except BrokenProcessPool as exc:  # a worker process died (killed, out of memory)
                    results[build.id] = {"status": "failed", "stage": "build",
                                         "error": f"a build process died ({exc}); re-run to retry this cell"}
                with lock:
                    progress(f"[build {done}/{total}] {describe_build(build, results[build.id])}")
        return results
