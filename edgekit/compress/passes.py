"""Compression passes: typed, documented parameters (Olive-style), and what each pass does in a build.

A recipe (recipes/*.yaml) is an ordered list of passes; each list item names
its pass with `pass:` and sets that pass's parameters. The parameter models
here forbid unknown keys and check types and ranges, so a recipe is rejected
before any work starts, with the key and what was expected.

A pass is registered by subclassing `PassParams` with a `kind`. It joins a
build at up to two points, which `edgekit.build` calls with a `PassContext`:
`train(ctx)` changes the Paddle model's weights before export (distill, QAT
fine-tuning) and `quantize(ctx, program)` makes the INT8 artifact (ptq, qat)
with accuracy control. The heavy work lives beside them:
`edgekit.compress.quantize` (accuracy control), `edgekit.compress.qat`,
`edgekit.compress.distill`; how each runtime quantizes is its adapter's
(`edgekit.targets`, `RuntimeAdapter.int8_route`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgekit.compress.calibration import CompressionData
# The distill pass's own fields and checks (teacher in the zoo, class count) are the recipe's.
from edgekit.compress.distill import DistillPass
from edgekit.compress.routes import Calibration
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing

# Range estimators with the same meaning on every INT8 route (see edgekit.compress.quantize).
Algorithm = Literal["minmax", "percentile", "entropy"]

# kind -> pass class, filled as the classes below are defined (in definition order, which messages list).
PASS_PARAMS: dict[str, type["PassParams"]] = {}


@dataclass
class PassContext:
    """The build in progress, as passes see it; edgekit.build fills it in."""

    model: str
    num_classes: int
    preprocessing: Preprocessing
    data: CompressionData
    work: Path
    progress: Callable[[str], None] | None
    # The target's RuntimeAdapter and its targets.base.Conversion (bundle, options, timed steps).
    adapter: Any
    conversion: Any
    # The Paddle model being built and its weights file; training passes replace both.
    source_model: Any = None
    weights_file: Path | None = None
    # QAT's quantized Paddle program (scales learned), for the adapters that ship it as it is.
    learned_program: Path | None = None

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)


class PassParams(BaseModel):
    """Parameters of one pass; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str]
    # Does this pass make the model INT8 (and so need calibration images)?
    quantizes: ClassVar[bool] = False
    # Does it need labeled images (--calib) at all?
    needs_data: ClassVar[bool] = True
    # Does it change the model's weights (and so need --weights, not --inference-model)?
    trains: ClassVar[bool] = False
    # The manifest's `compression` key for what `train` records.
    record_name: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs):
        super().__pydantic_init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            PASS_PARAMS[cls.kind] = cls

    def check(self, recipe, num_classes: int) -> None:
        """Plan time, beyond the fields' own checks: can this pass run for a model of `num_classes`?"""

    def train(self, ctx: PassContext) -> dict | None:
        """Before export: change ctx.source_model / ctx.weights_file; returns the manifest record (None: no-op)."""
        return None


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


class Int8Pass(PassParams, AccuracyControl):
    """A pass that ends in an INT8 artifact: the target's route, under accuracy control."""

    quantizes: ClassVar[bool] = True

    def calibration(self, images: np.ndarray) -> Calibration:
        raise NotImplementedError

    def quantize(self, ctx: PassContext, program: Path) -> tuple[Path, dict, Any]:
        """The target's INT8 artifact in the bundle, accuracy-controlled; returns (model file, manifest record,
        the held-out outputs it was chosen on: edgekit.compress.quantize.HoldoutOutputs)."""
        import dataclasses

        from edgekit.compress.quantize import accuracy_controlled_quantization

        data = ctx.data
        start = time.perf_counter()
        route, fp32_model = ctx.adapter.int8_route(ctx.conversion, program, self.calibration(data.calibration),
                                                   ctx.learned_program)
        report = accuracy_controlled_quantization(
            route, fp32_model, data.holdout_images, data.holdout_labels, max_drop=self.max_drop,
            max_float_layers=self.max_float_layers, work=ctx.work / "int8-attempts", algorithm=self.algorithm,
            progress=ctx.progress)
        record = report.to_manifest()
        record["seconds"] = round(time.perf_counter() - start, 2)
        model_file, record["evaluated_on"], bundled = ctx.adapter.finish_int8(ctx.conversion, report.model_file)
        return model_file, record, dataclasses.replace(report.outputs, int8_is_bundled=bundled)


