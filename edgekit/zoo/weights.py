"""Loading PaddleClas `.pdparams` state dicts without executing code from them.

A `.pdparams` file is a Python pickle. Unpickling an untrusted pickle can run
arbitrary code, so we unpickle with an allow-list: numpy arrays, dtypes and
plain containers only. Anything else is refused and names the file.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.userfiles import read_bytes, require_file

# (module, name) pairs a PaddleClas state dict legitimately needs.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}

# Array dtypes a parameter can hold: bool, signed/unsigned integer, float (not object, str, structured).
_NUMERIC_KINDS = set("biuf")

# Paddle <= 2.x saved this bookkeeping entry beside the tensors.
_NAME_TABLE_KEY = "StructuredToParameterName@@"


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: Path):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise EdgekitError(
            f"Refusing to load {self._source}: it asks to import {module}.{name}, which a "
            "PaddleClas weights file never needs (a .pdparams file is a pickle and only numpy "
            "arrays and plain containers are accepted, because anything else could run code). "
            "Re-save the weights with paddle.save(model.state_dict(), path) from a trusted environment."
        )


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PaddleClas `.pdparams` file into {structured name: float array}."""
    path = require_file(path, "a PaddleClas .pdparams file", "Weights file")
    data = read_bytes(path, "a PaddleClas .pdparams file", "Weights file")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), path).load()
    except EdgekitError:
        raise
    except Exception as exc:  # truncated or not a pickle at all
        raise EdgekitError(
            f"Weights file {path} could not be read as a PaddleClas .pdparams state dict "
            f"({type(exc).__name__}: {exc}). The file may be truncated or not a .pdparams file; "
            "expected what paddle.save(model.state_dict(), path) writes."
        ) from None
    if not isinstance(obj, dict):
        raise EdgekitError(
            f"Weights file {path} holds a {type(obj).__name__}, not a state dict "
            "(expected a mapping of parameter names to arrays)."
        )
    state = OrderedDict()
    for key, value in obj.items():
        if key == _NAME_TABLE_KEY:
            continue
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise EdgekitError(
                f"Weights file {path} has entry {key!r} of type {type(value).__name__}; "
                "expected parameter names mapped to numpy arrays."
            )
        if value.dtype.kind not in _NUMERIC_KINDS or value.dtype.fields is not None:
            raise EdgekitError(
                f"Weights file {path} has entry {key!r} holding {value.dtype} values; expected numeric arrays "
                "(float, integer or bool), as paddle.save(model.state_dict(), path) writes."
            )
        state[key] = value
    return state


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_state_dict(model, state: dict[str, Any], source: str) -> None:
    """Raise an EdgekitError listing missing, unexpected and mis-shaped parameters."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} (file {tuple(state[k].shape)}, model {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} not in the model: {_listing(unexpected)}")
    if misshaped:
        problems.append(f"{len(misshaped)} with the wrong shape: {_listing(misshaped)}")
    if problems:
        raise EdgekitError(
            f"Weights {source} do not fit this model: " + "; ".join(problems) + ". "
            "Check that the weights were trained for this exact model name and class count "
            "(pass num_classes / --num-classes to match the checkpoint)."
        )


def load_weights(model, path: str | Path) -> str:
    """Load a PaddleClas `.pdparams` into `model` in place; returns the file's sha256."""
    import paddle

    state = read_state_dict(path)
    check_state_dict(model, state, str(path))
    current = model.state_dict()
    model.set_state_dict({k: paddle.to_tensor(v).astype(current[k].dtype) for k, v in state.items()})
    return file_sha256(path)
