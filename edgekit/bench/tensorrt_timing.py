"""One TensorRT measurement as trtexec summarises it: GPU compute time and host latency, min/median/p99.

Both the trtexec path (parsed from its output) and the Python API path
(CUDA events and a host clock) produce a TrtMeasurement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class TimingSummary:
    """One trtexec summary line (ms); a percentile the tool did not print is None."""

    min_ms: float
    max_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "TimingSummary":
        values = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p95, p99 = (float(v) for v in np.percentile(values, [50, 90, 95, 99]))
        return cls(float(values.min()), float(values.max()), float(values.mean()), p50, p90, p95, p99)

    def to_dict(self) -> dict:
        return {k: None if v is None else round(v, 5) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class TrtMeasurement:
    throughput_qps: float
    host_latency: TimingSummary  # trtexec's "Latency": H2D + GPU compute + D2H
    gpu_compute: TimingSummary
    enqueue: TimingSummary | None = None
    h2d: TimingSummary | None = None
    d2h: TimingSummary | None = None
    total_host_walltime_s: float | None = None
    device: str | None = None
    tensorrt_version: str | None = None