class PTQParams(Int8Pass):
    """Post-training static INT8 quantization: weights per channel, activations calibrated on images."""

    kind: ClassVar[str] = "ptq"
    algorithm: Algorithm = Field("minmax", description=(
        "Activation range estimator: minmax (observed min/max), percentile (clips the 0.01% tails) or "
        "entropy (KL-divergence optimal clipping)."))
    calibration_images: int = Field(256, ge=1, le=100_000, description=(
        "Images (the first of a seeded shuffle of --calib) run through the model to estimate activation ranges."))
    batch_size: int = Field(16, ge=1, le=1024, description="Calibration batch size.")
    per_channel: bool = Field(True, description="One weight scale per output channel (else one per tensor).")
    seed: int = Field(0, description="Seed of the shuffle that splits --calib into calibration and held-out images.")

    def calibration(self, images: np.ndarray) -> Calibration:
        return Calibration(images, self.algorithm, self.per_channel, self.batch_size)


class QATParams(Int8Pass):
    """Quantization-aware training: fine-tune with fake INT8 in the forward pass, then export INT8."""

    kind: ClassVar[str] = "qat"
    trains: ClassVar[bool] = True
    record_name: ClassVar[str] = "qat"
    epochs: int = Field(2, ge=1, le=1000, description="Fine-tuning epochs on the labeled --calib images.")
    lr: float = Field(1e-4, gt=0, le=1.0, description="Peak learning rate (Adam, cosine decay).")
    batch_size: int = Field(32, ge=2, le=1024, description="Training batch size.")
    train_images: Optional[int] = Field(None, ge=2, description=(
        "Images of --calib used for fine-tuning (null: all that are not held out)."))
    calibration_images: int = Field(256, ge=1, le=100_000, description=(
        "Images used to calibrate activation ranges where the route re-calibrates after fine-tuning."))
    algorithm: Algorithm = Field("minmax", description="Range estimator where the route re-calibrates.")
    seed: int = Field(0, description="Seed of the data split and of training.")

    def calibration(self, images: np.ndarray) -> Calibration:
        # Re-calibration after fine-tuning: weights per channel, the routes' usual batch.
        return Calibration(images, self.algorithm, per_channel=True, batch_size=16)

    def train(self, ctx: PassContext) -> dict:
        from edgekit.compress.qat import fine_tune

        ctx.say(f"qat: {self.epochs} epoch(s) of quantization-aware training")
        data = ctx.data
        images = data.train_images if self.train_images is None else data.train_images[:self.train_images]
        result = fine_tune(ctx.model, ctx.num_classes, ctx.weights_file, images, data.train_labels[:len(images)],
                           preprocessing=ctx.preprocessing, epochs=self.epochs, lr=self.lr,
                           batch_size=self.batch_size, seed=self.seed, out=ctx.work / "qat")
        ctx.source_model, ctx.weights_file, ctx.learned_program = result.model, result.weights, result.program
        return result.record


class DistillParams(PassParams, DistillPass):
    """Knowledge distillation (edgekit.compress.distill.DistillPass): the student learns the teacher's
    softened class distribution. `teacher_weights` may be relative to the recipe file, or set with
    --recipe-set distill.teacher_weights=PATH."""

    kind: ClassVar[str] = "distill"
    trains: ClassVar[bool] = True
    record_name: ClassVar[str] = "distillation"

    def check(self, recipe, num_classes: int) -> None:
        where = f"Recipe {recipe.name!r} ({recipe.source}): `distill.teacher_weights`"
        if self.teacher_weights is None:
            raise EdgekitError(f"{where} is required (the trained {self.teacher} .pdparams); set it in the recipe "
                               "or with --recipe-set distill.teacher_weights=PATH.")
        try:
            self.load_teacher(num_classes)
        except EdgekitError as exc:
            raise EdgekitError(f"{where}: {exc}") from None

    def train(self, ctx: PassContext) -> dict:
        import paddle

        from edgekit.training.decoded import DecodedImages

        ctx.say(f"distill from {self.teacher} ({self.epochs} epochs)")
        start = time.perf_counter()
        data = ctx.data
        train = DecodedImages(data.train_images, data.train_labels, data.source)
        result = self.distill(ctx.source_model, train, preprocessing=ctx.preprocessing, progress=False)
        student = result.student
        student.eval()
        weights = ctx.work / "distilled.pdparams"
        paddle.save(student.state_dict(), str(weights))
        ctx.source_model, ctx.weights_file = student, weights
        return {"teacher": self.teacher, "teacher_weights": str(self.teacher_weights),
                "train": result.train.to_dict(), "seconds": round(time.perf_counter() - start, 2)}
