"""The shared small trainer: fine-tune or train a zoo model on a small labeled set.

    from edgekit.training import fit, evaluate
    result = fit(model, train, preprocessing=pp, epochs=3, val=val, checkpoint_dir=Path("ckpt"))
    print(result.best_val_top1, evaluate(model, val, pp))

Made for small sets (digits: 1,797 images): images are decoded and
preprocessed once into memory (edgekit.training.data). Adam with a cosine
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
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.data.datasets import LabeledImages
from edgekit.errors import EdgekitError
from edgekit.training.data import UNLABELED, DecodedImages, decode_images
from edgekit.preprocessing import Preprocessing

# (logits, labels, images) -> scalar loss tensor. Labels may hold UNLABELED (-1) entries.
LossFn = Callable[[Any, Any, Any], Any]

CHECKPOINT_PREFIX = "epoch-"
BEST_WEIGHTS = "best.pdparams"
# Older epoch checkpoints are deleted; the newest ones are enough to resume.
CHECKPOINTS_KEPT = 2
# BatchNorm in train mode cannot normalise a batch of one image.
MIN_TRAIN_IMAGES = 2


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    # Accuracy on the (augmented) training batches as seen while training; None without labels.
    train_top1: float | None
    val_top1: float | None
    lr: float  # at the epoch's last step
    seconds: float


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


# --------------------------------------------------------------------------- evaluation


def predict_logits(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits of an NCHW float32 array, batch by batch."""
    import paddle

    was_training = model.training
    model.eval()
    outputs = []
    with paddle.no_grad():
        for start in range(0, len(images), batch_size):
            outputs.append(model(paddle.to_tensor(images[start:start + batch_size])).numpy())
    if was_training:
        model.train()
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """top-1 and top-5 (top-k capped at the class count) over the labeled rows."""
    known = labels != UNLABELED
    logits, labels = logits[known], labels[known]
    if not len(labels):
        return {"top1": float("nan"), "top5": float("nan"), "n": 0}
    k = min(5, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return {"top1": float((top[:, 0] == labels).mean()), "top5": float((top == labels[:, None]).any(1).mean()),
            "n": int(len(labels))}


def evaluate(model, data: LabeledImages | DecodedImages, preprocessing: Preprocessing,
             batch_size: int = 256) -> dict[str, float]:
    """Top-1/top-5 of `model` on `data` (eval mode): {"top1", "top5", "n", "skipped"}."""
    decoded = decode_images(data, preprocessing, option="evaluation data")
    logits = predict_logits(model, decoded.images, batch_size)
    decoded.check_labels(logits.shape[1], allow_unlabeled=True, option="evaluation data")
    return {**topk_accuracy(logits, decoded.labels), "skipped": len(decoded.skipped)}


# --------------------------------------------------------------------------- randomness


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


# --------------------------------------------------------------------------- checkpoints


def _optimizer_state_by_structured_name(model, optimizer) -> dict[str, Any]:
    """The optimizer state keyed by structured parameter names instead of paddle's run-time names.

    Paddle keys accumulators by `param.name` ("conv2d_53.w_0_moment1_0"), which
    depends on how many layers the process created before; a resumed run may
    build its model with other names, so the keys are translated both ways.
    """
    names = sorted(((p.name, n) for n, p in model.named_parameters()), key=lambda t: -len(t[0]))
    out = {}
    for key, value in optimizer.state_dict().items():
        for runtime_name, structured in names:
            if key.startswith(runtime_name + "_"):
                out[structured + "@" + key[len(runtime_name) + 1:]] = value
                break
        else:
            out[key] = value
    return out


def _optimizer_state_for_model(model, state: dict[str, Any]) -> dict[str, Any]:
    runtime = {n: p.name for n, p in model.named_parameters()}
    out = {}
    for key, value in state.items():
        structured, sep, suffix = key.partition("@")
        out[f"{runtime[structured]}_{suffix}" if sep and structured in runtime else key] = value
    return out


def _complete_checkpoints(directory: Path) -> list[Path]:
    found = []
    for path in directory.glob(CHECKPOINT_PREFIX + "*"):
        suffix = path.name[len(CHECKPOINT_PREFIX):]
        if path.is_dir() and suffix.isdigit() and (path / "state.json").is_file():
            found.append(path)
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def _save_checkpoint(directory: Path, model, optimizer, state: dict[str, Any]) -> Path:
    import paddle

    final = directory / f"{CHECKPOINT_PREFIX}{state['epoch']:03d}"
    temporary = directory / f".{final.name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    paddle.save(model.state_dict(), str(temporary / "model.pdparams"))
    paddle.save(_optimizer_state_by_structured_name(model, optimizer), str(temporary / "optimizer.pdopt"))
    # state.json last: its presence marks the checkpoint complete.
    (temporary / "state.json").write_text(json.dumps(state, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    for old in _complete_checkpoints(directory)[:-CHECKPOINTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _save_best(directory: Path, model) -> None:
    import paddle

    temporary = directory / f".{BEST_WEIGHTS}.tmp"
    paddle.save(model.state_dict(), str(temporary))
    os.replace(temporary, directory / BEST_WEIGHTS)


def _load_checkpoint(path: Path, model, optimizer, settings: dict[str, Any]) -> dict[str, Any]:
    import paddle

    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise EdgekitError(f"Checkpoint {path}/state.json could not be read ({exc}); delete {path} to resume "
                           "from the checkpoint before it.") from None
    _check_resumable(path, state.get("settings", {}), settings)
    try:
        model.set_state_dict(paddle.load(str(path / "model.pdparams")))
        optimizer.set_state_dict(_optimizer_state_for_model(model, paddle.load(str(path / "optimizer.pdopt"))))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise EdgekitError(f"Checkpoint {path} could not be read to resume training ({type(exc).__name__}: "
                           f"{exc}). Delete that directory to resume from the one before, or start afresh "
                           "with another checkpoint directory.") from None
    return state


# --------------------------------------------------------------------------- training


def _run_settings(model, *, epochs, batch_size, lr, seed, augment, train: DecodedImages, loss_fn) -> dict:
    return {"model": type(model).__name__, "parameters": int(sum(int(np.prod(p.shape)) for p in model.parameters())),
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "augment": augment,
            "train_images": len(train), "loss": _loss_name(loss_fn)}


def _loss_name(loss_fn) -> str:
    # A loss may carry a `fingerprint` of its own settings (distillation: teacher, T, alpha).
    if loss_fn is None:
        return "cross-entropy"
    return str(getattr(loss_fn, "fingerprint", None) or getattr(loss_fn, "__qualname__", type(loss_fn).__name__))


def _check_resumable(path: Path, saved: dict, settings: dict) -> None:
    differ = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
    if differ:
        listing = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in differ.items())
        raise EdgekitError(f"Checkpoint directory {path.parent} holds a run with other settings ({listing}), so "
                           "resuming it would not give the run you asked for. Use another checkpoint directory, "
                           "or delete this one to start afresh.")


def masked_cross_entropy(logits, labels):
    """Mean cross-entropy over the rows whose label is known (UNLABELED rows add nothing).

    paddle's `cross_entropy(ignore_index=...)` divides by the whole batch, ignored
    rows included, which would shrink the label term on partly labeled batches.
    """
    import paddle
    import paddle.nn.functional as F

    known = (labels != UNLABELED).astype("float32")
    per_row = F.cross_entropy(logits, labels, ignore_index=UNLABELED, reduction="none").reshape([-1])
    return (per_row * known).sum() / paddle.clip(known.sum(), min=1.0)


def _cross_entropy(logits, labels, images):
    return masked_cross_entropy(logits, labels)


def fit(model, train: LabeledImages | DecodedImages, *, preprocessing: Preprocessing, epochs: int,
        batch_size: int = 64, lr: float = 1e-3, seed: int = 0, checkpoint_dir: Path | str | None = None,
        val: LabeledImages | DecodedImages | None = None, loss_fn: LossFn | None = None,
        augment: bool = False, progress: bool = True, weight_decay: float = 0.0, warmup: float = 0.0,
        on_epoch_end: Callable[[EpochRecord], None] | None = None) -> TrainResult:
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
    loss_fn = loss_fn or _cross_entropy

    steps_per_epoch = _steps_per_epoch(len(train_data), batch_size)
    total_steps = steps_per_epoch * epochs
    warmup_steps = int(round(warmup * total_steps))
    optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters(),
                                      weight_decay=weight_decay or None)
    settings = _run_settings(model, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, augment=augment,
                             train=train_data, loss_fn=None if loss_fn is _cross_entropy else loss_fn)
    settings.update(weight_decay=weight_decay, warmup=warmup)
    history: list[EpochRecord] = []
    best_epoch, best_val = None, None
    first_epoch, resumed_from = 1, None
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        done = _complete_checkpoints(ckpt_dir)
        if done:
            state = _load_checkpoint(done[-1], model, optimizer, settings)
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
                    _save_best(ckpt_dir, model)
            if ckpt_dir is not None:
                _save_checkpoint(ckpt_dir, model, optimizer, {
                    "epoch": epoch, "settings": settings, "history": [asdict(r) for r in history],
                    "best_epoch": best_epoch, "best_val_top1": best_val,
                    "rng": f"derived from (seed={seed}, epoch) at the start of each epoch"})
            if bar:
                bar.console.print(_describe(record, epochs), highlight=False)
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


def _describe(record: EpochRecord, epochs: int) -> str:
    parts = [f"epoch {record.epoch}/{epochs}", f"loss {record.loss:.4f}"]
    if record.train_top1 is not None:
        parts.append(f"train top-1 {record.train_top1:.3f}")
    if record.val_top1 is not None:
        parts.append(f"val top-1 {record.val_top1:.3f}")
    parts.append(f"{record.seconds:.1f}s")
    return ", ".join(parts)


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
