"""The trainer's checkpoints: an atomic per-epoch save, the best-val weights, and resuming.

Layout under `checkpoint_dir`:

    epoch-NNN/model.pdparams     the model after epoch NNN
    epoch-NNN/optimizer.pdopt    Adam's moments, keyed by structured parameter names
    epoch-NNN/state.json         epoch, history, run settings (written last: marks the checkpoint complete)
    best.pdparams                the weights of the best-val epoch so far

Each epoch is written to a temporary directory and renamed, so a killed run
never leaves a half checkpoint. A checkpoint is only resumed by a run with the
same settings (`run_settings`); anything else would not be the run asked for.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.training.decoded import DecodedImages
from edgekit.training.losses import LossFn, loss_name

CHECKPOINT_PREFIX = "epoch-"
BEST_WEIGHTS = "best.pdparams"
# Older epoch checkpoints are deleted; the newest ones are enough to resume.
CHECKPOINTS_KEPT = 2


def run_settings(model, *, epochs, batch_size, lr, seed, augment, train: DecodedImages,
                 loss_fn: LossFn | None) -> dict:
    """The settings a checkpoint records; a resumed run must match them all."""
    return {"model": type(model).__name__, "parameters": int(sum(int(np.prod(p.shape)) for p in model.parameters())),
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "augment": augment,
            "train_images": len(train), "loss": loss_name(loss_fn)}


def check_resumable(path: Path, saved: dict, settings: dict) -> None:
    differ = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
    if differ:
        listing = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in differ.items())
        raise EdgekitError(f"Checkpoint directory {path.parent} holds a run with other settings ({listing}), so "
                           "resuming it would not give the run you asked for. Use another checkpoint directory, "
                           "or delete this one to start afresh.")


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


def complete_checkpoints(directory: Path) -> list[Path]:
    """The complete epoch checkpoints in `directory`, oldest first."""
    found = []
    for path in directory.glob(CHECKPOINT_PREFIX + "*"):
        suffix = path.name[len(CHECKPOINT_PREFIX):]
        if path.is_dir() and suffix.isdigit() and (path / "state.json").is_file():
            found.append(path)
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(directory: Path, model, optimizer, state: dict[str, Any]) -> Path:
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
    for old in complete_checkpoints(directory)[:-CHECKPOINTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(directory: Path, model) -> None:
    import paddle

    temporary = directory / f".{BEST_WEIGHTS}.tmp"
    paddle.save(model.state_dict(), str(temporary))
    os.replace(temporary, directory / BEST_WEIGHTS)


def load_checkpoint(path: Path, model, optimizer, settings: dict[str, Any]) -> dict[str, Any]:
    """Restore `model` and `optimizer` from checkpoint `path`; returns its state.json."""
    import paddle

    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise EdgekitError(f"Checkpoint {path}/state.json could not be read ({exc}); delete {path} to resume "
                           "from the checkpoint before it.") from None
    check_resumable(path, state.get("settings", {}), settings)
    try:
        model.set_state_dict(paddle.load(str(path / "model.pdparams")))
        optimizer.set_state_dict(_optimizer_state_for_model(model, paddle.load(str(path / "optimizer.pdopt"))))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise EdgekitError(f"Checkpoint {path} could not be read to resume training ({type(exc).__name__}: "
                           f"{exc}). Delete that directory to resume from the one before, or start afresh "
                           "with another checkpoint directory.") from None
    return state
