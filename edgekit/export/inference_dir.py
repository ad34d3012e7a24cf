"""What a PaddleClas inference directory holds, read from its program without running it.

PaddleClas's export writes `inference.pdmodel` (legacy ProgramDesc, Paddle 2.x
or FLAGS_enable_pir_api=0) or `inference.json` (Paddle 3's PIR program), each
with `inference.pdiparams`. Its `tools/export_model.py` appends a softmax to the
network by default (`infer_add_softmax`) and a sigmoid for multi-label models,
so the directory may output probabilities rather than logits. Input and output
names differ between exports (`x`, `inputs`, `fetch_name_0`, `softmax_0.tmp_0`),
so every consumer takes them from here, never from a default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EdgekitError

PARAMS_FILE = "inference.pdiparams"
PROGRAM_FILES = {"inference.pdmodel": "legacy", "inference.json": "pir"}
# The activation PaddleClas's export puts after the classifier, and what the outputs then are.
HEADS = {"softmax": "probabilities", "sigmoid": "probabilities (multi-label)"}


@dataclass(frozen=True)
class InferenceDir:
    directory: Path
    program: Path
    params: Path
    form: str               # "legacy" (.pdmodel) or "pir" (.json)
    input_name: str
    input_shape: tuple[int, ...]   # -1 where the export left a dimension dynamic
    output_name: str
    num_outputs: int | None       # classes, when the program fixes them
    head: str | None        # "softmax" / "sigmoid" when the program ends in one, else None

    @property
    def outputs_probabilities(self) -> bool:
        return self.head is not None

    @property
    def input_size(self) -> int | None:
        """The fixed square input size, when the export fixed height and width."""
        height, width = self.input_shape[-2:]
        return height if height == width and height > 0 else None


def program_files(directory: Path) -> tuple[Path, Path]:
    """(program, params) of a PaddleClas inference model directory."""
    params = directory / PARAMS_FILE
    for name in PROGRAM_FILES:
        if (directory / name).is_file() and params.is_file():
            return directory / name, params
    raise EdgekitError(f"--inference-model {directory} is not a PaddleClas inference model directory: expected "
                       "inference.pdmodel + inference.pdiparams (Paddle 2.x / legacy export) or "
                       "inference.json + inference.pdiparams (Paddle 3).")


def read_inference_dir(directory: str | Path) -> InferenceDir:
    directory = Path(directory)
    program, params = program_files(directory)
    form = PROGRAM_FILES[program.name]
    input_name, input_shape, output_name, output_shape, head = _read_io(program)
    num_outputs = output_shape[-1] if output_shape and output_shape[-1] > 0 else None
    if len(input_shape) != 4 or input_shape[1] not in (3, -1):
        raise EdgekitError(f"{program} takes input {input_name!r} of shape {list(input_shape)}; an image "
                           "classifier takes NCHW images (batch, 3, height, width).")
    return InferenceDir(directory=directory, program=program, params=params, form=form, input_name=input_name,
                        input_shape=tuple(input_shape), output_name=output_name, num_outputs=num_outputs,
                        head=head)


def program_io(program: Path) -> tuple[str, str]:
    """(input name, output name) of a legacy `.pdmodel` or PIR `.json` program."""
    input_name, _, output_name, _, _ = _read_io(program)
    return input_name, output_name


def _read_io(program: Path):
    """(input name, input shape, output name, output shape, head) of either program form; a program whose
    structure is not what Paddle writes (a truncated or hand-edited file) is named, never a traceback."""
    reader = _read_pir if program.suffix == ".json" else _read_legacy
    try:
        return reader(program)
    except (KeyError, IndexError, TypeError, AttributeError, StopIteration, ValueError) as exc:
        raise EdgekitError(f"{program} does not have the structure of a Paddle inference program "
                           f"({type(exc).__name__}: {exc}); export it again with PaddleClas's "
                           "tools/export_model.py.") from None


def _read_legacy(program_file: Path):
    from edgekit.export.lite import read_program

    block = read_program(program_file).blocks[0]
    feeds = [op for op in block.ops if op.type == "feed"]
    fetches = [op for op in block.ops if op.type == "fetch"]
    _one_each(program_file, len(feeds), len(fetches))
    input_name = _argument(feeds[0].outputs, "Out")
    output_name = _argument(fetches[0].inputs, "X")
    producer = next((op for op in block.ops if op.type != "fetch"
                     and any(output_name in slot.arguments for slot in op.outputs)), None)
    dims = {var.name: list(var.type.dense_tensor.tensor.dims) for var in block.vars
            if var.type.HasField("dense_tensor")}
    head = producer.type if producer is not None and producer.type in HEADS else None
    return input_name, dims.get(input_name, []), output_name, dims.get(output_name, []), head


def _read_pir(program_file: Path):
    ops = _pir_ops(program_file)
    feeds = [op for op in ops if op.get("#") == "1.data"]
    fetches = [op for op in ops if op.get("#") == "1.fetch"]
    _one_each(program_file, len(feeds), len(fetches))
    producers = {out.get("%"): op for op in ops for out in _outputs(op)}
    fetched = fetches[0]["I"][0]["%"]
    producer = producers.get(fetched, {})
    kind = str(producer.get("#", "")).split(".", 1)[-1]
    head = kind if kind in HEADS else None
    return (_attribute(feeds[0], "name"), _shape(_outputs(feeds[0])[0]), _attribute(fetches[0], "name"),
            _shape(_outputs(fetches[0])[0]), head)


def _pir_ops(program_file: Path) -> list[dict]:
    """The ops of a PIR program's top block."""
    try:
        return json.loads(program_file.read_text(encoding="utf-8"))["program"]["regions"][0]["blocks"][0]["ops"]
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
        raise EdgekitError(f"{program_file} is not a Paddle 3 PIR program (inference.json): {exc}") from None


def _one_each(program_file: Path, feeds: int, fetches: int) -> None:
    if feeds != 1 or fetches != 1:
        raise EdgekitError(f"{program_file} has {feeds} inputs and {fetches} outputs; an image classifier "
                           "export has one of each (was it exported with extra inputs, e.g. labels?).")


def _argument(slots, parameter: str) -> str:
    return next(a for slot in slots if slot.parameter == parameter for a in slot.arguments)


def _outputs(op: dict) -> list[dict]:
    outputs = op.get("O", [])
    return outputs if isinstance(outputs, list) else [outputs]


def _attribute(op: dict, name: str):
    return next(a["AT"]["D"] for a in op.get("A", []) if isinstance(a, dict) and a.get("N") == name)


def _shape(value: dict) -> list[int]:
    # A dense tensor type is {"#": "0.t_dtensor", "D": [dtype, dims, layout, lod, offset]}.
    try:
        return [int(d) for d in value["TT"]["D"][1]]
    except (KeyError, IndexError, TypeError, ValueError):
        return []


def pir_parameters_in_use_order(program_file: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of a PIR program's parameters, in the order its ops first read them.

    Two traces of the same network read their parameters in the same order,
    whatever names each export gave them, so this order pairs a directory's
    parameters with the zoo network's.
    """
    ops = _pir_ops(program_file)
    parameters = {}
    for op in ops:
        if op.get("#") == "p":
            value = _outputs(op)[0]
            parameters[value["%"]] = (op["A"][3], tuple(_shape(value)))
    order, seen = [], set()
    for op in ops:
        for item in op.get("I", []) if isinstance(op.get("I"), list) else []:
            value_id = item.get("%") if isinstance(item, dict) else None
            if value_id in parameters and value_id not in seen:
                seen.add(value_id)
                order.append(parameters[value_id])
    return order
