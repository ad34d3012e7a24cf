"""Loading PaddleClas `.pdparams` state dicts without executing code from them.

A `.pdparams` file is a Python pickle. Unpickling an untrusted pickle can run
arbitrary code, so we unpickle with an allow-list: numpy arrays, dtypes and
plain containers only. Anything else is refused and names the file.
"""

from __future__ import annotations

import io
import math
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.userfiles import read_bytes, require_file

# Paddle <= 2.x saved this bookkeeping entry beside the tensors.
_NAME_TABLE_KEY = "StructuredToParameterName@@"
# Array element types a parameter can hold: bool, signed/unsigned integer, float.
_NUMERIC_KINDS = set("biuf")


class _Refused(Exception):
    """A pickle that asks for something a state dict never holds."""


class _Dtype:
    """numpy.dtype(spec, align, copy) as pickled, kept inert until checked."""

    def __init__(self, spec=None, align=False, copy=True, *_):
        self.spec, self.byteorder = spec, None

    def __setstate__(self, state):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags): plain dtypes only.
        if not isinstance(state, tuple) or len(state) < 5 or any(part is not None for part in state[2:5]):
            raise _Refused("a structured or sub-array dtype")
        self.byteorder = state[1]

    def resolve(self) -> np.dtype:
        if not isinstance(self.spec, str) or self.byteorder not in (None, "<", ">", "|", "="):
            raise _Refused(f"dtype {self.spec!r}")
        try:
            dtype = np.dtype(self.spec)
        except TypeError:
            raise _Refused(f"dtype {self.spec!r}") from None
        if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise _Refused(f"{dtype} values (expected float, integer or bool)")
        return dtype.newbyteorder(self.byteorder) if self.byteorder in ("<", ">") else dtype


class _Array:
    """numpy's _reconstruct(ndarray, (0,), b'b') plus BUILD state, turned into an array by `resolve`."""

    def __init__(self, *_):
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def resolve(self) -> np.ndarray:
        # (version, shape, dtype, is_fortran, raw bytes)
        state = self.state
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Refused("an array without its data")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _Dtype):
            raise _Refused("an array without a dtype")
        dtype = dtype.resolve()
        if not isinstance(raw, bytes) or not isinstance(shape, tuple) \
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise _Refused("an array with a malformed shape or data")
        count = math.prod(shape)  # exact: a numpy product could wrap around
        if count * dtype.itemsize != len(raw):
            raise _Refused(f"an array of shape {shape} with {len(raw)} bytes of data")
        array = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
        return np.array(array)  # writable, owns its memory


class _NdarrayName:
    """What `numpy.ndarray` stands for: only ever _reconstruct's first argument, never called."""

    def __init__(self, *_):
        raise _Refused("a direct call of numpy.ndarray")


def _scalar(dtype, raw=None):
    if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes):
        raise _Refused("a malformed numpy scalar")
    resolved = dtype.resolve()
    if len(raw) != resolved.itemsize:
        raise _Refused("a numpy scalar with the wrong number of bytes")
    return np.frombuffer(raw, dtype=resolved)[0]


# What a PaddleClas state dict legitimately imports. numpy's own reconstructors would build arrays from the
# file's bytes as given (an object array from raw bytes dereferences them as pointers), so arrays are
# rebuilt here, from checked shapes, numeric dtypes and exact byte counts.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy", "dtype"): _Dtype,
    ("collections", "OrderedDict"): OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: Path):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise EdgekitError(
            f"Refusing to load {self._source}: it asks to import {module}.{name}, which a "
            "PaddleClas weights file never needs (a .pdparams file is a pickle and only numpy "
            "arrays and plain containers are accepted, because anything else could run code). "
            "Re-save the weights with paddle.save(model.state_dict(), path) from a trusted environment."
        )


def _refusal(path: Path, exc: _Refused, key=None) -> EdgekitError:
    entry = f" entry {key!r}" if key is not None else ""
    return EdgekitError(f"Refusing to load {path}:{entry} holds {exc}, which a PaddleClas weights file never does "
                        "(expected numeric arrays, as paddle.save(model.state_dict(), path) writes). Re-save the "
                        "weights from a trusted environment.")


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PaddleClas `.pdparams` file into {structured name: float array}."""
    path = require_file(path, "a PaddleClas .pdparams file", "Weights file")
    data = read_bytes(path, "a PaddleClas .pdparams file", "Weights file")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), path).load()
    except EdgekitError:
        raise
    except _Refused as exc:
        raise _refusal(path, exc) from None
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
        if isinstance(value, _Array):
            try:
                value = value.resolve()
            except _Refused as exc:
                raise _refusal(path, exc, key) from None
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise EdgekitError(
                f"Weights file {path} has entry {key!r} of type {type(value).__name__}; "
                "expected parameter names mapped to numpy arrays."
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
