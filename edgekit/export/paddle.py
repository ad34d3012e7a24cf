"""Paddle model -> Paddle inference program (legacy .pdmodel + .pdiparams).

The legacy program is what OpenVINO's and Paddle Lite's readers accept and
what paddle2onnx converts fastest (a ResNet50 in ~4 s, against ~100 s from
Paddle 3's PIR .json). Paddle 3 writes it only when FLAGS_enable_pir_api=0
is set before paddle is imported, so the export runs in a child process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from edgekit import children
from edgekit.errors import EdgekitError

MODEL_FILE = "inference.pdmodel"
PARAMS_FILE = "inference.pdiparams"
INPUT_NAME = "x"


def with_head(model, head: str | None):
    """`model` followed by the activation PaddleClas's export appends ("softmax", "sigmoid" or None)."""
    if head is None:
        return model
    import paddle

    activation = {"softmax": lambda: paddle.nn.Softmax(axis=-1), "sigmoid": paddle.nn.Sigmoid}[head]()

    class WithHead(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.base_model, self.out_act = model, activation

        def forward(self, x):
            return self.out_act(self.base_model(x))

    return WithHead()


def export_legacy_program(model_name: str, num_classes: int, weights: Path, dst_dir: Path,
                          input_size: int, *, input_name: str = INPUT_NAME, head: str | None = None) -> Path:
    """Write `dst_dir/inference.pdmodel` + `.pdiparams` for a zoo model with `weights`.

    The batch dimension stays dynamic; height and width are fixed at `input_size`.
    `head` appends PaddleClas's export activation ("softmax"/"sigmoid"), and
    `input_name` names the feed, so a re-export computes and reads like the original.
    """
    dst_dir.mkdir(parents=True, exist_ok=True)
    job = {"model": model_name, "num_classes": num_classes, "weights": str(weights),
           "prefix": str(dst_dir / "inference"), "input_size": input_size, "input_name": input_name, "head": head}
    env = {**os.environ, "FLAGS_enable_pir_api": "0"}
    proc = children.run([sys.executable, "-m", "edgekit.export._legacy_worker", json.dumps(job)],
                          env=env, capture_output=True, text=True)
    model_file = dst_dir / MODEL_FILE
    if proc.returncode != 0 or not model_file.is_file():
        raise EdgekitError(f"Exporting {model_name} to a Paddle inference program failed:\n"
                           f"{proc.stderr.strip()[-2000:]}")
    return model_file
