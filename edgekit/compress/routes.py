"""The INT8 routes, one per quantization tool (each runtime's adapter picks its own, edgekit.targets).

Each route calibrates once and can then re-quantize with any set of layers
left in float cheaply, which is what accuracy control needs.
"""

from __future__ import annotations

import json
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgekit import children
from edgekit.errors import EdgekitError

# Ops that onnxruntime's QDQ quantizer makes compute on INT8 inputs: the "layers" accuracy control can
# return to float. Not only the weighted ones: a badly calibrated residual Add hurts as much as a Conv.
# (Data-movement ops such as Relu, Reshape, Flatten only pass their input's scale on.)
ONNX_QUANTIZED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Concat", "AveragePool", "MaxPool",
                      "GlobalAveragePool", "Resize", "Sigmoid", "Softmax", "InstanceNormalization",
                      "LayerNormalization")
# How INT8 weights are stored for onnxruntime's kernels (edgekit.compress.isa picks one per CPU class):
# s8: int8 weights, the VNNI kernels' format; s8-7bit: int8 weights in 7 bits (onnxruntime's
# reduce_range), so AVX2's u8 x s8 pairwise multiply-add (vpmaddubsw) cannot saturate its int16 sums;
# u8: uint8 weights (onnxruntime's U8U8 kernels).
WEIGHT_FORMATS = ("s8", "s8-7bit", "u8")


@dataclass(frozen=True)
class Calibration:
    """What a quantizing pass asks of a route: the images and how to estimate ranges from them."""

    images: np.ndarray
    algorithm: str
    per_channel: bool
    batch_size: int


def uniform_batch_size(count: int, batch_size: int) -> int:
    """The largest batch size <= `batch_size` that cuts `count` images into equal batches."""
    return next(size for size in range(min(batch_size, count), 0, -1) if count % size == 0)


class _RunsArtifacts:
    """Runs a route's models with the adapter of the runtime they are for, each opened once."""

    # Models kept open: the FP32 one and the latest INT8 ones (the sensitivity loop opens one per layer,
    # each run once; keeping all of them open held ~70 compiled ResNet50s).
    KEEP_OPEN = 3

    def __init__(self, runtime):
        # A RuntimeAdapter (edgekit.targets): only its `open_for_many` is used, so compress needs no targets import.
        self.runtime = runtime
        self._opened: OrderedDict[Path, Callable] = OrderedDict()

    def run(self, model_file: Path, images: np.ndarray) -> np.ndarray:
        if model_file not in self._opened:
            self._opened[model_file] = self.runtime.open_for_many(model_file)
            while len(self._opened) > self.KEEP_OPEN:
                self._opened.popitem(last=False)
        self._opened.move_to_end(model_file)
        return self._opened[model_file](images)


def import_ort_quantization():
    try:
        from onnxruntime import quantization
    except ImportError as exc:  # ml_dtypes is what goes missing in practice
        raise EdgekitError(f"INT8 for ONNX/OpenVINO needs onnxruntime's quantization tools, which do not import "
                           f"here ({exc}); `pip install ml_dtypes`.") from None
    return quantization


