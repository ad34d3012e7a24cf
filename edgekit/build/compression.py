"""The recipe's part of `edgekit build`: checked at plan time, its passes run at run time.

`plan_build` calls `resolve_recipe` and `plan_compression` (everything checked
before any work); `run_build` calls `load_data` (decode --calib once) and
`train_passes` (each pass's `train`: distill, QAT fine-tuning); the INT8 step
is the quantizing pass's own `quantize`. Each returns what the manifest records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.compress.calibration import (CompressionData, SplitPlan, load_compression_data, open_calibration_set,
                                   plan_split)
from edgekit.compress.passes import PassContext
from edgekit.compress.recipes import Recipe, get_recipe, recipe_for_precision, with_overrides
from edgekit.data.datasets import LabeledImages
from edgekit.errors import EdgekitError
from edgekit.targets import RuntimeAdapter


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
    origins = {key: f"--recipe-set {key}" for key in flags}
    quant = resolved.quantization
    for flag, key, value in (("--max-drop", "max_drop", max_drop), ("--calib-limit", "calibration_images",
                                                                      calib_limit)):
        if value is None:
            continue
        if quant is None:
            raise EdgekitError(f"{flag} applies to INT8 recipes; recipe {resolved.name!r} ({resolved.source}) "
                               "has no quantization pass.")
        flags[f"{quant.kind}.{key}"] = value
        origins[f"{quant.kind}.{key}"] = flag
    return with_overrides(resolved, flags, origins)


def plan_compression(recipe: Recipe, adapter: RuntimeAdapter, calib: str | Path | None, *, num_classes: int,
                     inference_model: Path | None) -> CompressionPlan | None:
    """Check the recipe against the target's runtime, the model and --calib; read the list (no decoding)."""
    if not recipe.needs_data:
        if calib is not None:
            raise EdgekitError(f"--calib is used by recipes with compression passes; recipe {recipe.name!r} "
                               f"({recipe.source}) has none. Pass --recipe ptq-int8 (or another), or drop --calib.")
        return None
    if calib is None:
        raise EdgekitError(f"Recipe {recipe.name!r} ({recipe.source}) needs labeled images for its "
                           f"{'/'.join(p.kind for p in recipe.passes)} pass: pass --calib DATA (a PaddleClas list "
                           "file or a folder of class folders, a few hundred images of the model's own classes).")
    trains = [p for p in recipe.passes if p.trains]
    if trains and inference_model is not None:
        raise EdgekitError(f"Recipe {recipe.name!r} trains the model ({trains[0].kind}), which needs its weights: "
                           "pass --weights model.pdparams instead of --inference-model.")
    quant = recipe.quantization
    if quant is not None:
        adapter.check_int8(inference_model)
    for params in recipe.passes:
        params.check(recipe, num_classes)
    data = open_calibration_set(calib)
    data.check_labels(num_classes)
    split = plan_split(data, holdout_images=quant.holdout_images if quant else 0,
                       calibration_images=getattr(quant, "calibration_images", 256),
                       max_drop=getattr(quant, "max_drop", None), trains=bool(trains))
    return CompressionPlan(data=data, split=split, calib=Path(calib))


# -------------------------------------------------------------------------------------------- run time


def load_data(plan) -> CompressionData:
    compression = plan.compression
    quant = plan.recipe.quantization
    seed = getattr(quant, "seed", 0) if quant else 0
    return load_compression_data(compression.data, compression.split, plan.preprocessing, plan.num_classes,
                                 seed=seed)


def train_passes(recipe: Recipe, ctx: PassContext) -> dict[str, Any]:
    """Every pass's `train`, in recipe order, on ctx's Paddle model; returns their records by manifest key."""
    records: dict[str, Any] = {}
    for params in recipe.passes:
        record = params.train(ctx)
        if record is not None:
            records[params.record_name] = record
    return records
