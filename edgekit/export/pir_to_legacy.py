"""A Paddle 3 PIR inference directory -> the legacy program of the same zoo network.

Paddle Lite's optimizer and Paddle's post-training quantizer read legacy
`.pdmodel` programs only, and Paddle 3 has no PIR-to-legacy converter. For a
zoo model the reliable route is to put the directory's parameters into the zoo
network and export that network as edgekit always does. The parameters are
paired by the order the two programs first read them (export names differ:
`conv2d_0.w_0`, `_conv_stem_weights`), and every shape is checked; parity
against Paddle Inference on the user's own directory then proves the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgekit import children
from edgekit.errors import EdgekitError
from edgekit.export.inference_dir import InferenceDir
from edgekit.export.paddle import export_legacy_program
from edgekit.scratch import temporary_dir


def zoo_weights_from_pir(model_name: str, source: InferenceDir, num_classes: int, dst: Path) -> Path:
    """The directory's parameters as the zoo network's `.pdparams` (state-dict names); raises on misfit."""
    with temporary_dir("edgekit-pir") as tmp:
        report_file = Path(tmp) / "report.json"
        job = {"program": str(source.program), "prefix": str(source.program.with_suffix("")), "model": model_name,
               "num_classes": num_classes, "input_shape": [-1 if d < 0 else d for d in source.input_shape],
               "head": source.head, "out": str(dst), "report": str(report_file)}
        proc = children.run([sys.executable, "-m", "edgekit.export._pir_params_worker", json.dumps(job)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not report_file.is_file():
            raise EdgekitError(f"Reading the parameters of {source.program} into {model_name} failed:\n"
                               f"{proc.stderr.strip()[-2000:]}")
        report = json.loads(report_file.read_text())
    if report["theirs"] != report["ours"] or report["misfits"]:
        lines = [f"  parameter #{i} {name} {shape} where {model_name} has {key} {ours}"
                 for i, name, shape, key, ours in report["misfits"][:5]]
        raise EdgekitError(
            f"--inference-model {source.directory} does not hold a {model_name} with {num_classes} classes: "
            f"it has {report['theirs']} parameters where {model_name} has {report['ours']}"
            + (", and these do not fit:\n" + "\n".join(lines) if lines else ".")
            + f"\nCheck the model name (the directory's network must be {model_name}) and --num-classes.")
    return dst


def legacy_from_pir(model_name: str, source: InferenceDir, num_classes: int, input_size: int,
                    dst_dir: Path) -> Path:
    """`dst_dir/inference.pdmodel`: the zoo network with the directory's weights, head and input name."""
    weights = zoo_weights_from_pir(model_name, source, num_classes, dst_dir.parent / "from-pir.pdparams")
    return export_legacy_program(model_name, num_classes, weights, dst_dir, input_size,
                                 input_name=source.input_name, head=source.head)
