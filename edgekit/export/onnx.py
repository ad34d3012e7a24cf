"""Paddle inference program -> ONNX, and ONNX fp32 -> fp16."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from edgekit.errors import EdgekitError


def paddle2onnx(model_file: Path, params_file: Path, dst: Path, opset: int = 13) -> Path:
    """Convert with paddle2onnx, asking for onnxoptimizer as its graph optimiser.

    paddle2onnx's default optimiser (polygraphy) pip-installs packages at run
    time and upgrades numpy behind the user's back, so it is never used. With
    paddle2onnx 2.1.0 the onnxoptimizer step itself never runs (its pass list
    names a pass that does not exist, and on 3.12 onnxoptimizer is not even
    installed): the graph is paddle2onnx's own, on either Python.
    """
    import paddle2onnx as p2o

    log: list[str] = []
    with _captured_stdout(log):
        try:
            p2o.export(str(model_file), str(params_file), str(dst), opset_version=opset,
                       enable_onnx_checker=True, optimize_tool="onnxoptimizer", verbose=False)
            error = None
        except Exception as exc:
            error = exc
    if error is not None or not dst.is_file():
        raise EdgekitError(f"paddle2onnx could not convert {model_file}: {error}\n{''.join(log)[-1500:]}")
    return dst


@contextlib.contextmanager
def _captured_stdout(sink: list[str]):
    """paddle2onnx's C++ core prints to fd 1; keep it out of the user's terminal, in `sink`."""
    with tempfile.TemporaryFile(mode="w+") as log:
        saved = os.dup(1)
        try:
            os.dup2(log.fileno(), 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            log.seek(0)
            sink.append(log.read())


def onnx_fp32_to_fp16(src: Path, dst: Path) -> Path:
    """Store weights and compute in fp16; inputs and outputs stay float32 for callers."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst


def io_names(path: Path) -> tuple[str, str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return graph.input[0].name, graph.output[0].name
