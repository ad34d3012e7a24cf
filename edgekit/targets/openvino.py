"""The OpenVINO adapter: OpenVINO IR (targets/openvino.yaml).

Models reach IR through ONNX (paddle2onnx reads legacy and PIR programs alike); INT8 is onnxruntime's QDQ ONNX, which OpenVINO
fuses into INT8 kernels when it converts it.
"""

from __future__ import annotations

from pathlib import Path

from edgekit import openers
from edgekit.targets.base import Conversion, RuntimeAdapter
from edgekit.targets.onnx import check_qdq_tools, chosen_int8_weights, qdq_route, to_onnx

# OpenVINO has no INT8 kernels for these: QDQ pairs around them only add conversions (EfficientNet's
# swish and SE blocks: CPU time per batch 7.5 -> 5.6 ms without them; ResNets have none of them).
FLOAT_OPS = {"Sigmoid", "Mul", "Softmax", "Where"}
# Images per request when many run in throughput mode (each stream takes one request at a time).
THROUGHPUT_BATCH = 8


def qdq_op_types() -> list[str]:
    """The op types onnxruntime may put Q/DQ pairs around, less those OpenVINO computes in float."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted((set(QDQRegistry) | set(QLinearOpsRegistry)) - FLOAT_OPS)


def qdq_to_ir(onnx_file: Path, dst_dir: Path) -> Path:
    from edgekit.export.openvino import onnx2openvino

    return onnx2openvino(onnx_file, dst_dir / "model.xml")


class OpenVINOAdapter(RuntimeAdapter):
    runtime = "openvino"
    precision_hints = ("f32", "bf16")
    peak_format = "onnx"

    def precision_hint_for(self, precision: str) -> str | None:
        # bf16 bundles hold f32 weights; the CPU plugin converts them when it compiles the model.
        return "bf16" if precision == "bf16" else openers.OPENVINO_PRECISION_HINT

    def open_for_many(self, model_file: Path):
        """OpenVINO's THROUGHPUT hint for many images: a stream per core group, short batches in flight
        together. FP32 ResNet50 at 224 on 2 AVX2 cores (Zen 3), 64 images: 72.5 ms/image, against 79.6 in
        latency mode at batch 64 and 85.4 at batch 8 (benchmarks/eval_throughput.py, results/eval-throughput.json)."""
        streams = openers.OpenVinoStreams(model_file, {"INFERENCE_PRECISION_HINT": openers.OPENVINO_PRECISION_HINT})
        return lambda images: streams(images, THROUGHPUT_BATCH)

    def export(self, conv: Conversion, program: Path, params: Path, precision: str) -> Path:
        from edgekit.export.openvino import onnx2openvino

        onnx_file = to_onnx(conv, program, params, conv.work / "model.onnx")
        # fp16 compresses the stored weights; the CPU plugin still computes in f32/bf16.
        return conv.step("onnx2openvino", onnx2openvino, onnx_file, conv.bundle / "model.xml", precision == "fp16")

    def check_int8(self, inference_dir: Path | None) -> None:
        check_qdq_tools()

    def int8_route(self, conv, program, calibration, learned_program=None):
        from edgekit.export.openvino import onnx2openvino

        # As for onnxruntime, QAT's weights are calibrated again rather than its program shipped.
        fp32_onnx = to_onnx(conv, program, program.with_suffix(".pdiparams"), conv.work / "fp32.onnx")
        weights, settings = chosen_int8_weights(conv)
        route = self.qdq_route(fp32_onnx, calibration, conv.work / "int8", weights)
        route.settings.update(settings)
        return route, onnx2openvino(fp32_onnx, conv.work / "fp32.xml")

    def qdq_route(self, fp32_onnx: Path, calibration, work: Path, weights: str = "s8"):
        """onnxruntime's QDQ route without Q/DQ where OpenVINO computes in float; each artifact converted to IR."""
        return qdq_route(fp32_onnx, calibration, work, self, op_types=qdq_op_types(), to_artifact=qdq_to_ir,
                         weights=weights)
