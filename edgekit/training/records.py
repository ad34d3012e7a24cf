"""What a training run reports: one EpochRecord per epoch and the run's TrainResult."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.training.checkpoints import BEST_WEIGHTS


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    # Accuracy on the (augmented) training batches as seen while training; None without labels.
    train_top1: float | None
    val_top1: float | None
    lr: float  # at the epoch's last step
    seconds: float

    def describe(self, epochs: int) -> str:
        """One progress line: "epoch 2/3, loss 0.1234, train top-1 0.950, val top-1 0.930, 1.2s"."""
        parts = [f"epoch {self.epoch}/{epochs}", f"loss {self.loss:.4f}"]
        if self.train_top1 is not None:
            parts.append(f"train top-1 {self.train_top1:.3f}")
        if self.val_top1 is not None:
            parts.append(f"val top-1 {self.val_top1:.3f}")
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts)


@dataclass
class TrainResult:
    history: list[EpochRecord]
    best_epoch: int | None
    best_val_top1: float | None
    train_images: int
    skipped_images: int
    resumed_from_epoch: int | None = None
    checkpoint_dir: Path | None = None
    seconds: float = 0.0

    @property
    def last(self) -> EpochRecord:
        return self.history[-1]

    @property
    def best_weights(self) -> Path | None:
        """The best-val-epoch weights (a .pdparams), when a checkpoint dir and a val set were given."""
        path = self.checkpoint_dir / BEST_WEIGHTS if self.checkpoint_dir else None
        return path if path is not None and path.is_file() else None

    def to_dict(self) -> dict[str, Any]:
        return {"history": [asdict(r) for r in self.history], "best_epoch": self.best_epoch,
                "best_val_top1": self.best_val_top1, "train_images": self.train_images,
                "skipped_images": self.skipped_images, "resumed_from_epoch": self.resumed_from_epoch,
                "checkpoint_dir": str(self.checkpoint_dir) if self.checkpoint_dir else None,
                "seconds": round(self.seconds, 2)}
