"""The Paddle Inference adapter: legacy `.pdmodel` programs (targets/paddle.yaml).

Also the INT8 route every Paddle-program runtime shares (Paddle Lite's
optimizer converts the same quantized program): Paddle's own post-training
quantization, or QAT's program. Both work on legacy programs; a PIR
`--inference-model` is re-exported as one first (see `reads_program`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgekit.targets.base import Conversion, RuntimeAdapter


def paddle_ptq_route(conv: Conversion, program: Path, calibration, learned_program: Path | None,
                     runtime: RuntimeAdapter):
    """QAT's quantized program when there is one (scales learned), else Paddle's post-training
    quantization; `runtime` evaluates the quantized programs on this host."""
    from edgekit.compress.routes import FixedProgramRoute, PaddlePTQRoute

    if learned_program is not None:
        return FixedProgramRoute(learned_program, runtime)
    return PaddlePTQRoute(program, calibration.images, algorithm=calibration.algorithm,
                           per_channel=calibration.per_channel, batch_size=calibration.batch_size, runtime=runtime,
                           work=conv.work / "int8")


class PaddleInferenceAdapter(RuntimeAdapter):
    runtime = "paddle-inference"
    peak_format = "paddle"
    quantizes_pir_programs = False

    def export(self, conv: Conversion, program: Path, params: Path, precision: str) -> Path:
        # The program is the artifact (legacy .pdmodel or, from --inference-model, PIR .json).
        model_file = conv.bundle / ("model" + program.suffix)
        shutil.copyfile(program, model_file)
        shutil.copyfile(params, conv.bundle / "model.pdiparams")
        return model_file

    def int8_route(self, conv, program, calibration, learned_program=None):
        return paddle_ptq_route(conv, program, calibration, learned_program, self), program
