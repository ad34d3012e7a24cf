"""Paddle inference program (legacy .pdmodel + .pdiparams) -> Paddle Lite model (.nb).

`paddle2lite` runs Paddle Lite 2.13rc0's optimizer (`opt`) in the toolchain
interpreter (see edgekit.toolchains.paddle_lite). Before that it rewrites the
program desc once, in a temporary copy:

- Paddle 3 writes `flatten_contiguous_range` without its `XShape` output,
  which every Paddle 2.x program had. Lite's ARM passes tolerate that, its
  x86 passes dereference the missing output and crash (SIGSEGV). We add the
  output back (a shape-only variable, dims `[0] + X.dims`, exactly what Paddle
  2.x declared); with it the x86 `.nb` matches Paddle Inference to ~1e-5.
  Done for every target so ARM gets the program shape Lite was written for.

The program desc is edited with Paddle's own `framework.proto` bindings,
loaded from the installed paddle without importing paddle itself.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path

from edgekit.errors import EdgekitError, suggest
from edgekit.scratch import temporary_dir
from edgekit.toolchains import paddle_lite

# arch -> Opt valid places. Lite 2.13's optimizer has no ARM ABI switch: one
# ARM .nb serves armv7 and armv8; the ABI is chosen by the runtime library the
# app links (see lite_app/CMakeLists.txt).
VALID_PLACES = {"armv8": "arm", "armv7": "arm", "x86": "x86"}

# Legacy ops whose op definition has an XShape output (shape of X, for the grad op).
_OPS_WITH_XSHAPE = ("flatten_contiguous_range", "reshape2", "transpose2", "squeeze2", "unsqueeze2")


def paddle2lite(model_file: str | os.PathLike, params_file: str | os.PathLike, dst_nb: str | os.PathLike,
                arch: str = "armv8") -> Path:
    """Convert a legacy Paddle inference program to a Paddle Lite `.nb` for `arch`.

    `arch` is "armv8" (default), "armv7" or "x86" (runs on this host through
    `edgekit.toolchains.paddle_lite.run_nb`; FP32 programs only). Returns `dst_nb`.
    """
    if arch not in VALID_PLACES:
        raise EdgekitError(f"Unknown Paddle Lite arch {arch!r}; choose one of {', '.join(VALID_PLACES)}."
                           + suggest(arch, list(VALID_PLACES)))
    model_file, params_file, dst_nb = Path(model_file), Path(params_file), Path(dst_nb)
    if dst_nb.suffix != ".nb":
        raise EdgekitError(f"Paddle Lite writes <prefix>.nb; the destination {dst_nb} must end in .nb.")
    if model_file.suffix == ".json":
        raise EdgekitError(f"{model_file} is a Paddle 3 PIR program, which Paddle Lite cannot read; "
                           "export a legacy .pdmodel (FLAGS_enable_pir_api=0 before importing paddle).")
    if not model_file.is_file():
        raise EdgekitError(f"Paddle program {model_file} does not exist.")

    program = read_program(model_file)
    if arch == "x86" and is_quantized(program):
        # Observed with 2.13rc0: the x86 INT8 kernels run but return NaN.
        raise EdgekitError("Paddle Lite's x86 kernels give NaN for quantized (INT8) programs; "
                           "convert quantized models for armv8/armv7, or use the openvino/onnx targets on x86.")
    add_missing_xshape(program)
    add_missing_swish_beta(program)
    with temporary_dir("edgekit-lite") as tmp:
        patched = Path(tmp) / "inference.pdmodel"
        patched.write_bytes(program.SerializeToString())
        return paddle_lite.run_opt(patched, params_file, dst_nb.with_suffix(""), valid_places=VALID_PLACES[arch])


def read_program(model_file: str | os.PathLike):
    """A legacy `.pdmodel` as a `paddle.framework.proto.ProgramDesc` message."""
    program = _framework_pb2().ProgramDesc()
    try:
        program.ParseFromString(Path(model_file).read_bytes())
    except Exception as exc:  # protobuf's DecodeError, by whichever backend
        raise EdgekitError(f"{model_file} is not a legacy Paddle program (.pdmodel): {exc}") from exc
    if not program.blocks:
        raise EdgekitError(f"{model_file} holds no program blocks; is it a Paddle inference model?")
    return program


def is_quantized(program) -> bool:
    """True when the program carries (fake) quantize/dequantize ops, as Paddle's PTQ and QAT write them."""
    return any("quantize" in op.type for block in program.blocks for op in block.ops)


