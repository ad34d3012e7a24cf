"""The server GPU path: the seed pages' TensorRT method, measured beside their published tables.

Method (as the seed pages and NVIDIA's trtexec do it): the model's ONNX
export at the card's crop size; one TensorRT engine per precision whose
optimization profile covers the requested batches; warm-up; then GPU compute
time (CUDA events around the enqueue) and host latency (H2D + compute + D2H)
reported separately, median and p99. `trtexec` is used when it is on PATH,
the TensorRT Python API (with NVIDIA's cuda-python for streams and events)
otherwise. Nothing here ever reports a non-TensorRT figure as TensorRT.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgekit.bench.reference import GpuProfile, gpu_profile, reference_ms
from edgekit.bench.records import BenchReport
from edgekit.errors import EdgekitError

Progress = Callable[[str], None]

# NVIDIA's TensorRT containers keep trtexec here, off PATH.
CONTAINER_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
GPU_PRECISIONS = ("fp32", "fp16")
HOW_TO_GET_TENSORRT = (
    "Install TensorRT from NVIDIA: either use NVIDIA's TensorRT container (nvcr.io/nvidia/tensorrt:<yy.mm>-py3, "
    f"trtexec at {CONTAINER_TRTEXEC}), or the TensorRT tarball / apt packages from "
    "https://developer.nvidia.com/tensorrt and put its bin/ (trtexec) on PATH; or `pip install tensorrt "
    "cuda-python` on a machine that can reach NVIDIA's package index (the PyPI tensorrt wheels download their "
    "payload from pypi.nvidia.com at install time).")
HOW_TO_GET_GPU = ("Run on a machine with an NVIDIA GPU and its driver (nvidia-smi must list the GPU), ideally the "
                  "profile's own GPU (a T4 or V100 cloud instance).")


# ---------------------------------------------------------------- what is on this machine

def detect_gpus() -> list[str]:
    """Names of the NVIDIA GPUs the driver reports (nvidia-smi), or [] when there is none or no driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        proc = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()] if proc.returncode == 0 else []


def find_trtexec() -> str | None:
    found = shutil.which("trtexec")
    if found:
        return found
    return CONTAINER_TRTEXEC if os.access(CONTAINER_TRTEXEC, os.X_OK) else None


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def tensorrt_python_version() -> str | None:
    """The TensorRT Python package's version when it and cuda-python both import, else None."""
    try:
        import tensorrt

        _import_cudart()
    except ImportError:
        return None
    return tensorrt.__version__


@dataclass(frozen=True)
class GpuTools:
    gpus: list[str]
    trtexec: str | None
    python_api: str | None  # TensorRT Python version

    @property
    def tool(self) -> str:
        return "trtexec" if self.trtexec else "tensorrt-python"


def check_gpu_tools() -> GpuTools:
    """What the GPU path needs, or one EdgekitError naming everything missing and how to get it."""
    tools = GpuTools(gpus=detect_gpus(), trtexec=find_trtexec(), python_api=None)
    if tools.trtexec is None:
        tools = GpuTools(tools.gpus, None, tensorrt_python_version())
    missing = []
    if not tools.gpus:
        why = "nvidia-smi is not on PATH" if shutil.which("nvidia-smi") is None else "nvidia-smi lists no GPU"
        missing.append(f"an NVIDIA GPU ({why}). {HOW_TO_GET_GPU}")
    if tools.trtexec is None and tools.python_api is None:
        missing.append(f"TensorRT (no `trtexec` on PATH or at {CONTAINER_TRTEXEC}, and the `tensorrt` + "
                       f"`cuda-python` Python packages do not import). {HOW_TO_GET_TENSORRT}")
    if missing:
        raise EdgekitError("The TensorRT GPU benchmark cannot run here; missing: "
                           + " And ".join(f"({i + 1}) {m}" for i, m in enumerate(missing))
                           + " To see the published figures without measuring, add --reference-only.")
    return tools


# ---------------------------------------------------------------- trtexec

def _shape(input_name: str, batch: int, chw: Sequence[int]) -> str:
    return f"{input_name}:" + "x".join(str(d) for d in (batch, *chw))


