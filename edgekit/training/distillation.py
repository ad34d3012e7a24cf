"""Knowledge distillation on the shared trainer: a zoo teacher (with trained weights) teaches a student.

    from edgekit.training.distillation import DistillationSettings
    settings = DistillationSettings(teacher="ResNet18", teacher_weights="teacher.pdparams", epochs=3)
    student = settings.run(student, train, val, preprocessing=pp, work_dir=Path("work"))

Loss per batch (Hinton et al., 2015):

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels)

The T^2 factor keeps the soft term's gradients on the scale of the label
term whatever the temperature. Images whose label is UNLABELED (-1) only get
the soft term; with `use_labels=False` every label is ignored (SSLD-style
label-free distillation, so any unlabeled images can be used).

The teacher sees exactly the student's input (same preprocessing) and runs in
eval mode without gradients; its logits for un-augmented training images are
computed once and reused every epoch. Everything a user can get wrong (no
teacher weights, a teacher of another class count, a bad temperature) is
checked before any training starts.

It lives in edgekit.training, not edgekit.compress, because training by zoo
name (edgekit.training.zoo_training) needs it too; the compression recipe pass
(edgekit.compress.distill.DistillPass) builds on it, never the other way round.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgekit.data.datasets import LabeledImages
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing
from edgekit.training.decoded import UNLABELED, DecodedImages, decode_images
from edgekit.training.evaluation import evaluate, predict_logits
from edgekit.training.losses import masked_cross_entropy
from edgekit.training.records import EpochRecord, TrainResult
from edgekit.training.trainer import fit

CHECKPOINT_SUBDIR = "distill-checkpoints"


@dataclass
class DistillResult:
    """What a distillation run did: the trained student, its training record, the teacher's val accuracy."""

    student: Any
    train: TrainResult
    teacher_val_top1: float | None
    teacher_seconds: float


