"""Latency statistics of one (bundle, batch) measurement, in milliseconds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

# A run whose latencies spread more than this (std / mean) is flagged as unstable.
# trtexec warns at 1% for GPU compute time; CPU runs on shared machines are noisier,
# so 10% is where the median starts to depend on when you measured.
UNSTABLE_CV = 0.10


@dataclass(frozen=True)
class LatencyStats:
    count: int
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    cv: float  # coefficient of variation: std / mean

    @property
    def unstable(self) -> bool:
        return self.cv > UNSTABLE_CV

    @classmethod
    def from_ms(cls, samples_ms: Sequence[float]) -> "LatencyStats":
        values = np.asarray(samples_ms, dtype=np.float64)
        if values.size == 0:
            raise ValueError("no latency samples")
        mean = float(values.mean())
        std = float(values.std())
        p50, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
        return cls(count=int(values.size), median_ms=p50, mean_ms=mean, p90_ms=p90, p99_ms=p99,
                   min_ms=float(values.min()), max_ms=float(values.max()), std_ms=std,
                   cv=std / mean if mean > 0 else 0.0)

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int]) -> "LatencyStats":
        return cls.from_ms(np.asarray(samples_ns, dtype=np.float64) / 1e6)

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def images_per_second(batch: int, mean_ms: float) -> float:
    """Throughput of back-to-back batches: images per second at the mean latency."""
    return batch * 1000.0 / mean_ms if mean_ms > 0 else 0.0