def trtexec_build_command(trtexec: str, onnx: Path, engine: Path, input_name: str, chw: Sequence[int],
                          batches: Sequence[int], precision: str) -> list[str]:
    """One engine per precision; its optimization profile spans the smallest to the largest batch,
    tuned (opt) for the largest."""
    cmd = [trtexec, f"--onnx={onnx}", f"--minShapes={_shape(input_name, min(batches), chw)}",
           f"--optShapes={_shape(input_name, max(batches), chw)}",
           f"--maxShapes={_shape(input_name, max(batches), chw)}", f"--saveEngine={engine}", "--skipInference"]
    # fp32 means fp32: no TF32 on Ampere and later GPUs (the seed's T4/V100 have none).
    cmd.append("--fp16" if precision == "fp16" else "--noTF32")
    return cmd


def trtexec_run_command(trtexec: str, engine: Path, input_name: str, chw: Sequence[int], batch: int,
                        warmup_ms: int, duration_s: float, iterations: int, data_transfers: bool = True) -> list[str]:
    cmd = [trtexec, f"--loadEngine={engine}", f"--shapes={_shape(input_name, batch, chw)}",
           f"--warmUp={warmup_ms}", f"--duration={max(1, int(round(duration_s)))}", f"--iterations={iterations}",
           "--useCudaGraph", "--useSpinWait"]
    if not data_transfers:
        cmd.append("--noDataTransfers")
    return cmd


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


_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_STAT = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=?\s*" + _NUMBER + r"\s*ms")
_SUMMARY_LINES = {"Latency": "host_latency", "GPU Compute Time": "gpu_compute", "Enqueue Time": "enqueue",
                  "H2D Latency": "h2d", "D2H Latency": "d2h"}


def _parse_stats(text: str) -> TimingSummary:
    values: dict[str, float] = {}
    for name, pct, number in _STAT.findall(text):
        key = {"min": "min_ms", "max": "max_ms", "mean": "mean_ms", "median": "median_ms"}.get(name)
        if key is None:
            key = {"90": "p90_ms", "95": "p95_ms", "99": "p99_ms"}.get(pct)  # other percentiles are not kept
        if key:
            values[key] = float(number)
    return TimingSummary(**values)


def parse_trtexec_output(text: str) -> TrtMeasurement:
    """The "=== Performance summary ===" block of trtexec (TensorRT 8.x / 10.x log format)."""
    start = text.rfind("=== Performance summary ===")
    if start < 0:
        raise EdgekitError("trtexec printed no '=== Performance summary ===' block; its output ended with:\n"
                           + text[-2000:])
    summary: dict[str, object] = {}
    for line in text[start:].splitlines():
        body = re.sub(r"^\s*(\[[^\]]*\]\s*)*", "", line)  # drop "[10/03/2024-10:47:59] [I] "
        label, sep, rest = body.partition(":")
        if not sep:
            continue
        label = label.strip()
        if label == "Throughput":
            summary["throughput_qps"] = float(re.search(_NUMBER, rest).group(1))
        elif label == "Total Host Walltime":
            summary["total_host_walltime_s"] = float(re.search(_NUMBER, rest).group(1))
        elif label in _SUMMARY_LINES:
            summary[_SUMMARY_LINES[label]] = _parse_stats(rest)
    missing = [k for k in ("throughput_qps", "host_latency", "gpu_compute") if k not in summary]
    if missing:
        raise EdgekitError(f"trtexec's performance summary lacks {', '.join(missing)}; unrecognised format:\n"
                           + text[start:start + 2000])
    device = re.search(r"Selected Device:\s*(.+)", text)
    version = re.search(r"TensorRT version:\s*([0-9.]+)", text) or re.search(r"\[TensorRT v(\d+)\]", text)
    return TrtMeasurement(device=device.group(1).strip() if device else None,
                          tensorrt_version=version.group(1) if version else None, **summary)


