"""Quantization-aware training of a zoo model, in a child process (edgekit.compress._qat_worker).

The child runs with FLAGS_enable_pir_api=0 so that the quantized model is
saved as the legacy program Paddle Lite and Paddle Inference read; this
process gets back the fine-tuned float weights (loaded into a fresh model),
the quantized program and the training history.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import children
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing


@dataclass
class QATResult:
    model: Any  # the zoo model with the fine-tuned float weights, in eval mode
    weights: Path  # those weights (.pdparams, the zoo model's own parameter names)
    program: Path  # the quantized legacy program (inference.pdmodel + .pdiparams), scales learned
    record: dict  # what the manifest records


def fine_tune(model_name: str, num_classes: int, weights: Path, images: np.ndarray, labels: np.ndarray, *,
              preprocessing: Preprocessing, epochs: int, lr: float, batch_size: int, seed: int,
              out: Path) -> QATResult:
    """Fine-tune `weights` with fake quantization on the (preprocessed) `images`; files go to `out`."""
    import paddle

    from edgekit.zoo import create_model
    from edgekit.zoo.weights import load_weights

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "train_images.npy", images)
    np.save(out / "train_labels.npy", labels)
    job = {"model": model_name, "num_classes": num_classes, "weights": str(weights), "out": str(out),
           "input_size": preprocessing.crop, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
           "preprocessing": preprocessing.to_dict()}
    env = {**os.environ, "FLAGS_enable_pir_api": "0"}
    proc = children.run([sys.executable, "-m", "edgekit.compress._qat_worker", json.dumps(job)], env=env,
                          capture_output=True, text=True)
    program = out / "quantized" / "inference.pdmodel"
    if proc.returncode != 0 or not program.is_file():
        raise EdgekitError(f"Quantization-aware training of {model_name} failed:\n{proc.stderr.strip()[-2000:]}")
    finetuned = out / "finetuned.pdparams"
    with paddle.utils.unique_name.guard():
        model = create_model(model_name, num_classes=num_classes)
    load_weights(model, finetuned)
    model.eval()
    record = {"epochs": epochs, "train_images": int(len(images)), "program": str(program),
              "history": json.loads((out / "history.json").read_text()),
              "seconds": round(time.perf_counter() - start, 2)}
    return QATResult(model, finetuned, program, record)
