"""The onnxruntime adapter: ONNX models (targets/onnx.yaml).

Also the two steps every ONNX-fed runtime shares (OpenVINO reads ONNX too):
the Paddle program -> ONNX step, and onnxruntime's QDQ INT8 route.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Sequence

from edgekit.targets.base import Conversion, RuntimeAdapter


def to_onnx(conv: Conversion, program: Path, params: Path, dst: Path) -> Path:
    from edgekit.export.onnx import paddle2onnx

    return conv.step("paddle2onnx", paddle2onnx, program, params, dst, conv.options["opset"])


def check_qdq_tools() -> None:
    from edgekit.compress.routes import import_ort_quantization

    import_ort_quantization()


def qdq_route(fp32_onnx: Path, calibration, work: Path, runtime: RuntimeAdapter,
              op_types: Sequence[str] | None = None, to_artifact: Callable[[Path, Path], Path] | None = None,
              weights: str = "s8"):
    """onnxruntime's QDQ route on `fp32_onnx`, its artifacts run by `runtime`."""
    from edgekit.compress.routes import OnnxQDQRoute

    return OnnxQDQRoute(fp32_onnx, calibration.images, algorithm=calibration.algorithm,
                        per_channel=calibration.per_channel, batch_size=calibration.batch_size, runtime=runtime,
                        work=work, op_types=op_types, to_artifact=to_artifact, weights=weights)


def chosen_int8_weights(conv: Conversion) -> tuple[str, dict]:
    """The QDQ weight format (`-o int8_weights`; auto: for this build host's CPU class) and what the
    manifest records of the choice."""
    from edgekit.compress.isa import cpu_class, int8_weights

    host = cpu_class()
    chosen = conv.options.get("int8_weights", "auto")
    weights = int8_weights(host) if chosen == "auto" else chosen
    return weights, {"cpu_class": host.to_dict(), "chosen_by": (
        f"auto: for this build host's CPU class ({host.name})" if chosen == "auto" else "-o int8_weights")}


class OnnxRuntimeAdapter(RuntimeAdapter):
    runtime = "onnxruntime"
    peak_format = "onnx"

    def export(self, conv: Conversion, program: Path, params: Path, precision: str) -> Path:
        from edgekit.export.onnx import onnx_fp32_to_fp16

        onnx_file = to_onnx(conv, program, params, conv.work / "model.onnx")
        model_file = conv.bundle / "model.onnx"
        if precision == "fp16":
            return conv.step("onnx fp16", onnx_fp32_to_fp16, onnx_file, model_file)
        shutil.copyfile(onnx_file, model_file)
        return model_file

    def check_int8(self, inference_dir: Path | None) -> None:
        check_qdq_tools()

    def int8_route(self, conv, program, calibration, learned_program=None):
        # QAT's program is not shipped here: its fine-tuned weights are exported and calibrated again.
        fp32_onnx = to_onnx(conv, program, program.with_suffix(".pdiparams"), conv.work / "fp32.onnx")
        weights, settings = chosen_int8_weights(conv)
        route = self.qdq_route(fp32_onnx, calibration, conv.work / "int8", weights)
        route.settings.update(settings)
        return route, fp32_onnx

    def qdq_route(self, fp32_onnx: Path, calibration, work: Path, weights: str = "s8"):
        """The INT8 route of this runtime from an FP32 ONNX model (also what benchmarks/int8.py measures)."""
        return qdq_route(fp32_onnx, calibration, work, self, weights=weights)
