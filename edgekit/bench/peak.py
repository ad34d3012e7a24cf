"""The machine's measured GEMM peak, per runtime and precision: how close a model runs to the limit.

A large square MatMul is about the best case for a CPU runtime (dense,
cache-blocked, vectorised), so its GFLOP/s is the practical ceiling a
convolutional network's achieved GFLOP/s is compared with. It runs in the
same runtime and precision as the bundle: onnxruntime and OpenVINO on an ONNX
MatMul built with onnx.helper, Paddle Inference on a one-op Paddle program.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit.portable import timed_loop
from edgekit.scratch import scratch_dir
from edgekit.targets import adapter_for

# 2 x 1024^3 = 2.1 GFLOP per call: long enough to time, short enough for a quick --peak.
GEMM_SIZE = 1024


@dataclass(frozen=True)
class PeakResult:
    runtime: str
    precision: str
    gflops: float
    gemm: str
    threads: int
    iterations: int
    note: str = ""

    @property
    def source(self) -> str:
        return f"{self.gemm} MatMul in {self.runtime} {self.precision}, {self.threads} threads, best of {self.iterations}"

    def to_dict(self) -> dict:
        return {**asdict(self), "gflops": round(self.gflops, 2), "source": self.source}


def _onnx_gemm(path: Path, n: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(weights, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime / OpenVINO edgekit pins
    onnx.save(model, str(path))
    return path


def _paddle_gemm(directory: Path, n: int) -> tuple[Path, Path]:
    import paddle

    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.utils.unique_name.guard(), paddle.static.program_guard(main, startup):
            a = paddle.static.data("a", [n, n], "float32")
            w = paddle.create_parameter([n, n], "float32")
            y = paddle.matmul(a, w)
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        paddle.static.save_inference_model(str(directory / "gemm"), [a], [y], exe, program=main)
    finally:
        paddle.disable_static()
    program = next(p for p in directory.iterdir() if p.suffix in (".json", ".pdmodel"))
    return program, directory / "gemm.pdiparams"


def _gemm_call(runtime: str, precision: str, threads: int, work: Path, n: int):
    """One GEMM call in `runtime`, opened through its adapter exactly as a bundle would be."""
    a = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    adapter = adapter_for(runtime)
    model = _onnx_gemm(work / "gemm.onnx", n) if adapter.peak_format == "onnx" else _paddle_gemm(work, n)[0]
    opened = adapter.open(model, threads=threads, precision_hint=precision)
    return lambda: opened(a)


def _supported(runtime: str) -> tuple[str, ...]:
    """Precisions whose GEMM peak is measured in `runtime` (int8 and f16 peaks are not measured yet)."""
    return ("f32", *(h for h in adapter_for(runtime).precision_hints if h != "f32"))


def peak_runtime(runtime: str) -> str:
    """The runtime whose GEMM stands for `runtime`'s ceiling.

    Paddle Lite cannot load a model built here, so its bundles are compared with
    onnxruntime's peak (the record names the source).
    """
    return adapter_for(runtime).peak_stand_in or runtime


def measure_peak(runtime: str, precision: str, threads: int, seconds: float = 1.0,
                 n: int = GEMM_SIZE) -> PeakResult | None:
    """Best GFLOP/s of an n x n x n MatMul in `runtime` at `precision` over at least 8 runs and `seconds`;
    None where not measurable (int8 and f16 GEMM peaks are not measured yet).

    The best run, not the median: a ceiling should not move down with the machine's noise.
    """
    stand_in = peak_runtime(runtime)
    note = f"stands in for {runtime}, which cannot load a GEMM built here" if stand_in != runtime else ""
    runtime = stand_in
    if precision not in _supported(runtime):
        return None
    work = scratch_dir("edgekit-peak")
    try:
        call = _gemm_call(runtime, precision, threads, work, n)
        timed_loop(call, 2, 0.0)  # warm-up: kernel selection, first-touch allocation
        samples = np.asarray(timed_loop(call, 8, seconds), dtype=np.float64)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gflops = 2.0 * n ** 3 / (float(samples.min()) / 1e9) / 1e9
    return PeakResult(runtime=runtime, precision=precision, gflops=gflops, gemm=f"{n}x{n}x{n}",
                      threads=threads, iterations=len(samples), note=note)
