"""The recipe's part of `edgekit build`: checks at plan time, passes at run time.

edgekit.build calls `resolve_recipe` and `plan_compression` from `plan_build`
(everything checked before any work), then from `run_build`:
`load_data` (decode --calib once), `train_passes` (distill / QAT fine-tuning
on the Paddle model) and `quantize` (the target's INT8 route with accuracy
control). Each returns what the manifest records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.compress.data import (CompressionData, SplitPlan, load_compression_data, open_calibration_set,
                                   plan_split)
from edgekit.compress.passes import DistillParams, PTQParams, QATParams
from edgekit.compress.recipes import Recipe, get_recipe, recipe_for_precision, with_overrides
from edgekit.data.datasets import LabeledImages
from edgekit.errors import EdgekitError

Progress = Callable[[str], None]


@dataclass
class CompressionPlan:
    data: LabeledImages
    split: SplitPlan
    calib: Path


# ------------------------------------------------------------------------------------------- plan time


def resolve_recipe(recipe: str | Path | None, precision: str, *, calib_limit: int | None = None,
                   max_drop: float | None = None, overrides: dict[str, Any] | None = None) -> Recipe:
    """The recipe a build runs, CLI flags applied on top (the highest precedence)."""
    if recipe is None:
        if precision == "int8":
            raise EdgekitError("INT8 needs calibration: pass --recipe ptq-int8 (or qat-int8) with --calib DATA "
                               "(labeled images of the model's classes) instead of --precision int8.")
        resolved = recipe_for_precision(precision)
    else:
        resolved = get_recipe(recipe)
        if precision not in ("fp32", resolved.precision):
            raise EdgekitError(f"--precision {precision} contradicts recipe {resolved.name!r} ({resolved.source}), "
                               f"which makes a {resolved.precision} model; drop --precision or pick another recipe.")
    flags = dict(overrides or {})
    quant = resolved.quantization
    for flag, key, value in (("--max-drop", "max_drop", max_drop), ("--calib-limit", "calibration_images",
                                                                      calib_limit)):
        if value is None:
            continue
        if quant is None:
            raise EdgekitError(f"{flag} applies to INT8 recipes; recipe {resolved.name!r} ({resolved.source}) "
                               "has no quantization pass.")
        flags[f"{quant.kind}.{key}"] = value
    return with_overrides(resolved, flags)


def plan_compression(recipe: Recipe, target, calib: str | Path | None, *, num_classes: int,
                     inference_model: Path | None) -> CompressionPlan | None:
    """Check the recipe against the target, the model and --calib; read the list (no decoding)."""
    if not recipe.needs_data:
        if calib is not None:
            raise EdgekitError(f"--calib is used by recipes with compression passes; recipe {recipe.name!r} "
                               f"({recipe.source}) has none. Pass --recipe ptq-int8 (or another), or drop --calib.")
        return None
    if calib is None:
        raise EdgekitError(f"Recipe {recipe.name!r} ({recipe.source}) needs labeled images for its "
                           f"{'/'.join(p.kind for p in recipe.passes)} pass: pass --calib DATA (a PaddleClas list "
                           "file or a folder of class folders, a few hundred images of the model's own classes).")
    trains = [p for p in recipe.passes if isinstance(p, (DistillParams, QATParams))]
    if trains and inference_model is not None:
        raise EdgekitError(f"Recipe {recipe.name!r} trains the model ({trains[0].kind}), which needs its weights: "
                           "pass --weights model.pdparams instead of --inference-model.")
    if recipe.quantization is not None:
        _check_int8_route(target)
        if inference_model is not None and target.runtime == "paddle-inference" \
                and not (inference_model / "inference.pdmodel").is_file():
            raise EdgekitError(f"--inference-model {inference_model} holds a Paddle 3 PIR program (inference.json); "
                               "PaddleSlim quantizes legacy programs only. Pass --weights instead (edgekit exports "
                               "the legacy program itself).")
    distill = recipe.distillation
    if distill is not None:
        _check_teacher(distill, recipe, num_classes)
    data = open_calibration_set(calib)
    data.check_labels(num_classes)
    quant = recipe.quantization
    split = plan_split(data, holdout_images=quant.holdout_images if quant else 0,
                       calibration_images=getattr(quant, "calibration_images", 256),
                       max_drop=getattr(quant, "max_drop", None))
    return CompressionPlan(data=data, split=split, calib=Path(calib))


def _check_int8_route(target) -> None:
    if target.runtime in ("onnxruntime", "openvino"):
        from edgekit.compress.routes import _import_ort_quantization

        _import_ort_quantization()


def _check_teacher(distill: DistillParams, recipe: Recipe, num_classes: int) -> None:
    where = f"Recipe {recipe.name!r} ({recipe.source}): `distill.teacher_weights`"
    if distill.teacher_weights is None:
        raise EdgekitError(f"{where} is required (the trained {distill.teacher} .pdparams); set it in the recipe "
                           "or with --recipe-set distill.teacher_weights=PATH.")
    try:
        distill.load_teacher(num_classes)
    except EdgekitError as exc:
        raise EdgekitError(f"{where}: {exc}") from None


# -------------------------------------------------------------------------------------------- run time


def load_data(plan) -> CompressionData:
    compression = plan.compression
    quant = plan.recipe.quantization
    seed = getattr(quant, "seed", 0) if quant else 0
    return load_compression_data(compression.data, compression.split, plan.preprocessing, plan.num_classes,
                                 seed=seed)


def train_passes(plan, source_model, weights_file: Path, data: CompressionData, work: Path,
                 progress: Progress | None) -> tuple[Any, Path, dict]:
    """Distillation and QAT fine-tuning on the Paddle model; returns the model, its weights and records."""
    records: dict[str, Any] = {}
    for params in plan.recipe.passes:
        if isinstance(params, DistillParams):
            source_model, weights_file, records["distillation"] = _distill(plan, params, source_model, data, work,
                                                                          progress)
        elif isinstance(params, QATParams):
            source_model, weights_file, records["qat"] = _qat(plan, params, weights_file, data, work, progress)
    return source_model, weights_file, records


def _distill(plan, params: DistillParams, student, data: CompressionData, work: Path, progress):
    import paddle

    from edgekit.training.data import DecodedImages

    if progress:
        progress(f"distill from {params.teacher} ({params.epochs} epochs)")
    start = time.perf_counter()
    train = DecodedImages(data.train_images, data.train_labels, data.source)
    result = params.distill(student, train, preprocessing=plan.preprocessing, progress=False)
    student = result.student
    student.eval()
    weights = work / "distilled.pdparams"
    paddle.save(student.state_dict(), str(weights))
    record = {"teacher": params.teacher, "teacher_weights": str(params.teacher_weights),
              "train": result.train.to_dict(), "seconds": round(time.perf_counter() - start, 2)}
    return student, weights, record


def _qat(plan, params: QATParams, weights_file: Path, data: CompressionData, work: Path, progress):
    """Fine-tune with fake quantization in a child process (the quantized program must be a legacy export)."""
    import paddle

    from edgekit.zoo import create_model
    from edgekit.zoo.weights import load_weights

    if progress:
        progress(f"qat: {params.epochs} epoch(s) of quantization-aware training")
    start = time.perf_counter()
    out = work / "qat"
    out.mkdir(parents=True, exist_ok=True)
    train = data.train_images if params.train_images is None else data.train_images[:params.train_images]
    labels = data.train_labels[:len(train)]
    np.save(out / "train_images.npy", train)
    np.save(out / "train_labels.npy", labels)
    job = {"model": plan.model, "num_classes": plan.num_classes, "weights": str(weights_file), "out": str(out),
           "input_size": plan.preprocessing.crop, "epochs": params.epochs, "lr": params.lr,
           "batch_size": params.batch_size, "seed": params.seed, "preprocessing": plan.preprocessing.to_dict()}
    env = {**os.environ, "FLAGS_enable_pir_api": "0"}
    proc = subprocess.run([sys.executable, "-m", "edgekit.compress._qat_worker", json.dumps(job)], env=env,
                          capture_output=True, text=True)
    program = out / "quantized" / "inference.pdmodel"
    if proc.returncode != 0 or not program.is_file():
        raise EdgekitError(f"Quantization-aware training of {plan.model} failed:\n{proc.stderr.strip()[-2000:]}")
    finetuned = out / "finetuned.pdparams"
    with paddle.utils.unique_name.guard():
        model = create_model(plan.model, num_classes=plan.num_classes)
    load_weights(model, finetuned)
    model.eval()
    record = {"epochs": params.epochs, "train_images": int(len(train)), "program": str(program),
              "history": json.loads((out / "history.json").read_text()),
              "seconds": round(time.perf_counter() - start, 2)}
    return model, finetuned, record


class _FixedProgramRoute:
    """QAT's quantized program as an INT8 'route' with nothing left to choose: scales were learned."""

    name = "PaddleSlim QAT (Paddle program)"

    def __init__(self, program: Path):
        self.program = program
        self._backends: dict[Path, Any] = {}

    def layers(self) -> list[str]:
        return []

    def quantize(self, float_layers, dst: Path) -> Path:
        return self.program

    def run(self, model_file: Path, images: np.ndarray) -> np.ndarray:
        from edgekit.compress.routes import _batched
        from edgekit.runtime.backends import open_backend

        if model_file not in self._backends:
            self._backends[model_file] = open_backend("paddle-inference", model_file)
        return _batched(self._backends[model_file], images)