class DistillationSettings(BaseModel):
    """Distill a zoo teacher (with trained weights) into the student model; FP32 result.

    Validated on construction (ranges, the teacher is a zoo model); the recipe
    pass `edgekit.compress.distill.DistillPass` is these settings plus its kind.
    `run(student, train, val=None, *, preprocessing, work_dir=None)` trains the
    student in place and returns it; `distill(...)` (same arguments) returns a
    DistillResult with the training record and the teacher's val accuracy.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    teacher: str = Field(description="Zoo model name of the teacher, e.g. ResNet50_vd.")
    teacher_weights: Path | None = Field(
        None, description="The teacher's trained .pdparams (required: a random teacher teaches nothing).")
    temperature: float = Field(4.0, gt=0, le=100, description="Softmax temperature T for teacher and student.")
    alpha: float = Field(0.9, ge=0, le=1, description="Weight of the teacher (soft) term; labels get 1 - alpha.")
    use_labels: bool = Field(True, description="Add cross-entropy on labels; False is label-free (SSLD-style).")
    epochs: int = Field(5, ge=1, le=1000, description="Training epochs over the distillation images.")
    lr: float = Field(1e-3, gt=0, le=1, description="Peak learning rate (Adam, cosine decay).")
    warmup: float = Field(0.2, ge=0, lt=1, description="Fraction of the steps spent warming the learning rate up.")
    batch_size: int = Field(64, ge=2, le=4096, description="Images per step.")
    seed: int = Field(0, description="Seed for shuffling, augmentation and dropout.")
    augment: bool = Field(False, description="Random shifts of the training images (no flips).")

    @field_validator("teacher")
    @classmethod
    def _teacher_in_zoo(cls, name: str) -> str:
        from edgekit.zoo import get_entry

        get_entry(name)  # the friendly unknown-model error, with suggestions
        return name

    # ------------------------------------------------------------------ checks

    def load_teacher(self, num_classes: int):
        """The teacher in eval mode with its weights; raises EdgekitError for a missing or mismatched teacher."""
        import paddle

        from edgekit.zoo import create_model
        from edgekit.zoo.weights import load_weights, read_state_dict

        if self.teacher_weights is None:
            raise EdgekitError(f"Distillation teacher {self.teacher} has no weights (teacher_weights is not set). "
                               "A randomly initialised teacher teaches nothing: train the teacher first "
                               "(edgekit.api.train) and pass its .pdparams as teacher_weights.")
        path = Path(self.teacher_weights)
        if not path.is_file():
            raise EdgekitError(f"Distillation teacher_weights {path} does not exist (expected the {self.teacher} "
                               ".pdparams the teacher was trained to).")
        with paddle.utils.unique_name.guard():
            teacher = create_model(self.teacher, num_classes=num_classes)
        teacher_classes = _classes_in_state_dict(teacher, read_state_dict(path), num_classes)
        if teacher_classes != num_classes:
            raise EdgekitError(f"Distillation teacher {self.teacher} ({path}) predicts {teacher_classes} classes but "
                               f"the student predicts {num_classes}; a teacher must be trained on the same classes "
                               "as the student.")
        load_weights(teacher, path)
        teacher.eval()
        return teacher

    # ------------------------------------------------------------------ running

    def distill(self, student, train: LabeledImages | DecodedImages, val: LabeledImages | DecodedImages | None = None,
                *, preprocessing: Preprocessing, work_dir: Path | str | None = None, progress: bool = True,
                on_epoch_end: Callable[[EpochRecord], None] | None = None) -> DistillResult:
        """Train `student` (in place) against the teacher on `train`; returns a DistillResult.

        `preprocessing` is the student's (the teacher sees the same inputs);
        with `work_dir`, checkpoints go to work_dir/distill-checkpoints and an
        interrupted run resumes. `val` adds per-epoch val top-1 and the
        teacher's val accuracy. `on_epoch_end` is the trainer's per-epoch callback.
        """
        num_classes = _output_classes(student, preprocessing)
        teacher = self.load_teacher(num_classes)  # before any data work: bad teachers fail fast
        train_data = decode_images(train, preprocessing, min_images=2, option="distillation data")
        if not self.use_labels:
            train_data = DecodedImages(train_data.images, np.full(len(train_data), UNLABELED, np.int64),
                                       f"{train_data.source} (labels ignored)", train_data.skipped)
        val_data = decode_images(val, preprocessing, option="validation data") if val is not None else None
        start = time.perf_counter()
        loss = DistillationLoss(teacher, self.temperature, self.alpha if self.use_labels else 1.0,
                                fingerprint=self.fingerprint())
        loss.precompute(train_data.images)
        teacher_val = None
        if val_data is not None:
            teacher_val = evaluate(teacher, val_data, preprocessing)["top1"]
        teacher_seconds = time.perf_counter() - start
        checkpoint_dir = Path(work_dir) / CHECKPOINT_SUBDIR if work_dir is not None else None
        result = fit(student, train_data, preprocessing=preprocessing, epochs=self.epochs,
                     batch_size=self.batch_size, lr=self.lr, seed=self.seed, checkpoint_dir=checkpoint_dir,
                     val=val_data, loss_fn=loss, augment=self.augment, warmup=self.warmup, progress=progress,
                     on_epoch_end=on_epoch_end)
        return DistillResult(student, result, teacher_val, teacher_seconds)

    def run(self, student, train: LabeledImages | DecodedImages, val: LabeledImages | DecodedImages | None = None,
            *, preprocessing: Preprocessing, work_dir: Path | str | None = None, progress: bool = True,
            on_epoch_end: Callable[[EpochRecord], None] | None = None):
        """Distill into `student` (trained in place) and return it, in eval mode (see `distill`)."""
        return self.distill(student, train, val, preprocessing=preprocessing, work_dir=work_dir, progress=progress,
                            on_epoch_end=on_epoch_end).student

    def fingerprint(self) -> str:
        """The settings that change the result; a checkpoint of other settings is not resumed."""
        weights = Path(self.teacher_weights) if self.teacher_weights else None
        sha = _file_digest(weights) if weights and weights.is_file() else None
        return (f"distill teacher={self.teacher} weights={sha} T={self.temperature} alpha={self.alpha} "
                f"labels={self.use_labels}")


class DistillationLoss:
    """loss_fn for the trainer: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE on known labels."""

    def __init__(self, teacher, temperature: float, alpha: float, fingerprint: str = ""):
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha
        self.fingerprint = fingerprint or f"distill T={temperature} alpha={alpha}"
        self._cached: dict[bytes, np.ndarray] = {}

    def precompute(self, images: np.ndarray) -> None:
        """Teacher logits of every (un-augmented) image, looked up by content in later epochs."""
        logits = predict_logits(self.teacher, images)
        self._cached = {_row_key(row): out for row, out in zip(images, logits)}

    def teacher_logits(self, images):
        import paddle

        array = images.numpy()
        keys = [_row_key(row) for row in array]
        if all(k in self._cached for k in keys):
            return paddle.to_tensor(np.stack([self._cached[k] for k in keys]))
        # Augmented (shifted) images: the teacher sees the very same pixels.
        with paddle.no_grad():
            return self.teacher(images).detach()

    def __call__(self, logits, labels, images):
        import paddle.nn.functional as F

        t = self.temperature
        teacher_log_probs = F.log_softmax(self.teacher_logits(images) / t, axis=1)
        student_log_probs = F.log_softmax(logits / t, axis=1)
        # KL(p_teacher || p_student), summed over classes, averaged over the batch.
        kl = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(axis=1).mean()
        loss = self.alpha * t * t * kl
        if self.alpha < 1 and bool((labels != UNLABELED).any()):
            loss = loss + (1 - self.alpha) * masked_cross_entropy(logits, labels)
        return loss


def _row_key(row: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()


def _file_digest(path: Path) -> str:
    from edgekit.hashing import file_sha256

    return file_sha256(path)[:16]


def _output_classes(model, preprocessing: Preprocessing) -> int:
    crop = preprocessing.crop
    logits = predict_logits(model, np.zeros((2, 3, crop, crop), np.float32))
    return int(logits.shape[1])


def _classes_in_state_dict(model, state: dict[str, np.ndarray], num_classes: int) -> int:
    """The class count `state` was trained for, read off the classifier bias (`model` has `num_classes`)."""
    expected = model.state_dict()
    # The classifier's bias is the 1-D parameter whose length is the class count.
    for key, value in expected.items():
        if list(value.shape) == [num_classes] and key in state and state[key].ndim == 1 \
                and state[key].shape[0] != num_classes and not key.endswith(("_mean", "_variance")):
            return int(state[key].shape[0])
    return num_classes
