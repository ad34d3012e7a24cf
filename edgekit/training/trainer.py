"""The shared small trainer: fine-tune or train a zoo model on a small labeled set.

    from edgekit.training import fit, evaluate
    result = fit(model, train, preprocessing=pp, epochs=3, val=val, checkpoint_dir=Path("ckpt"))
    print(result.best_val_top1, evaluate(model, val, pp))

Made for small sets (digits: 1,797 images): images are decoded and
preprocessed once into memory (edgekit.training.decoded). Adam with a cosine
learning-rate decay per step; `loss_fn=None` is cross-entropy on the labels,
distillation and QAT pass their own `loss_fn(logits, labels, images) -> loss`.

Reproducible and resumable:
- every random stream (shuffling, augmentation, dropout) is re-derived from
  (seed, epoch) at the start of each epoch, so the epoch number stored in a
  checkpoint *is* the RNG state, and the same seed gives identical weights on CPU;
- after every epoch the model, the optimizer moments and the run state
  (epoch, history, settings) go to `checkpoint_dir/epoch-NNN/`, written to a
  temporary directory and renamed, so a killed run never leaves a half
  checkpoint; `fit` with the same `checkpoint_dir` resumes after the last
  complete epoch and ends with the same weights as an uninterrupted run.

This module is the fit loop; evaluation (`evaluation`), checkpoints and
resuming (`checkpoints`), losses (`losses`) and the run records (`records`)
live beside it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.data.datasets import LabeledImages
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing
from edgekit.training.batchnorm import PRECISE_BN_IMAGES, refresh_batchnorm
from edgekit.training.checkpoints import (complete_checkpoints, load_checkpoint, run_settings, save_best,
                                          save_checkpoint)
from edgekit.training.decoded import UNLABELED, DecodedImages, decode_images
from edgekit.training.evaluation import predict_logits, topk_accuracy
from edgekit.training.losses import LossFn, cross_entropy_loss
from edgekit.training.records import EpochRecord, TrainResult

__all__ = ["fit", "cosine_lr", "random_shift"]

# BatchNorm in train mode cannot normalise a batch of one image.
MIN_TRAIN_IMAGES = 2


# --------------------------------------------------------------------------- randomness and schedule


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


def _seed_paddle(seed: int, epoch: int) -> None:
    import paddle

    # A distinct, reproducible paddle stream per epoch (dropout, drop-connect).
    paddle.seed(int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1)[0]))


def random_shift(batch: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Translate each image by up to `max_shift` px, repeating edge pixels (no flips: digits are not symmetric)."""
    if max_shift <= 0:
        return batch
    n, _, h, w = batch.shape
    padded = np.pad(batch, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)), mode="edge")
    offsets = rng.integers(0, 2 * max_shift + 1, size=(n, 2))
    return np.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def cosine_lr(base_lr: float, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to zero at `total_steps`."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    done = (min(step, total_steps) - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * done))


# --------------------------------------------------------------------------- training


def fit(model, train: LabeledImages | DecodedImages, *, preprocessing: Preprocessing, epochs: int,
        batch_size: int = 64, lr: float = 1e-3, seed: int = 0, checkpoint_dir: Path | str | None = None,
        val: LabeledImages | DecodedImages | None = None, loss_fn: LossFn | None = None,
        augment: bool = False, progress: bool = True, weight_decay: float = 0.0, warmup: float = 0.0,
        on_epoch_end: Callable[[EpochRecord], None] | None = None,
        precise_bn_images: int = PRECISE_BN_IMAGES) -> TrainResult:
    """Train `model` (a paddle.nn.Layer, modified in place) on `train` for `epochs` epochs.

    - `train` / `val`: LabeledImages (decoded and preprocessed once here with
      `preprocessing`) or already DecodedImages. Undecodable images are skipped
      and counted (`TrainResult.skipped_images`). Labels must be class ids of the
      model; with a custom `loss_fn`, UNLABELED (-1) marks images without a label.
    - `loss_fn(logits, labels, images) -> loss`: None is cross-entropy on labels.
    - `checkpoint_dir`: a checkpoint after every epoch; an existing one with the
      same settings is resumed (a finished run returns at once). With `val`,
      the best-val weights also go to `checkpoint_dir/best.pdparams`.
    - `augment`: random shifts of up to 1/8 of the crop (no flips).
    - `on_epoch_end(record)`: called after each epoch's checkpoint is written.
    - `precise_bn_images`: BatchNorm running statistics are recomputed over this many training images with
      the current weights before each validation and after the last epoch (edgekit.training.batchnorm);
      0 keeps the running averages of the training steps.

    The model is left in eval mode with the last epoch's weights. Raises
    EdgekitError for empty or too-small data, out-of-range labels, or a
    checkpoint directory written with other settings.
    """
    import paddle

    if epochs < 1:
        raise EdgekitError(f"epochs must be at least 1, got {epochs}.")
    if batch_size < 2:
        raise EdgekitError(f"batch_size must be at least 2 (BatchNorm needs two images), got {batch_size}.")
    if not lr > 0:
        raise EdgekitError(f"lr (learning rate) must be positive, got {lr}.")
    start_time = time.perf_counter()
    train_data = decode_images(train, preprocessing, min_images=MIN_TRAIN_IMAGES, option="training data")
    val_data = decode_images(val, preprocessing, option="validation data") if val is not None else None
    num_classes = _num_classes(model, train_data.images[:2])
    train_data.check_labels(num_classes, allow_unlabeled=loss_fn is not None, option="training data")
    if loss_fn is None and not train_data.labeled.any():
        raise EdgekitError(f"training data {train_data.source} has no labels; cross-entropy training needs "
                           "labels (label-free training needs a loss_fn, e.g. distillation).")
    if val_data is not None:
        val_data.check_labels(num_classes, option="validation data")
    loss_fn = loss_fn or cross_entropy_loss

    steps_per_epoch = _steps_per_epoch(len(train_data), batch_size)
    total_steps = steps_per_epoch * epochs
    warmup_steps = int(round(warmup * total_steps))
    optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters(),
                                      weight_decay=weight_decay or None)
    settings = run_settings(model, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, augment=augment,
                            train=train_data, loss_fn=loss_fn)
    settings.update(weight_decay=weight_decay, warmup=warmup, precise_bn_images=precise_bn_images)
    history: list[EpochRecord] = []
    best_epoch, best_val = None, None
    first_epoch, resumed_from = 1, None
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        done = complete_checkpoints(ckpt_dir)
        if done:
            state = load_checkpoint(done[-1], model, optimizer, settings)
            history = [EpochRecord(**r) for r in state["history"]]
            best_epoch, best_val = state["best_epoch"], state["best_val_top1"]
            resumed_from = state["epoch"]
            first_epoch = resumed_from + 1

    max_shift = max(1, preprocessing.crop // 8) if augment else 0
    with _progress_bar(progress) as bar:
        task = bar.add_task("training", total=total_steps, completed=(first_epoch - 1) * steps_per_epoch) \
            if bar else None
        for epoch in range(first_epoch, epochs + 1):
            epoch_start = time.perf_counter()
            rng = _epoch_rng(seed, epoch)
            _seed_paddle(seed, epoch)
            model.train()
            order = rng.permutation(len(train_data))
            loss_sum, seen, correct, labeled = 0.0, 0, 0, 0
            for index in range(steps_per_epoch):
                step = (epoch - 1) * steps_per_epoch + index
                optimizer.set_lr(cosine_lr(lr, step, total_steps, warmup_steps))
                rows = order[index * batch_size:(index + 1) * batch_size]
                images = random_shift(train_data.images[rows], rng, max_shift)
                labels = train_data.labels[rows]
                images_t, labels_t = paddle.to_tensor(images), paddle.to_tensor(labels)
                logits = model(images_t)
                loss = loss_fn(logits, labels_t, images_t)
                loss.backward()
                # Adam creates its moment tensors at the first step, named from a process-wide counter
                # ("conv2d_0.w_0_moment1_3"); a fresh name scope makes them "..._0" in every run, so a
                # checkpoint's optimizer state finds its tensors again in a resumed process.
                with paddle.utils.unique_name.guard():
                    optimizer.step()
                optimizer.clear_grad()
                loss_value = float(loss)
                if not math.isfinite(loss_value):
                    raise EdgekitError(f"Training diverged at epoch {epoch} (loss {loss_value}); lower lr "
                                       f"(now {lr}).")
                loss_sum += loss_value * len(rows)
                seen += len(rows)
                known = labels != UNLABELED
                correct += int((logits.numpy().argmax(1)[known] == labels[known]).sum())
                labeled += int(known.sum())
                if bar:
                    bar.update(task, advance=1, description=f"epoch {epoch}/{epochs} loss {loss_sum / seen:.4f}")
            if precise_bn_images and (val_data is not None or epoch == epochs):
                refresh_batchnorm(model, train_data.images, batch_size, precise_bn_images, seed)
            val_top1 = None
            if val_data is not None:
                val_top1 = topk_accuracy(predict_logits(model, val_data.images), val_data.labels)["top1"]
            last_lr = cosine_lr(lr, epoch * steps_per_epoch - 1, total_steps, warmup_steps)
            record = EpochRecord(epoch=epoch, loss=loss_sum / seen, train_top1=correct / labeled if labeled else None,
                                 val_top1=val_top1, lr=last_lr, seconds=round(time.perf_counter() - epoch_start, 3))
            history.append(record)
            if val_top1 is not None and (best_val is None or val_top1 > best_val):
                best_epoch, best_val = epoch, val_top1
                if ckpt_dir is not None:
                    save_best(ckpt_dir, model)
            if ckpt_dir is not None:
                save_checkpoint(ckpt_dir, model, optimizer, {
                    "epoch": epoch, "settings": settings, "history": [asdict(r) for r in history],
                    "best_epoch": best_epoch, "best_val_top1": best_val,
                    "rng": f"derived from (seed={seed}, epoch) at the start of each epoch"})
            if bar:
                bar.console.print(record.describe(epochs), highlight=False)
            if on_epoch_end is not None:
                on_epoch_end(record)
    model.eval()
    return TrainResult(history=history, best_epoch=best_epoch, best_val_top1=best_val, train_images=len(train_data),
                       skipped_images=len(train_data.skipped) + (len(val_data.skipped) if val_data else 0),
                       resumed_from_epoch=resumed_from, checkpoint_dir=ckpt_dir,
                       seconds=time.perf_counter() - start_time)


def _num_classes(model, probe: np.ndarray) -> int:
    logits = predict_logits(model, probe)
    if logits.ndim != 2:
        raise EdgekitError(f"The model returns an output of shape {list(logits.shape)}; the trainer needs "
                           "classification logits of shape [batch, classes].")
    if not np.isfinite(logits).all():
        raise EdgekitError(f"The model returns non-finite logits on {probe.shape[2]}x{probe.shape[3]} inputs before "
                           "any training: the input size is too small for this architecture (its feature map "
                           "shrinks to nothing). Use a larger input size.")
    return int(logits.shape[1])


def _steps_per_epoch(n: int, batch_size: int) -> int:
    # A trailing batch of one image is dropped: BatchNorm cannot train on it.
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress_bar(enabled: bool):
    if not enabled:
        return _NoBar()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
