"""The machine's measured compute peak, per runtime and precision: how close a model runs to the limit.

A large square MatMul is about the best case for a CPU runtime (dense,
cache-blocked, vectorised), so its GFLOP/s is the practical ceiling a
convolutional network's achieved GFLOP/s is compared with. It runs in the
same runtime and precision as the bundle: onnxruntime and OpenVINO on an ONNX
MatMul built with onnx.helper, Paddle Inference on a one-op Paddle program.
Where the runtime reads ONNX, a chain of 3x3 convolutions is timed too and the
faster of the two is the peak: a lone MatMul pays conversions into and out of
the compute precision on every call, which a network pays once (on a 2-vCPU AMX
Xeon OpenVINO's INT8 MatMul reached 1.3 TOP/s, INT8 ResNet50 at batch 8 2.5-3.3, the chain 4.0-4.5).
INT8 is the QDQ form edgekit's INT8 bundles have (uint8 activations, int8
per-channel weights); its figure is in GOP/s (2 integer ops per multiply-add),
and the kernel that ran it is read back from the runtime, so a MatMul that
fell back to float is not passed off as an INT8 peak.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit import openers
from edgekit.portable import timed_loop
from edgekit.scratch import scratch_dir
from edgekit.targets import adapter_for

# 2 x 1024^3 = 2.1 GFLOP per call: long enough to time, short enough for a quick --peak.
GEMM_SIZE = 1024
# (layers, channels, height = width): ResNet's stage-3 shape, 8 x 0.92 = 7.4 GFLOP per call at batch 1.
CONV_CHAIN = (8, 256, 28)


@dataclass(frozen=True)
class PeakResult:
    runtime: str
    precision: str
    gflops: float | None  # None: not measured, `note` says why
    gemm: str
    threads: int
    iterations: int
    note: str = ""
    kernel: str = ""  # what ran the MatMul, as the runtime reports it (int8: must be an integer kernel)
    integer_kernel: bool | None = None  # int8 only: did an integer kernel run it?
    workload: str = "MatMul"  # or "convolution chain" (`gemm` then gives its shape)

    @property
    def unit(self) -> str:
        """G integer ops/s for int8 (same 2 x multiply-adds count as FLOPs, so the two compare)."""
        return "GOP/s" if self.precision == "int8" else "GFLOP/s"

    @property
    def source(self) -> str:
        if self.gflops is None:
            return f"no {self.precision} GEMM peak in {self.runtime}: {self.note}"
        return (f"{self.gemm} {self.workload} in {self.runtime} {self.precision}, {self.threads} threads, best of "
                f"{self.iterations}")

    def to_dict(self) -> dict:
        return {**asdict(self), "gflops": None if self.gflops is None else round(self.gflops, 2), "unit": self.unit,
                "source": self.source}


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


def _onnx_int8_gemm(path: Path, n: int) -> Path:
    """The MatMul as edgekit's INT8 bundles hold it (onnxruntime quantize_static's QDQ form): uint8 activations
    per tensor, int8 weights per output channel, and the output quantized again for the next layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    scalar = lambda value, dtype, name: numpy_helper.from_array(np.array(value, dtype), name)  # noqa: E731
    constants = [numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "w_q"),
                 numpy_helper.from_array(np.full(n, 0.01, np.float32), "w_scale"),
                 numpy_helper.from_array(np.zeros(n, np.int8), "w_zero"),
                 scalar(5 / 255, np.float32, "a_scale"), scalar(128, np.uint8, "a_zero"),  # N(0, 1) inputs
                 scalar(0.5, np.float32, "y_scale"), scalar(128, np.uint8, "y_zero")]
    nodes = [helper.make_node("QuantizeLinear", ["a", "a_scale", "a_zero"], ["a_q"]),
             helper.make_node("DequantizeLinear", ["a_q", "a_scale", "a_zero"], ["a_dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"], axis=1),
             helper.make_node("MatMul", ["a_dq", "w_dq"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "y_scale", "y_zero"], ["y_q"]),
             helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], ["y"])]
    graph = helper.make_graph(nodes, "gemm_int8", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])  # 13: per-axis Q/DQ
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _onnx_conv_chain(path: Path, int8: bool) -> Path:
    """CONV_CHAIN's 3x3 convolutions, ReLU between them (f32), or as edgekit's INT8 bundles hold them: QDQ
    uint8 activations per tensor, int8 weights per output channel (the ReLUs folded into the quantized range)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers, channels, size = CONV_CHAIN
    rng = np.random.default_rng(0)
    constants = [numpy_helper.from_array(np.array(5 / 255, np.float32), "a_scale"),
                 numpy_helper.from_array(np.array(0, np.uint8), "a_zero")]
    nodes, x = [], "x"
    for i in range(layers):
        if int8:
            constants += [numpy_helper.from_array(rng.integers(-127, 128, (channels, channels, 3, 3), dtype=np.int8),
                                                  f"w{i}_q"),
                          numpy_helper.from_array(np.full(channels, 1e-3, np.float32), f"w{i}_scale"),
                          numpy_helper.from_array(np.zeros(channels, np.int8), f"w{i}_zero")]
            nodes += [helper.make_node("QuantizeLinear", [x, "a_scale", "a_zero"], [f"q{i}"]),
                      helper.make_node("DequantizeLinear", [f"q{i}", "a_scale", "a_zero"], [f"a{i}"]),
                      helper.make_node("DequantizeLinear", [f"w{i}_q", f"w{i}_scale", f"w{i}_zero"], [f"w{i}"],
                                       axis=0),
                      helper.make_node("Conv", [f"a{i}", f"w{i}"], [f"y{i}"], pads=[1, 1, 1, 1])]
        else:
            weights = (rng.standard_normal((channels, channels, 3, 3)) * 0.03).astype(np.float32)
            constants.append(numpy_helper.from_array(weights, f"w{i}"))
            nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"c{i}"], [f"y{i}"])]
        x = f"y{i}"
    shape = [1, channels, size, size]
    graph = helper.make_graph(nodes, "conv_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
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


def _gemm_call(runtime: str, precision: str, threads: int, work: Path, n: int, conv: bool = False):
    """(one GEMM (conv: CONV_CHAIN) call in `runtime`, opened through its adapter exactly as a bundle would be;
    the opened model; the model file)."""
    adapter = adapter_for(runtime)
    rng = np.random.default_rng(1)
    if conv:
        _, channels, size = CONV_CHAIN
        a = np.abs(rng.standard_normal((1, channels, size, size))).astype(np.float32)  # like post-ReLU activations
        model = _onnx_conv_chain(work / f"conv_{precision}.onnx", precision == "int8")
    else:
        a = rng.standard_normal((n, n)).astype(np.float32)
        if precision == "int8":
            model = _onnx_int8_gemm(work / "gemm_int8.onnx", n)
        else:
            model = _onnx_gemm(work / "gemm.onnx", n) if adapter.peak_format == "onnx" else _paddle_gemm(work, n)[0]
    # An INT8 bundle is opened with edgekit's default hint (f32 for what stays float).
    hint = openers.OPENVINO_PRECISION_HINT if precision == "int8" else precision
    opened = adapter.open(model, threads=threads, precision_hint=hint)
    return (lambda: opened(a)), opened, model


# What onnxruntime's QDQ fusion turns DQ -> MatMul / Conv (-> Q) into when it runs it on integers.
_ORT_INTEGER_MATMULS = {"QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
                        "QLinearConv", "ConvInteger"}


def matmul_kernel(opened, model: Path, work: Path) -> tuple[str, bool]:
    """(what ran the MatMul, whether that is an integer kernel), read back from the runtime that ran it.

    A QDQ MatMul is only an INT8 peak if the runtime's QDQ fusion fired, and its speed cannot tell: on an
    AVX2 CPU without VNNI (the 2-vCPU AMD EPYC this was written on) onnxruntime's QLinearMatMul ran 1.6-2x
    its f32 GEMM but OpenVINO's jit_gemm_I8 only 0.8-1.0x its. So ask the runtime, by what its native object can do (the
    adapters in edgekit/targets have no hook for it).
    """
    native = opened.native
    if hasattr(native, "get_providers"):  # an onnxruntime session
        import onnx
        import onnxruntime as ort

        # A second session at the same (default) optimization level, asked to save the graph it will run.
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(work / "optimized.onnx")
        ort.InferenceSession(str(model), options, providers=native.get_providers())
        ops = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
        integer = [op for op in ops if op in _ORT_INTEGER_MATMULS]
        return (f"{integer[0]} (onnxruntime optimized graph)" if integer else
                f"float MatMul (onnxruntime optimized graph: {', '.join(ops)})"), bool(integer)
    if hasattr(native, "get_compiled_model"):  # an OpenVINO infer request
        for op in native.get_compiled_model().get_runtime_model().get_ordered_ops():
            rt_info = op.get_rt_info()
            info = {key: str(rt_info[key].astype(str)) for key in rt_info.keys()}
            if info.get("layerType") in ("FullyConnected", "MatMul", "Gemm", "Convolution"):
                precision = info.get("runtimePrecision", "?")
                return (f"{info['layerType']} {info.get('primitiveType', '')} runtimePrecision {precision} "
                        "(OpenVINO runtime model)"), precision in ("u8", "i8")
        return "no MatMul in OpenVINO's runtime model", False
    return f"not inspectable in {opened.name}", False


def why_not_measured(runtime: str, precision: str) -> str | None:
    """Why `runtime` has no `precision` GEMM peak here, or None when it is measured."""
    adapter = adapter_for(runtime)
    if precision == "f32" or precision in adapter.precision_hints:
        return None
    if precision == "int8":
        if adapter.peak_format == "onnx":
            return None
        return ("not measured: an INT8 Paddle GEMM has to come out of Paddle's own post-training quantization, "
                "and edgekit opens Paddle Inference with oneDNN in f32 (no enable_mkldnn_int8), so whether its "
                "quantized MatMuls run in integer kernels is not established")
    return f"{precision} GEMM peaks are not measured"


def peak_runtime(runtime: str) -> str:
    """The runtime whose GEMM stands for `runtime`'s ceiling.

    Paddle Lite cannot load a model built here, so its bundles are compared with
    onnxruntime's peak (the record names the source).
    """
    return adapter_for(runtime).peak_stand_in or runtime


def best_peak(runtime: str, precision: str, threads: int, seconds: float = 1.0) -> PeakResult:
    """The higher of the MatMul peak and, where the runtime reads ONNX, the convolution-chain peak (an INT8
    one only if an integer kernel ran it)."""
    gemm = measure_peak(runtime, precision, threads, seconds)
    if gemm.gflops is None or adapter_for(gemm.runtime).peak_format != "onnx":
        return gemm
    conv = measure_peak(runtime, precision, threads, seconds, conv=True)
    usable = conv.gflops is not None and conv.integer_kernel is not False
    return conv if usable and (gemm.integer_kernel is False or conv.gflops > gemm.gflops) else gemm


def measure_peak(runtime: str, precision: str, threads: int, seconds: float = 1.0,
                 n: int = GEMM_SIZE, conv: bool = False) -> PeakResult:
    """Best GFLOP/s (int8: GOP/s) of an n x n x n MatMul (conv: CONV_CHAIN's convolutions) in `runtime` at
    `precision` over at least 8 runs and `seconds`; where not measurable, a result with gflops None whose note
    says why.

    The best run, not the median: a ceiling should not move down with the machine's noise.
    """
    stand_in = peak_runtime(runtime)
    note = f"stands in for {runtime}, which cannot load a GEMM built here" if stand_in != runtime else ""
    runtime = stand_in
    why = why_not_measured(runtime, precision)
    if why:
        return PeakResult(runtime=runtime, precision=precision, gflops=None, gemm="", threads=threads,
                          iterations=0, note="; ".join(n for n in (note, why) if n))
    work = scratch_dir("edgekit-peak")
    try:
        call, opened, model = _gemm_call(runtime, precision, threads, work, n, conv)
        timed_loop(call, 2, 0.0)  # warm-up: kernel selection, first-touch allocation
        samples = np.asarray(timed_loop(call, 8, seconds), dtype=np.float64)
        kernel, integer = matmul_kernel(opened, model, work) if precision == "int8" else ("", None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if integer is False:
        note = "; ".join(n for n in (note, f"it ran in {kernel}, not an integer kernel: this is no INT8 "
                                           "peak, and records are not compared with it") if n)
    layers, channels, size = CONV_CHAIN
    ops = layers * 2.0 * channels * channels * 9 * size * size if conv else 2.0 * n ** 3
    shape = f"{layers} x 3x3 {channels}->{channels} at {size}x{size}" if conv else f"{n}x{n}x{n}"
    return PeakResult(runtime=runtime, precision=precision, gflops=ops / (float(samples.min()) / 1e9) / 1e9,
                      gemm=shape, threads=threads, iterations=len(samples), note=note, kernel=kernel,
                      integer_kernel=integer, workload="convolution chain" if conv else "MatMul")
