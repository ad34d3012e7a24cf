"""Train or distill a zoo model by name on a dataset and save its .pdparams.

What `edgekit.api.train` / `edgekit.api.distill` run: resolve the model's
preprocessing (the card's, or a square `input_size` for small images such as
64x64 digits, exactly as `edgekit build --input-size` does), build the model
with a seeded initialisation, train, evaluate, save the weights atomically.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.data.datasets import LabeledImages, open_dataset
from edgekit.errors import EdgekitError
from edgekit.training.evaluation import evaluate
from edgekit.training.records import TrainResult
from edgekit.training.trainer import fit
from edgekit.preprocessing import Preprocessing
from edgekit.zoo.cards import get_card


@dataclass
class TrainedModel:
    """A zoo model trained here: where its weights are and how well it does."""

    model: str
    weights: Path
    num_classes: int
    preprocessing: Preprocessing
    train: TrainResult
    val: dict[str, float] | None = None
    teacher: str | None = None
    teacher_val_top1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "weights": str(self.weights), "num_classes": self.num_classes,
                "preprocessing": self.preprocessing.to_dict(), "train": self.train.to_dict(), "val": self.val,
                "teacher": self.teacher, "teacher_val_top1": self.teacher_val_top1}


def preprocessing_for(model: str, input_size: int | None = None) -> Preprocessing:
    """The card's preprocessing, or a square `input_size` with no resize margin (as build --input-size)."""
    preprocessing = get_card(model).preprocessing
    if input_size is None:
        return preprocessing
    if not 16 <= input_size <= 1024:
        raise EdgekitError(f"input_size {input_size} is out of range (expected 16..1024 pixels).")
    return dataclasses.replace(preprocessing, resize_short=input_size, crop=input_size)


def as_dataset(data: LabeledImages | str | Path, option: str) -> LabeledImages:
    if isinstance(data, LabeledImages):
        return data
    return open_dataset(data, option=option)


def infer_num_classes(train: LabeledImages, num_classes: int | None) -> int:
    if num_classes is not None:
        if num_classes < 2:
            raise EdgekitError(f"num_classes must be at least 2, got {num_classes}.")
        return num_classes
    if train.class_names:
        return len(train.class_names)
    labels = [s.label for s in train.samples if s.label >= 0]
    if not labels:
        raise EdgekitError(f"{train.source} has no labels to count the classes from; pass num_classes.")
    return max(labels) + 1


def new_model(name: str, num_classes: int, seed: int):
    """A zoo model with a seeded, process-independent initialisation."""
    import paddle

    from edgekit.zoo import create_model

    paddle.seed(seed)
    # Fresh parameter names: checkpoints and resumed runs see the same model whatever ran before.
    with paddle.utils.unique_name.guard():
        return create_model(name, num_classes=num_classes)


def save_weights(model, out: Path) -> Path:
    """paddle.save the state dict to `out` atomically (a temporary file, then a rename)."""
    import paddle

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    paddle.save(model.state_dict(), str(temporary))
    os.replace(temporary, out)
    return out


def train_zoo_model(model: str, train: LabeledImages | str | Path, val: LabeledImages | str | Path | None = None,
                    *, out: str | Path, num_classes: int | None = None, input_size: int | None = None,
                    epochs: int = 3, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                    checkpoint_dir: str | Path | None = None, augment: bool = False, warmup: float = 0.2,
                    progress: bool = True) -> TrainedModel:
    """Train zoo `model` from scratch on `train`, save the last weights to `out` (.pdparams)."""
    preprocessing = preprocessing_for(model, input_size)
    train_set = as_dataset(train, "training data")
    val_set = as_dataset(val, "validation data") if val is not None else None
    classes = infer_num_classes(train_set, num_classes)
    train_set.check_labels(classes)
    if val_set is not None:
        val_set.check_labels(classes)
    network = new_model(model, classes, seed)
    result = fit(network, train_set, preprocessing=preprocessing, epochs=epochs, batch_size=batch_size, lr=lr,
                 seed=seed, checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, val=val_set,
                 augment=augment, warmup=warmup, progress=progress)
    metrics = evaluate(network, val_set, preprocessing) if val_set is not None else None
    return TrainedModel(model, save_weights(network, Path(out)), classes, preprocessing, result, metrics)


def distill_zoo_model(student: str, train: LabeledImages | str | Path, val: LabeledImages | str | Path | None = None,
                      *, teacher: str, teacher_weights: str | Path | None, out: str | Path,
                      num_classes: int | None = None, input_size: int | None = None, epochs: int = 3,
                      temperature: float = 4.0, alpha: float = 0.9, use_labels: bool = True,
                      batch_size: int = 64, lr: float = 1e-3, seed: int = 0, work_dir: str | Path | None = None,
                      augment: bool = False, warmup: float = 0.2, progress: bool = True) -> TrainedModel:
    """Distill zoo `teacher` (trained weights required) into a fresh zoo `student`; save it to `out`."""
    from pydantic import ValidationError

    from edgekit.training.distillation import DistillationSettings

    try:
        step = DistillationSettings(teacher=teacher, teacher_weights=teacher_weights, temperature=temperature,
                                     alpha=alpha, use_labels=use_labels, epochs=epochs, lr=lr,
                                     batch_size=batch_size, seed=seed, augment=augment, warmup=warmup)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EdgekitError(f"Distillation settings are invalid: {problems}.") from None
    preprocessing = preprocessing_for(student, input_size)
    train_set = as_dataset(train, "distillation data")
    val_set = as_dataset(val, "validation data") if val is not None else None
    classes = infer_num_classes(train_set, num_classes)
    if val_set is not None:
        val_set.check_labels(classes)
    network = new_model(student, classes, seed)
    result = step.distill(network, train_set, val_set, preprocessing=preprocessing, work_dir=work_dir,
                          progress=progress)
    metrics = evaluate(network, val_set, preprocessing) if val_set is not None else None
    return TrainedModel(student, save_weights(network, Path(out)), classes, preprocessing, result.train, metrics,
                        teacher=teacher, teacher_val_top1=result.teacher_val_top1)