def add_missing_xshape(program) -> int:
    """Give every op that lost its XShape output (Paddle 3) that output back; returns how many."""
    added = 0
    for block in program.blocks:
        names = {var.name for var in block.vars}
        for op in block.ops:
            if op.type not in _OPS_WITH_XSHAPE or any(o.parameter == "XShape" for o in op.outputs):
                continue
            x_name = _argument(op.inputs, "X")
            out_name = _argument(op.outputs, "Out")
            x_var = _find_var(program, block, x_name) if x_name else None
            if x_var is None or out_name is None or not x_var.type.HasField("dense_tensor"):
                continue  # nothing to model the shape on; leave the op as written
            xshape_name = f"{out_name}.xshape"
            while xshape_name in names:
                xshape_name += "_"
            xshape = block.vars.add()
            xshape.CopyFrom(x_var)
            xshape.name = xshape_name
            xshape.persistable = False
            tensor = xshape.type.dense_tensor.tensor
            dims = list(tensor.dims)
            del tensor.dims[:]
            tensor.dims.extend([0, *dims])
            output = op.outputs.add()
            output.parameter = "XShape"
            output.arguments.append(xshape_name)
            names.add(xshape_name)
            added += 1
    return added


def add_missing_swish_beta(program) -> int:
    """Paddle 3 writes `swish` (EfficientNet's activation) without the `beta` attribute
    Paddle 2.x always set; Lite's optimizer aborts on its absence. beta=1 is what
    Paddle's swish computes (x * sigmoid(x)). Returns how many ops were patched."""
    attr_type = _framework_pb2().AttrType.Value("FLOAT")
    added = 0
    for block in program.blocks:
        for op in block.ops:
            if op.type != "swish" or any(a.name == "beta" for a in op.attrs):
                continue
            attr = op.attrs.add()
            attr.name, attr.type, attr.f = "beta", attr_type, 1.0
            added += 1
    return added


def _argument(slots, parameter: str) -> str | None:
    for slot in slots:
        if slot.parameter == parameter and slot.arguments:
            return slot.arguments[0]
    return None


def _find_var(program, block, name: str):
    """The VarDesc `name` as seen from `block`: its own vars, then its parents'."""
    while True:
        for var in block.vars:
            if var.name == name:
                return var
        if block.parent_idx < 0 or block.parent_idx == block.idx:
            return None
        block = program.blocks[block.parent_idx]


@lru_cache(maxsize=1)
def _framework_pb2():
    """paddle's generated framework_pb2, without the seconds-long `import paddle`."""
    if "paddle.base.proto.framework_pb2" in sys.modules:
        return sys.modules["paddle.base.proto.framework_pb2"]
    spec = importlib.util.find_spec("paddle")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "base" / "proto" / "framework_pb2.py" if locations else None
    if path is None or not path.is_file():
        raise EdgekitError("Reading Paddle programs needs paddlepaddle (paddle/base/proto/framework_pb2.py "
                           "was not found); `pip install paddlepaddle`.")
    module_spec = importlib.util.spec_from_file_location("edgekit_paddle_framework_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- example app

APP_FILES = ("main.cc", "CMakeLists.txt", "README.md")
PREPROCESS_FILE = "preprocess.txt"


def write_lite_app(app_dir: str | os.PathLike, preprocessing: dict) -> Path:
    """Write the C++ example app (lite_app/) and its `preprocess.txt` into `app_dir`.

    `preprocessing` is a model card's / manifest's preprocessing dict
    (resize_short, crop, mean, std, scale, interpolation, channel_order, layout).
    """
    from importlib import resources

    app_dir = Path(app_dir)
    app_dir.mkdir(parents=True, exist_ok=True)
    text = preprocess_txt(preprocessing)
    source = resources.files("edgekit.export").joinpath("lite_app")
    for name in APP_FILES:
        (app_dir / name).write_bytes(source.joinpath(name).read_bytes())
    (app_dir / PREPROCESS_FILE).write_text(text)
    return app_dir


def preprocess_txt(preprocessing: dict) -> str:
    """The `key value...` file lite_app/main.cc reads at run time."""
    pp = {"scale": 1 / 255, "interpolation": "bilinear", "channel_order": "RGB", "layout": "NCHW", **preprocessing}
    missing = [key for key in ("resize_short", "crop", "mean", "std") if key not in pp]
    if missing:
        raise EdgekitError(f"Preprocessing for the Paddle Lite app lacks {', '.join(missing)}.")
    if pp["interpolation"] != "bilinear" or pp["layout"] != "NCHW" or pp["channel_order"] not in ("RGB", "BGR"):
        raise EdgekitError("The Paddle Lite example app does bilinear resizing to NCHW RGB/BGR only, not "
                           f"{pp['interpolation']}/{pp['layout']}/{pp['channel_order']}.")
    if len(pp["mean"]) != 3 or len(pp["std"]) != 3:
        raise EdgekitError("Preprocessing mean and std need one value per channel (3).")
    floats = lambda values: " ".join(repr(float(v)) for v in values)  # noqa: E731
    return ("# Read by edgekit_lite_classify (main.cc): PaddleClas eval preprocessing of this model.\n"
            f"resize_short {int(pp['resize_short'])}\ncrop {int(pp['crop'])}\n"
            f"mean {floats(pp['mean'])}\nstd {floats(pp['std'])}\nscale {float(pp['scale'])!r}\n"
            f"channel_order {pp['channel_order']}\ninterpolation {pp['interpolation']}\nlayout {pp['layout']}\n")