class OnnxQDQRoute(_RunsArtifacts):
    """onnxruntime `quantize_static`: a QDQ ONNX model, weights per channel (int8), activations per tensor (uint8).

    What differs per runtime comes from its adapter: `runtime` runs the artifacts,
    `op_types` limits which op types get Q/DQ pairs (None: every type
    onnxruntime quantizes), and `to_artifact(qdq_onnx, dst_dir)` turns the QDQ
    ONNX into the runtime's format (None: the QDQ ONNX is the artifact).
    """

    name = "onnxruntime quantize_static (QDQ ONNX)"

    def __init__(self, fp32_onnx: Path, calibration: np.ndarray, *, algorithm: str, per_channel: bool,
                 batch_size: int, runtime, work: Path, op_types: Sequence[str] | None = None,
                 to_artifact: Callable[[Path, Path], Path] | None = None, weights: str = "s8"):
        quantization = import_ort_quantization()
        import onnxruntime
        from onnxruntime.quantization.shape_inference import quant_pre_process

        onnxruntime.set_default_logger_severity(3)  # unused-initializer warnings are noise for users

        super().__init__(runtime)
        if weights not in WEIGHT_FORMATS:
            raise EdgekitError(f"INT8 weight format {weights!r}: expected one of {', '.join(WEIGHT_FORMATS)}.")
        self.weights = weights
        # What the manifest records of this route's choices (adapters add theirs).
        self.settings: dict = {"weights": weights}
        self.to_artifact = to_artifact
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        # Shape inference and graph fusions (BatchNorm into Conv) first, as onnxruntime recommends.
        self.model = work / "preprocessed.onnx"
        quant_pre_process(str(fp32_onnx), str(self.model), skip_symbolic_shape=True)
        self.calibration = calibration
        self.batch_size = batch_size
        self.per_channel = per_channel
        methods = {"minmax": quantization.CalibrationMethod.MinMax,
                   "percentile": quantization.CalibrationMethod.Percentile,
                   "entropy": quantization.CalibrationMethod.Entropy}
        self.method = methods[algorithm]
        self.extra_options = {"CalibPercentile": 99.99} if algorithm == "percentile" else {}
        self.cache = work / "calibration-ranges.json"
        self.op_types = list(op_types) if op_types is not None else None
        import onnx

        graph = onnx.load(str(self.model)).graph
        self.input_name = graph.input[0].name
        self._layers = [n.name for n in graph.node if n.op_type in ONNX_QUANTIZED_OPS
                        and (self.op_types is None or n.op_type in self.op_types)]

    def layers(self) -> list[str]:
        return list(self._layers)

    def _reader(self):
        quantization = import_ort_quantization()
        size = self.batch_size
        if self.method != quantization.CalibrationMethod.MinMax:
            # onnxruntime's histogram collector stacks every batch of a tensor into one array, so a short
            # last batch crashes it (ValueError: inhomogeneous shape): batches of one size that divides the set.
            size = uniform_batch_size(len(self.calibration), size)
        batches = [self.calibration[i:i + size] for i in range(0, len(self.calibration), size)]
        name = self.input_name

        class Reader(quantization.CalibrationDataReader):
            def __init__(self):
                self.items = iter([{name: b} for b in batches])

            def get_next(self):
                return next(self.items, None)

        return Reader()

    def quantize(self, float_layers: Sequence[str], dst: Path) -> Path:
        quantization = import_ort_quantization()
        dst.mkdir(parents=True, exist_ok=True)
        onnx_file = dst / "model.onnx"
        # The first call calibrates and caches the ranges; later calls only rewrite the graph.
        if self.method == quantization.CalibrationMethod.MinMax and not self.cache.is_file():
            from edgekit.compress.minmax import minmax_ranges, write_calibration_cache

            ranges = minmax_ranges(self.model, self.calibration, batch_size=self.batch_size, op_types=self.op_types)
            if ranges is not None:  # None: onnxruntime's calibrator below computes them
                write_calibration_cache(ranges, self.cache)
        quantization.quantize_static(
            str(self.model), str(onnx_file), self._reader() if not self.cache.is_file() else None,
            quant_format=quantization.QuantFormat.QDQ, per_channel=self.per_channel,
            reduce_range=self.weights == "s8-7bit", activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QUInt8 if self.weights == "u8" else quantization.QuantType.QInt8,
            op_types_to_quantize=self.op_types, nodes_to_exclude=list(float_layers), calibrate_method=self.method,
            extra_options=dict(self.extra_options), calibration_cache_path=str(self.cache))
        return self.to_artifact(onnx_file, dst) if self.to_artifact else onnx_file


