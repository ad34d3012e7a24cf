"""The server GPU path: the seed pages' TensorRT method, measured beside their published tables.

Method (as the seed pages and NVIDIA's trtexec do it): the model's ONNX
export at the card's crop size; one TensorRT engine per precision whose
optimization profile covers the requested batches; warm-up; then GPU compute
time (CUDA events around the enqueue) and host latency (H2D + compute + D2H)
reported separately, median and p99. `trtexec` is used when it is on PATH,
the TensorRT Python API (with NVIDIA's cuda-python for streams and events)
otherwise. Nothing here ever reports a non-TensorRT figure as TensorRT.

This module runs the benchmark and keeps its records (GpuRecord); beside it:
`tensorrt_tools` (what is installed), `tensorrt_trtexec` (trtexec commands and
output parsing), `tensorrt_python` (the Python API path), `tensorrt_timing`
(the measurement both paths return).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from edgekit.bench.records import BenchReport
from edgekit.bench.published import GpuProfile, gpu_profile, reference_ms
from edgekit.bench.tensorrt_python import python_api_engine, python_api_measure
from edgekit.bench.tensorrt_timing import TimingSummary
from edgekit.bench.tensorrt_tools import check_gpu_tools
from edgekit.bench.tensorrt_trtexec import (parse_trtexec_output, run_trtexec, trtexec_build_command,
                                            trtexec_run_command)
from edgekit.errors import EdgekitError
from edgekit.scratch import scratch_dir

__all__ = ["run_gpu_bench", "GpuRecord", "GPU_PRECISIONS"]

Progress = Callable[[str], None]

GPU_PRECISIONS = ("fp32", "fp16")


@dataclass
class GpuRecord:
    model: str
    onnx: str
    gpu_profile: str
    gpu: str  # the GPU actually present
    precision: str
    batch: int
    input_shape: list[int]
    tool: str
    tensorrt_version: str | None
    gpu_compute: TimingSummary
    host_latency: TimingSummary
    throughput_qps: float
    reference_ms: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.throughput_qps * self.batch

    @property
    def ratio_to_reference(self) -> float | None:
        """Measured median GPU compute time over the seed's published latency (above 1: slower here)."""
        return None if not self.reference_ms else self.gpu_compute.median_ms / self.reference_ms

    def to_dict(self) -> dict:
        ratio = self.ratio_to_reference
        return {"model": self.model, "onnx": self.onnx, "gpu_profile": self.gpu_profile, "gpu": self.gpu,
                "precision": self.precision, "batch": self.batch, "input_shape": self.input_shape,
                "tool": self.tool, "tensorrt_version": self.tensorrt_version,
                **{f"gpu_compute_{k}": v for k, v in self.gpu_compute.to_dict().items()},
                **{f"host_latency_{k}": v for k, v in self.host_latency.to_dict().items()},
                "throughput_qps": round(self.throughput_qps, 3), "images_per_s": round(self.images_per_s, 3),
                "reference_ms": self.reference_ms, "ratio_to_reference": None if ratio is None else round(ratio, 4),
                "notes": list(self.notes)}


def _resolve_source(target: str) -> tuple[str, Path | None, int]:
    """(zoo model, an fp32 ONNX file to reuse or None, input size) for a model name or a bundle directory."""
    from edgekit.zoo import get_entry

    path = Path(target)
    if path.is_dir():
        from edgekit.bench.subjects import open_bundle

        root, manifest = open_bundle(path)
        model, size = manifest["model"]["name"], int(manifest["preprocessing"]["crop"])
        onnx = None
        if manifest["target"]["format"] == "onnx" and manifest["target"]["precision"] == "fp32":
            onnx = root / manifest["artifact"]["model_file"]
        return model, onnx, size
    get_entry(target)  # unknown names get the zoo's did-you-mean error
    from edgekit.zoo.cards import get_card

    return target, None, get_card(target).crop_size