def _run_trtexec(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"trtexec did not finish {what} within an hour: {' '.join(cmd)}") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise EdgekitError(f"trtexec failed {what} (exit {proc.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    return output


# ---------------------------------------------------------------- TensorRT Python API

def _cuda_checker(cudart):
    """cuda-python returns (error, *values): a function that raises on an error and returns the values."""
    success = cudart.cudaError_t.cudaSuccess

    def check(result):
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != success:
            raise EdgekitError(f"CUDA call failed: {err}")
        return values[0] if len(values) == 1 else values

    return check


def _python_api_engine(onnx: Path, input_name: str, chw: Sequence[int], batches: Sequence[int], precision: str):
    """Build an engine as NVIDIA's Python samples do: ONNX parser, one optimization profile."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit_batch = 0 if int(trt.__version__.split(".")[0]) >= 10 else \
        1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(explicit_batch)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgekitError(f"TensorRT could not parse {onnx}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (min(batches), *chw), (max(batches), *chw), (max(batches), *chw))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgekitError(f"TensorRT could not build a {precision} engine from {onnx}.")
    return trt.Runtime(logger).deserialize_cuda_engine(serialized)


def _python_api_measure(engine, input_name: str, chw: Sequence[int], batch: int, warmup_ms: int,
                        duration_s: float, iterations: int, data_transfers: bool = True) -> TrtMeasurement:
    """trtexec's two numbers with the Python API: CUDA events around the enqueue (GPU compute time),
    a host clock around copy-in, enqueue, copy-out and synchronize (host latency)."""
    import tensorrt as trt

    cudart = _import_cudart()
    check = _cuda_checker(cudart)
    context = engine.create_execution_context()
    context.set_input_shape(input_name, (batch, *chw))
    stream = check(cudart.cudaStreamCreate())
    buffers = []  # (name, host array, device pointer, is_input)
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        host = np.ascontiguousarray(np.random.default_rng(i).standard_normal(tuple(context.get_tensor_shape(name)))
                                    .astype(trt.nptype(engine.get_tensor_dtype(name))))
        device = check(cudart.cudaMalloc(host.nbytes))
        context.set_tensor_address(name, device)
        buffers.append((name, host, device, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT))
    start_event, end_event = check(cudart.cudaEventCreate()), check(cudart.cudaEventCreate())
    h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost

    def infer() -> tuple[float, float]:
        t0 = time.perf_counter()
        for _, host, device, is_input in buffers:
            if is_input and data_transfers:
                check(cudart.cudaMemcpyAsync(device, host.ctypes.data, host.nbytes, h2d, stream))
        check(cudart.cudaEventRecord(start_event, stream))
        context.execute_async_v3(stream)
        check(cudart.cudaEventRecord(end_event, stream))
        for _, host, device, is_input in buffers:
            if not is_input and data_transfers:
                check(cudart.cudaMemcpyAsync(host.ctypes.data, device, host.nbytes, d2h, stream))
        check(cudart.cudaStreamSynchronize(stream))
        host_ms = (time.perf_counter() - t0) * 1e3
        return host_ms, check(cudart.cudaEventElapsedTime(start_event, end_event))

    try:
        deadline = time.perf_counter() + warmup_ms / 1e3
        while time.perf_counter() < deadline:
            infer()
        host_ms, gpu_ms = [], []
        start = time.perf_counter()
        while len(gpu_ms) < iterations or time.perf_counter() - start < duration_s:
            h, g = infer()
            host_ms.append(h)
            gpu_ms.append(g)
        walltime = time.perf_counter() - start
    finally:
        for _, _, device, _ in buffers:
            cudart.cudaFree(device)
        cudart.cudaEventDestroy(start_event)
        cudart.cudaEventDestroy(end_event)
        cudart.cudaStreamDestroy(stream)
    return TrtMeasurement(throughput_qps=len(gpu_ms) / walltime, host_latency=TimingSummary.from_samples(host_ms),
                          gpu_compute=TimingSummary.from_samples(gpu_ms), total_host_walltime_s=walltime,
                          tensorrt_version=trt.__version__)


# ---------------------------------------------------------------- the benchmark

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
        if manifest["target"]["runtime"] == "onnxruntime" and manifest["target"]["precision"] == "fp32":
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
    from edgekit.bench.reference import reference_rows
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
    work = Path(tempfile.mkdtemp(prefix="edgekit-trt-"))
    records: list[GpuRecord] = []
    try:
        if onnx is None:
            from edgekit import api

            if progress:
                progress(f"exporting {model} to ONNX at {size}x{size}")
            onnx = api.build(model, "onnx", weights=weights, out=work / "onnx", input_size=size).path / "model.onnx"
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
                _run_trtexec(trtexec_build_command(tools.trtexec, onnx, engine_file, INPUT_NAME, chw, batches,
                                                   precision), f"building the {precision} engine")
            else:
                engine = _python_api_engine(onnx, INPUT_NAME, chw, batches, precision)
            for batch in batches:
                if progress:
                    progress(f"TensorRT {precision} batch {batch}")
                if tools.trtexec:
                    measured = parse_trtexec_output(_run_trtexec(
                        trtexec_run_command(tools.trtexec, engine_file, INPUT_NAME, chw, batch, warmup_ms, duration_s,
                                            iterations, data_transfers), f"timing batch {batch}"))
                else:
                    measured = _python_api_measure(engine, INPUT_NAME, chw, batch, warmup_ms, duration_s, iterations,
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
