"""The trtexec path: command lines for building and timing an engine, and parsing its performance summary."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Sequence

from edgekit import children
from edgekit.bench.tensorrt_timing import TimingSummary, TrtMeasurement
from edgekit.errors import EdgekitError


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


def run_trtexec(cmd: list[str], what: str) -> str:
    try:
        proc = children.run(cmd, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"trtexec did not finish {what} within an hour: {' '.join(cmd)}") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise EdgekitError(f"trtexec failed {what} (exit {proc.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    return output