def run_gpu_bench(target: str, gpu: str, precisions: Sequence[str] | None = None,
                  batches: Sequence[int] = (1, 4, 8), *, duration_s: float = 3.0, iterations: int = 10,
                  warmup_ms: int = 500, data_transfers: bool = True, weights: str | None = None,
                  progress: Progress | None = None) -> BenchReport:
    """Measure `target` (a zoo model or a bundle) with TensorRT and set the seed's figures beside it."""
    profile: GpuProfile = gpu_profile(gpu)
    precisions = tuple(precisions or profile.precisions)
    for p in precisions:
        if p not in GPU_PRECISIONS:
            raise EdgekitError(f"--precision {p!r}: the TensorRT path measures {', '.join(GPU_PRECISIONS)}.")
    model, onnx, size = _resolve_source(target)
    tools = check_gpu_tools()  # before any export: say what is missing at once
    from edgekit.bench.published import reference_rows
    from edgekit.zoo.cards import get_card

    card = get_card(model)
    warnings = []
    present = tools.gpus[0]
    if profile.gpu.lower() not in present.lower():
        warnings.append(f"measured on {present}, not a {profile.gpu}: the reference column is the seed's {profile.gpu} "
                        "figure, so the ratio compares two different GPUs.")
    if len(tools.gpus) > 1:
        warnings.append(f"{len(tools.gpus)} GPUs present ({', '.join(tools.gpus)}); TensorRT used device 0 ({present}).")
    if size != card.crop_size:
        warnings.append(f"{target} runs at {size}x{size}, not the card's {card.crop_size}x{card.crop_size} crop the "
                        "seed measured; the reference column is not comparable.")
    work = scratch_dir("edgekit-trt")
    records: list[GpuRecord] = []
    try:
        if onnx is None:
            from edgekit.build import plan_build, run_build

            if progress:
                progress(f"exporting {model} to ONNX at {size}x{size}")
            onnx = run_build(plan_build(model, "onnx", weights=weights, out=work / "onnx", input_size=size)).path \
                / "model.onnx"
            if weights is None:
                warnings.append(f"{model} was exported with random-init weights (latency does not depend on them).")
        from edgekit.export.paddle import INPUT_NAME

        chw = (3, size, size)
        for precision in precisions:
            engine_file = work / f"{model}-{precision}.engine"
            if progress:
                progress(f"building the TensorRT {precision} engine (batches {min(batches)}..{max(batches)})")
            engine = None
            if tools.trtexec:
                run_trtexec(trtexec_build_command(tools.trtexec, onnx, engine_file, INPUT_NAME, chw, batches,
                                                  precision), f"building the {precision} engine")
            else:
                engine = python_api_engine(onnx, INPUT_NAME, chw, batches, precision)
            for batch in batches:
                if progress:
                    progress(f"TensorRT {precision} batch {batch}")
                if tools.trtexec:
                    measured = parse_trtexec_output(run_trtexec(
                        trtexec_run_command(tools.trtexec, engine_file, INPUT_NAME, chw, batch, warmup_ms, duration_s,
                                            iterations, data_transfers), f"timing batch {batch}"))
                else:
                    measured = python_api_measure(engine, INPUT_NAME, chw, batch, warmup_ms, duration_s, iterations,
                                                  data_transfers)
                records.append(GpuRecord(
                    model=model, onnx=str(onnx), gpu_profile=profile.name, gpu=measured.device or present,
                    precision=precision, batch=batch, input_shape=[batch, *chw], tool=tools.tool,
                    tensorrt_version=measured.tensorrt_version or tools.python_api,
                    gpu_compute=measured.gpu_compute, host_latency=measured.host_latency,
                    throughput_qps=measured.throughput_qps,
                    reference_ms=reference_ms(model, profile.name, precision, batch)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BenchReport(kind="gpu", records=records, host={"gpus": tools.gpus},
                       config={"gpu": profile.name, "precisions": list(precisions), "batches": list(batches),
                               "duration_s": duration_s, "iterations": iterations, "warmup_ms": warmup_ms,
                               "data_transfers": data_transfers, "tool": tools.tool},
                       reference=reference_rows([model], profile.name), warnings=warnings)
