"""Compression passes as typed, documented parameter models (Olive-style).

A recipe (recipes/*.yaml) is an ordered list of passes; each list item names
its pass with `pass:` and sets that pass's parameters. The parameter models
here forbid unknown keys and check types and ranges, so a recipe is rejected
before any work starts, with the key and what was expected.

The passes' work lives beside them: `edgekit.compress.quantize` (PTQ and the
accuracy control), `edgekit.compress.qat`, `edgekit.compress.distill`.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

# The distill pass's own fields and checks (teacher in the zoo, class count) are the recipe's.
from edgekit.compress.distill import DistillPass

# Range estimators with the same meaning on every INT8 route (see edgekit.compress.quantize).
Algorithm = Literal["minmax", "percentile", "entropy"]


class PassParams(BaseModel):
    """Parameters of one pass; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str]
    # Does this pass make the model INT8 (and so need calibration images)?
    quantizes: ClassVar[bool] = False
    # Does it need labeled images (--calib) at all?
    needs_data: ClassVar[bool] = True


class AccuracyControl(BaseModel):
    """Shared by the INT8 passes: how INT8 is compared with FP32."""

    model_config = ConfigDict(extra="forbid")
    holdout_images: int = Field(500, ge=1, le=100_000, description=(
        "Images of --calib, disjoint from those used to calibrate or fine-tune, on which INT8 top-1 is "
        "compared with FP32 top-1."))
    max_drop: Optional[float] = Field(0.01, ge=0.0, le=1.0, description=(
        "Largest allowed top-1 drop, as a fraction (0.01 = one point). While the drop is larger, the layers "
        "whose quantization costs most (measured, layer by layer) go back to float; if the budget cannot be "
        "met the build fails. null: measure and record the drop, never fail on it."))
    max_float_layers: Optional[int] = Field(None, ge=0, description=(
        "At most this many layers may go back to float before the build gives up (null: no limit)."))


class PTQParams(PassParams, AccuracyControl):
    """Post-training static INT8 quantization: weights per channel, activations calibrated on images."""

    kind: ClassVar[str] = "ptq"
    quantizes: ClassVar[bool] = True
    algorithm: Algorithm = Field("minmax", description=(
        "Activation range estimator: minmax (observed min/max), percentile (clips the 0.01% tails) or "
        "entropy (KL-divergence optimal clipping)."))
    calibration_images: int = Field(256, ge=1, le=100_000, description=(
        "Images (the first of a seeded shuffle of --calib) run through the model to estimate activation ranges."))
    batch_size: int = Field(16, ge=1, le=1024, description="Calibration batch size.")
    per_channel: bool = Field(True, description="One weight scale per output channel (else one per tensor).")
    seed: int = Field(0, description="Seed of the shuffle that splits --calib into calibration and held-out images.")


class QATParams(PassParams, AccuracyControl):
    """Quantization-aware training: fine-tune with fake INT8 in the forward pass, then export INT8."""

    kind: ClassVar[str] = "qat"
    quantizes: ClassVar[bool] = True
    epochs: int = Field(2, ge=1, le=1000, description="Fine-tuning epochs on the labeled --calib images.")
    lr: float = Field(1e-4, gt=0, le=1.0, description="Peak learning rate (Adam, cosine decay).")
    batch_size: int = Field(32, ge=2, le=1024, description="Training batch size.")
    train_images: Optional[int] = Field(None, ge=2, description=(
        "Images of --calib used for fine-tuning (null: all that are not held out)."))
    calibration_images: int = Field(256, ge=1, le=100_000, description=(
        "Images used to calibrate activation ranges where the route re-calibrates after fine-tuning."))
    algorithm: Algorithm = Field("minmax", description="Range estimator where the route re-calibrates.")
    seed: int = Field(0, description="Seed of the data split and of training.")


class DistillParams(PassParams, DistillPass):
    """Knowledge distillation (edgekit.compress.distill.DistillPass): the student learns the teacher's
    softened class distribution. `teacher_weights` may be relative to the recipe file, or set with
    --recipe-set distill.teacher_weights=PATH."""

    kind: ClassVar[str] = "distill"


PASS_PARAMS: dict[str, type[PassParams]] = {cls.kind: cls for cls in (PTQParams, QATParams, DistillParams)}
