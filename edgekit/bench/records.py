"""What a benchmark returns: records. Tables, JSON, CSV and plots are views of them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgekit.bench.stats import LatencyStats


@dataclass
class CpuRecord:
    """One (bundle, batch) measurement on a CPU."""

    label: str
    bundle: str
    model: str
    target: str
    bundle_precision: str
    runtime: str
    runtime_version: str
    runtime_precision: str  # what the runtime actually computed in (e.g. OpenVINO's bf16 default)
    batch: int
    input_shape: list[int]
    threads: int | None  # None: the runtime's own default (it offered no control)
    cpu_model: str
    device: str
    end_to_end: bool
    warmup_iterations: int
    rounds: int
    latency: LatencyStats
    throughput_ips: float
    flops_g_per_image: float | None = None
    flops_source: str | None = None
    achieved_gflops: float | None = None  # int8: G integer ops/s, the same 2 x multiply-adds count
    peak_gflops: float | None = None  # the compute peak of this runtime at this precision (int8: GOP/s)
    peak_source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def unstable(self) -> bool:
        return self.latency.unstable

    @property
    def ops_unit(self) -> str:
        """What achieved_gflops and peak_gflops count: integer ops for int8, FLOPs otherwise."""
        return "GOP/s" if self.runtime_precision == "int8" else "GFLOP/s"

    @property
    def fraction_of_peak(self) -> float | None:
        if self.achieved_gflops is None or not self.peak_gflops:
            return None
        return self.achieved_gflops / self.peak_gflops

    def to_dict(self) -> dict[str, Any]:
        """Flat: one level, so JSON and CSV carry the same fields."""
        stats = self.latency.to_dict()
        return {
            "label": self.label, "bundle": self.bundle, "model": self.model, "target": self.target,
            "bundle_precision": self.bundle_precision, "runtime": self.runtime,
            "runtime_version": self.runtime_version, "runtime_precision": self.runtime_precision,
            "batch": self.batch, "input_shape": self.input_shape, "threads": self.threads,
            "cpu_model": self.cpu_model, "device": self.device, "end_to_end": self.end_to_end,
            "warmup_iterations": self.warmup_iterations, "rounds": self.rounds, "iterations": stats.pop("count"),
            **stats, "unstable": self.unstable, "throughput_ips": round(self.throughput_ips, 3),
            "flops_g_per_image": self.flops_g_per_image, "flops_source": self.flops_source,
            "achieved_gflops": _round(self.achieved_gflops), "peak_gflops": _round(self.peak_gflops),
            "ops_unit": self.ops_unit, "peak_source": self.peak_source,
            "fraction_of_peak": _round(self.fraction_of_peak, 4),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Chunk:
    """One slice of the interleaved schedule: `iterations` calls of one bundle at one batch in one round."""

    round: int
    label: str
    batch: int
    iterations: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "label": self.label, "batch": self.batch, "iterations": self.iterations,
                "seconds": round(self.seconds, 4)}


@dataclass
class BenchReport:
    """Everything one `edgekit bench` call measured (kind "cpu"), ran on a GPU ("gpu"), or looked up ("reference")."""

    kind: str
    records: list = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    ratios: list[dict[str, Any]] = field(default_factory=list)
    peaks: list[dict[str, Any]] = field(default_factory=list)
    physical_peak: dict[str, Any] | None = None  # edgekit.bench.limits: cores x clock x FLOP/cycle (--peak)
    schedule: list[Chunk] = field(default_factory=list)
    reference: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": self.host, "config": self.config,
                "records": [r.to_dict() for r in self.records], "ratios": self.ratios, "peaks": self.peaks,
                "physical_peak": self.physical_peak, "reference": self.reference, "accuracy": self.accuracy, "warnings": self.warnings,
                "schedule": [c.to_dict() for c in self.schedule]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
