"""The Paddle Inference adapter: legacy `.pdmodel` programs (targets/paddle.yaml).

Also the INT8 route every Paddle-program runtime shares (Paddle Lite's
optimizer converts the same quantized program): PaddleSlim, or QAT's program.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.targets.base import Conversion, RuntimeAdapter


def paddleslim_route(conv: Conversion, program: Path, calibration, learned_program: Path | None,
                     runtime: RuntimeAdapter):
    """QAT's quantized program when there is one (scales learned), else PaddleSlim post-training
    quantization; `runtime` evaluates the quantized programs on this host."""
    from edgekit.compress.routes import FixedProgramRoute, PaddleSlimRoute

    if learned_program is not None:
        return FixedProgramRoute(learned_program, runtime)
    return PaddleSlimRoute(program, calibration.images, algorithm=calibration.algorithm,
                           per_channel=calibration.per_channel, batch_size=calibration.batch_size, runtime=runtime,
                           work=conv.work / "int8")


class PaddleInferenceAdapter(RuntimeAdapter):
    runtime = "paddle-inference"
    peak_format = "paddle"

    def export(self, conv: Conversion, program: Path, params: Path, precision: str) -> Path:
        # The program is the artifact (legacy .pdmodel or, from --inference-model, PIR .json).
        model_file = conv.bundle / ("model" + program.suffix)
        shutil.copyfile(program, model_file)
        shutil.copyfile(params, conv.bundle / "model.pdiparams")
        return model_file

    def check_int8(self, inference_dir: Path | None) -> None:
        if inference_dir is not None and not (inference_dir / "inference.pdmodel").is_file():
            raise EdgekitError(f"--inference-model {inference_dir} holds a Paddle 3 PIR program (inference.json); "
                               "PaddleSlim quantizes legacy programs only. Pass --weights instead (edgekit exports "
                               "the legacy program itself).")

    def int8_route(self, conv, program, calibration, learned_program=None):
        return paddleslim_route(conv, program, calibration, learned_program, self), program
