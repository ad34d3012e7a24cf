"""What every device is asked to do and what it hands back.

A device classifies the images of a job with a bundle and returns the logits
of every image that decoded, in sample order, plus each failure with its
reason. Metrics are computed on the host from those logits, so a number never
depends on where it was computed, only on the logits the device produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

# progress(phase, done, total, note): phase is "hash", "push", "run" or "reference"; note is a one-line message.
Progress = Callable[[str, int, int, "str | None"], None]


def no_progress(phase: str, done: int, total: int, note: str | None = None) -> None:
    pass


@dataclass(frozen=True)
class DeviceJob:
    """A bundle and the images to classify with it (the device never sees labels)."""

    bundle: Path
    manifest: dict[str, Any]
    images: tuple[Path, ...]
    batch: int
    threads: int | None = None
    workers: int | None = None

    @property
    def runtime(self) -> str:
        return self.manifest["target"]["runtime"]

    @property
    def model_file(self) -> Path:
        return self.bundle / self.manifest["artifact"]["model_file"]


@dataclass
class DeviceRun:
    positions: np.ndarray  # int64: positions into the job's images that produced logits
    logits: np.ndarray  # float32 (len(positions), classes)
    failures: list[tuple[int, str]]  # (position, reason) of images that did not decode
    done: int  # images 0..done-1 were processed (decoded and classified, or failed)
    seconds: float  # decode + inference wall time on the device's clock
    infer_seconds: float  # inference alone
    device: dict[str, Any]  # kind, address, machine, cpu, cores, python, ...
    runtime: dict[str, Any]  # name, version, precision
    partial: bool = False
    partial_reason: str | None = None
    notes: list[str] = field(default_factory=list)


class BatchCollector:
    """Accumulates batches as they arrive; always holds a consistent prefix of the run."""

    def __init__(self, start: int = 0):
        self.positions: list[np.ndarray] = []
        self.logits: list[np.ndarray] = []
        self.failures: list[tuple[int, str]] = []
        self.done = start

    def add(self, positions, logits, failures, done: int) -> None:
        if logits is not None and len(positions):
            self.positions.append(np.asarray(positions, dtype=np.int64))
            self.logits.append(np.asarray(logits, dtype=np.float32))
        self.failures.extend((int(p), str(r)) for p, r in failures)
        self.done = done

    @property
    def images(self) -> int:
        return sum(len(p) for p in self.positions)

    def arrays(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.positions:
            return np.zeros(0, np.int64), np.zeros((0, num_classes), np.float32)
        return np.concatenate(self.positions), np.concatenate(self.logits)


class Device(Protocol):
    address: str

    def run(self, job: DeviceJob, progress: Progress = no_progress) -> DeviceRun: ...
