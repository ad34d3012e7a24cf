"""The local device: this machine, in this process, through the bundle's runtime adapter and `portable`."""

from __future__ import annotations

from edgekit import portable
from edgekit.devices.base import BatchCollector, DeviceJob, DeviceRun, Progress, no_progress
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing
from edgekit.targets import adapter_of


class _TimeLimit(Exception):
    pass


def run_pipeline(images, pp: Preprocessing, infer, batch: int, workers: int | None, collector: BatchCollector,
                 progress: Progress, phase: str = "run", timeout: float | None = None) -> tuple[dict, str | None]:
    """Classify `images` into `collector`; returns (timings, why it stopped early or None).

    An interrupt, the time limit or a runtime failure after some batches keeps
    what was done: the caller reports it as partial instead of losing it.
    """
    total = len(images)
    stats = {"seconds": 0.0, "infer_seconds": 0.0, "images": 0}

    def on_batch(positions, logits, failures, done, live):
        collector.add(positions, logits, failures, done)
        stats.update(live)
        progress(phase, done, total, None)
        if timeout is not None and live["seconds"] > timeout and done < total:
            raise _TimeLimit()

    try:
        pp_dict = pp.to_dict()
        # The same decode + preprocess + batch loop the device agent runs: one implementation.
        portable.evaluate(total, lambda i: portable.preprocess(portable.decode(images[i]), pp_dict), infer, batch,
                          workers or portable.default_workers(), on_batch)
    except KeyboardInterrupt:
        return stats, f"interrupted after {collector.done} of {total} images"
    except _TimeLimit:
        return stats, f"over the {timeout:g} s time limit after {collector.done} of {total} images"
    except EdgekitError as exc:
        if not collector.done:
            raise
        return stats, f"the runtime failed after {collector.done} of {total} images: {exc}"
    return stats, None


def run_here(job: DeviceJob, infer, progress: Progress, timeout: float | None, *, device: dict,
             runtime: dict) -> DeviceRun:
    """Decode and preprocess the job's images on this host and classify them with `infer` (a runtime opened
    here, or one that runs elsewhere and takes tensors, like the native Lite runner)."""
    pp = Preprocessing.from_dict(job.manifest["preprocessing"])
    collector = BatchCollector()
    stats, stopped = run_pipeline(job.images, pp, infer, job.batch, job.workers, collector, progress,
                                  timeout=timeout)
    positions, logits = collector.arrays(job.manifest["model"]["num_classes"])
    return DeviceRun(positions=positions, logits=logits, failures=collector.failures, done=collector.done,
                     seconds=stats["seconds"], infer_seconds=stats["infer_seconds"], device=device,
                     runtime=runtime, partial=stopped is not None, partial_reason=stopped)


class LocalDevice:
    address = "local"

    def __init__(self, timeout: float | None = None):
        self.timeout = timeout

    def run(self, job: DeviceJob, progress: Progress = no_progress) -> DeviceRun:
        backend = adapter_of(job.manifest).open_bundle(job.bundle, job.manifest, job.threads or None)
        return run_here(job, backend, progress, self.timeout,
                        device={"kind": "local", "address": "local", **portable.device_info()},
                        runtime={"name": job.runtime, "version": backend.version, "precision": backend.precision})