class PaddlePTQRoute(_RunsArtifacts):
    """Paddle's own `PostTrainingQuantization` on the legacy Paddle program (QDQ-style quantize_linear /
    dequantize_linear ops, weights per channel), run in a child process with FLAGS_enable_pir_api=0.

    The quantized program is what Paddle Inference loads and what Paddle Lite's
    optimizer turns into an INT8 `.nb`. It is evaluated on this host by `runtime`,
    the Paddle Inference adapter (the fake-quantized graph computes what the INT8
    kernels compute, up to rounding).
    """

    name = "Paddle PostTrainingQuantization (Paddle program)"

    def __init__(self, program: Path, calibration: np.ndarray, *, algorithm: str, per_channel: bool,
                 batch_size: int, runtime, work: Path):
        super().__init__(runtime)
        self.program = program
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.calibration_file = work / "calibration.npy"
        np.save(self.calibration_file, calibration)
        # Paddle's names for the same estimators.
        self.algo = {"minmax": "abs_max", "percentile": "hist", "entropy": "KL"}[algorithm]
        self.per_channel = per_channel
        self.batch_size = batch_size
        from edgekit.export.inference_dir import program_io
        from edgekit.export.lite import read_program

        self.input_name = program_io(program)[0]  # the feed the calibration batches go to, as the program names it

        # A layer is named by its weight parameter, which is what Paddle's skip list takes.
        proto = read_program(program)
        self._layers = []
        for op in proto.blocks[0].ops:
            if op.type in ("conv2d", "depthwise_conv2d", "matmul", "matmul_v2", "mul"):
                weights = [a for slot in op.inputs if slot.parameter in ("Filter", "Y") for a in slot.arguments]
                if weights:
                    self._layers.append(weights[0])

    def layers(self) -> list[str]:
        return list(self._layers)

    def quantize(self, float_layers: Sequence[str], dst: Path) -> Path:
        dst.mkdir(parents=True, exist_ok=True)
        job = {"model_dir": str(self.program.parent), "model_filename": self.program.name,
               "params_filename": self.program.with_suffix(".pdiparams").name, "out_dir": str(dst),
               "calibration": str(self.calibration_file), "batch_size": self.batch_size, "algo": self.algo,
               "per_channel": self.per_channel, "skip": list(float_layers), "input_name": self.input_name}
        env = {**os.environ, "FLAGS_enable_pir_api": "0"}
        proc = children.run([sys.executable, "-m", "edgekit.compress._ptq_worker", json.dumps(job)], env=env,
                              capture_output=True, text=True)
        model_file = dst / "inference.pdmodel"
        if proc.returncode != 0 or not model_file.is_file():
            raise EdgekitError(f"Paddle post-training quantization of {self.program} failed:\n"
                               f"{proc.stderr.strip()[-2000:]}")
        return model_file


class FixedProgramRoute(_RunsArtifacts):
    """QAT's quantized program as an INT8 'route' with nothing left to choose: its scales were learned."""

    name = "Paddle QAT (Paddle program)"

    def __init__(self, program: Path, runtime):
        super().__init__(runtime)
        self.program = program

    def layers(self) -> list[str]:
        return []

    def quantize(self, float_layers: Sequence[str], dst: Path) -> Path:
        return self.program


class NNCFRoute(_RunsArtifacts):
    """NNCF post-training quantization of the OpenVINO IR (measured against OnnxQDQRoute in
    benchmarks/int8.py; not a dependency of edgekit: used only where `nncf` is installed).
    `runtime` is the OpenVINO adapter."""

    name = "NNCF quantize (OpenVINO IR)"

    def __init__(self, fp32_xml: Path, calibration: np.ndarray, *, algorithm: str, per_channel: bool,
                 batch_size: int, runtime, work: Path):
        super().__init__(runtime)
        try:
            import nncf
        except ImportError:
            raise EdgekitError("The NNCF route needs `pip install nncf`.") from None
        import openvino as ov

        if algorithm == "entropy":
            raise EdgekitError("NNCF has no entropy (KL) range estimator; use minmax or percentile.")
        self.nncf = nncf
        self.model = ov.Core().read_model(str(fp32_xml))
        batches = [calibration[i:i + batch_size] for i in range(0, len(calibration), batch_size)]
        self.dataset = nncf.Dataset(batches)
        self.subset_size = len(batches)
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        estimator = {"minmax": RangeEstimatorParametersSet.MINMAX,
                     "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE}[algorithm]
        self.advanced = AdvancedQuantizationParameters(activations_range_estimator_params=estimator)
        self._layers = [op.get_friendly_name() for op in self.model.get_ordered_ops()
                        if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul")]

    def layers(self) -> list[str]:
        return list(self._layers)

    def quantize(self, float_layers: Sequence[str], dst: Path) -> Path:
        import openvino as ov

        dst.mkdir(parents=True, exist_ok=True)
        quantized = self.nncf.quantize(self.model, self.dataset, subset_size=self.subset_size,
                                       ignored_scope=self.nncf.IgnoredScope(names=list(float_layers)),
                                       advanced_parameters=self.advanced)
        ov.save_model(quantized, str(dst / "model.xml"), compress_to_fp16=False)
        return dst / "model.xml"
