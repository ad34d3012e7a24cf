"""Knowledge distillation as a compression pass: a larger zoo teacher teaches the model being built.

    from edgekit.compress.distill import DistillPass
    step = DistillPass(teacher="ResNet18", teacher_weights="teacher.pdparams", epochs=3)
    student = step.run(student, train, val, preprocessing=pp, work_dir=Path("work"))

The loss, the teacher checks and the training run are the trainer's
(edgekit.training.distillation, where the loss is described); this module adds
what makes them a recipe pass, its kind (`pass: distill`). The dependency runs
one way: compression uses the trainer, the trainer never imports compression.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekit.training.distillation import DistillationSettings

__all__ = ["DistillPass"]


class DistillPass(DistillationSettings):
    """Distill a zoo teacher (with trained weights) into the student model; FP32 result.

    Built from a recipe pass (`pass: distill` plus these fields) or directly.
    `run(student, train, val=None, *, preprocessing, work_dir=None)` trains the
    student in place and returns it; `distill(...)` (same arguments) returns a
    DistillResult with the training record and the teacher's val accuracy.
    """

    pass_name: Literal["distill"] = Field("distill", alias="pass", description="Recipe pass kind.")
