"""What a bundle's manifest says about its build: model, weights, target, recipe, parity, steps, tools."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
from typing import Any

from edgekit import __version__
from edgekit.build.plan import RANDOM_INIT, BuildPlan
from edgekit.build.steps import StepRecord
from edgekit.bundle import SCHEMA_VERSION

TOOL_DISTRIBUTIONS = ("paddlepaddle", "paddle2onnx", "onnx", "onnxruntime", "openvino", "opencv-python", "numpy")


def tool_versions() -> dict[str, str]:
    versions = {"edgekit": __version__, "python": platform.python_version()}
    for dist in TOOL_DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def build_manifest(plan: BuildPlan, model_file: str, weights_sha: str | None, parity: dict,
                   steps: list[StepRecord], compression: dict[str, Any] | None = None, *,
                   io: tuple[str, str]) -> dict[str, Any]:
    """`io` is the (input, output) names of the program the artifact was converted from."""
    card = plan.card
    head = plan.source.head if plan.source else None
    hint = plan.adapter.precision_hint_for(plan.precision)
    size = plan.preprocessing.crop
    return {
        "schema": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": plan.model, "family": card.family, "num_classes": plan.num_classes,
                  "published": {"top1": card.top1, "top5": card.top5, "flops_g": card.flops_g,
                                "params_m": card.params_m}},
        "weights": {"source": plan.weights_source, "sha256": weights_sha,
                    "random_init": plan.weights_source == RANDOM_INIT},
        "target": {"name": plan.target.name, "runtime": plan.target.runtime, "format": plan.target.format,
                   "precision": plan.precision, "options": plan.options,
                   **plan.adapter.manifest_extras(plan.options)},
        "recipe": plan.recipe.to_manifest() if plan.recipe else {"name": plan.precision, "passes": []},
        "compression": compression or None,
        # precision_hint: what the runtime is asked to compute in (OpenVINO; bf16 only where the CPU has it).
        "artifact": {"model_file": model_file, **({"precision_hint": hint} if hint else {})},
        "input": {"name": io[0], "shape": [-1, 3, size, size], "layout": "NCHW", "dtype": "float32"},
        # PaddleClas's export may end the network in a softmax (or, multi-label, a sigmoid): then the
        # outputs are probabilities already and nothing applies a softmax again.
        "output": {"name": io[1], "shape": [-1, plan.num_classes], "kind": "probabilities" if head else "logits",
                   "head": head},
        "preprocessing": plan.preprocessing.to_dict(),
        "labels": "labels.txt" if plan.labels else None,
        "parity": parity,
        "build": {"steps": [s.to_dict() for s in steps], "host": f"{platform.system()} {platform.machine()}"},
        "tools": tool_versions(),
        "validations": [],
    }