def quantize(plan, program: Path, data: CompressionData, work: Path, bundle: Path, progress: Progress | None,
             timed: Callable, train_records: dict) -> tuple[Path, dict]:
    """The target's INT8 artifact in `bundle`, accuracy-controlled; returns (model file, manifest record)."""
    from edgekit.compress.quantize import accuracy_controlled_quantization
    from edgekit.compress.routes import OnnxQDQRoute, PaddleSlimRoute, copy_artifact

    params = plan.recipe.quantization
    runtime = plan.target.runtime
    start = time.perf_counter()
    if runtime in ("onnxruntime", "openvino"):
        from edgekit.export.onnx import paddle2onnx

        fp32_onnx = timed("paddle2onnx", paddle2onnx, program, program.with_suffix(".pdiparams"),
                          work / "fp32.onnx", plan.options["opset"])
        route = OnnxQDQRoute(fp32_onnx, data.calibration, algorithm=params.algorithm,
                             per_channel=getattr(params, "per_channel", True), batch_size=_calib_batch(params),
                             runtime=runtime, work=work / "int8")
        fp32_model = fp32_onnx if runtime == "onnxruntime" else _to_openvino(fp32_onnx, work)
    elif isinstance(params, QATParams):
        route = _FixedProgramRoute(Path(train_records["qat"]["program"]))
        fp32_model = program
    else:
        route = PaddleSlimRoute(program, data.calibration, algorithm=params.algorithm,
                                per_channel=params.per_channel, batch_size=_calib_batch(params), work=work / "int8")
        fp32_model = program
    report = accuracy_controlled_quantization(
        route, fp32_model, data.calibration, data.holdout_images, data.holdout_labels, max_drop=params.max_drop,
        max_float_layers=params.max_float_layers, work=work / "int8-attempts", algorithm=params.algorithm,
        progress=progress)
    record = report.to_manifest()
    record["seconds"] = round(time.perf_counter() - start, 2)
    if runtime == "paddle-lite":
        from edgekit.export.lite import paddle2lite

        model_file = timed("paddle2lite", paddle2lite, report.model_file, report.model_file.with_suffix(".pdiparams"),
                           bundle / "model.nb", plan.options["arch"])
        record["evaluated_on"] = ("the quantized Paddle program (Paddle Inference, fake-quantized) that Paddle "
                                  "Lite's optimizer converted; the .nb itself runs on the device only")
    else:
        model_file = copy_artifact(report.model_file, bundle)
        record["evaluated_on"] = f"the bundled artifact ({runtime})"
    return model_file, record


def _calib_batch(params) -> int:
    return getattr(params, "batch_size", 16) if isinstance(params, PTQParams) else 16


def _to_openvino(onnx_file: Path, work: Path) -> Path:
    from edgekit.export.openvino import onnx2openvino

    return onnx2openvino(onnx_file, work / "fp32.xml")
