"""`edgekit build`, plan time: every input resolved and checked before any work starts.

Config precedence is resolved once, here: defaults < model card < target <
recipe < CLI. Everything a user can get wrong (model, target options, weights,
labels, output directory, recipe, calibration set, teacher, what the target's
converter can read) raises EdgekitError from `plan_build`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.build.compression import CompressionPlan, plan_compression, resolve_recipe
from edgekit.compress.recipes import Recipe
from edgekit.errors import EdgekitError
from edgekit.export.inference_dir import InferenceDir, read_inference_dir
from edgekit.userfiles import check_creatable, read_lines, require_file
from edgekit.preprocessing import Preprocessing
from edgekit.targets import RuntimeAdapter, Target, adapter_for, get_target
from edgekit.zoo import get_entry
from edgekit.zoo.cards import ModelCard, get_card

RANDOM_INIT = "random-init"


@dataclass
class BuildPlan:
    model: str
    target: Target
    precision: str
    card: ModelCard
    num_classes: int
    options: dict[str, Any]
    out: Path
    force: bool
    weights: Path | None = None
    inference_model: Path | None = None
    # What --inference-model holds (form, input/output names, head), read off its program at plan time.
    source: InferenceDir | None = None
    labels: list[str] | None = None
    seed: int = 0
    # Resolved once: the card's preprocessing, with the CLI's --input-size on top.
    preprocessing: Preprocessing | None = None
    # The recipe with CLI overrides applied (fp32/fp16 builds get the plain recipe of that name).
    recipe: Recipe | None = None
    # --calib, checked at plan time (list read, labels in range, big enough); decoded in run_build.
    compression: CompressionPlan | None = None

    @property
    def adapter(self) -> RuntimeAdapter:
        return adapter_for(self.target.runtime)

    @property
    def weights_source(self) -> str:
        if self.weights:
            return str(self.weights)
        if self.inference_model:
            return str(self.inference_model)
        return RANDOM_INIT


def default_out_dir(model: str, target: str, precision: str) -> Path:
    return Path("dist") / f"{model}-{target}-{precision}"


def plan_build(model: str, target: str, precision: str = "fp32", *, weights: str | Path | None = None,
               inference_model: str | Path | None = None, out: str | Path | None = None, force: bool = False,
               num_classes: int | None = None, labels: str | Path | None = None,
               options: dict[str, str] | None = None, input_size: int | None = None,
               recipe: str | Path | None = None, calib: str | Path | None = None, calib_limit: int | None = None,
               max_drop: float | None = None,
               recipe_overrides: dict[str, str] | None = None) -> BuildPlan:
    """Resolve and check every input; raises EdgekitError before any work starts.

    `recipe` (a shipped recipe name or a recipe file) replaces `precision` as the
    way to ask for fp16/int8/distillation; `calib` is the labeled images the
    recipe's passes use (list file or class folders), `calib_limit` caps the
    calibration images, `max_drop` overrides the recipe's accuracy budget
    (None: the recipe's), `recipe_overrides` sets any `PASS.KEY` of the recipe.
    """
    get_entry(model)
    card = get_card(model)
    target_spec = get_target(target)
    adapter = adapter_for(target_spec.runtime)
    resolved_recipe = resolve_recipe(recipe, precision, calib_limit=calib_limit, max_drop=max_drop,
                                     overrides=recipe_overrides)
    precision = resolved_recipe.precision
    target_spec.check_precision(precision)
    resolved_options = target_spec.resolve_options(options or {})
    if weights and inference_model:
        raise EdgekitError("Give either --weights or --inference-model, not both.")
    weights_path = require_file(weights, "a PaddleClas .pdparams file", "--weights") if weights else None
    inference_dir = Path(inference_model) if inference_model else None
    source = read_inference_dir(inference_dir) if inference_dir else None
    label_list = _read_labels(labels)
    if num_classes is None:
        num_classes = (source.num_outputs if source and source.num_outputs else None) \
            or (len(label_list) if label_list else 1000)
    if source and source.num_outputs and source.num_outputs != num_classes:
        raise EdgekitError(f"--inference-model {inference_dir} outputs {source.num_outputs} classes but "
                           f"--num-classes is {num_classes}; leave --num-classes out to use the directory's.")
    fixed = source.input_size if source else None
    if input_size is None and fixed and fixed != card.preprocessing.crop:
        input_size = fixed  # the export fixed its input size: preprocess for that size
    elif input_size is not None and fixed and fixed != input_size:
        raise EdgekitError(f"--input-size {input_size} does not fit --inference-model {inference_dir}, whose "
                           f"program takes {fixed}x{fixed} images; leave --input-size out.")
    if label_list is not None and len(label_list) != num_classes:
        raise EdgekitError(f"--labels {labels} has {len(label_list)} names but the model has {num_classes} "
                           "classes; give one name per class (or fix --num-classes).")
    out_dir = Path(out) if out else default_out_dir(model, target, resolved_recipe.name)
    check_creatable(out_dir.parent, "--out", named=out_dir)
    if out_dir.exists() and not force:
        raise EdgekitError(f"Output directory {out_dir} already exists; pass --force to replace it, "
                           "or choose another --out.")
    preprocessing = card.preprocessing
    if input_size is not None:
        if not 16 <= input_size <= 1024:
            raise EdgekitError(f"--input-size {input_size} is out of range (expected 16..1024 pixels).")
        # Small custom datasets (e.g. 64x64 digits) are trained at their own size: no resize margin.
        preprocessing = dataclasses.replace(preprocessing, resize_short=input_size, crop=input_size)
    compression = plan_compression(resolved_recipe, adapter, calib, num_classes=num_classes,
                                   inference_model=inference_dir)
    return BuildPlan(model=model, target=target_spec, precision=precision, card=card, num_classes=num_classes,
                     options=resolved_options, out=out_dir, force=force, weights=weights_path,
                     inference_model=inference_dir, source=source, labels=label_list, preprocessing=preprocessing,
                     recipe=resolved_recipe, compression=compression)


def _read_labels(labels: str | Path | None) -> list[str] | None:
    """One class name per line, or PaddleClas's label lists (`ID name` per line, IDs 0, 1, 2, ...)."""
    if not labels:
        return None
    lines = read_lines(labels, "one class name per line, or PaddleClas's `ID name` lines", option="--labels")
    return strip_label_ids([line.strip() for line in lines if line.strip()])


def strip_label_ids(lines: list[str]) -> list[str]:
    """Names without PaddleClas's leading class IDs, when every line starts with its own index."""
    split = [line.split(maxsplit=1) for line in lines]
    if lines and all(len(parts) == 2 and parts[0] == str(i) for i, parts in enumerate(split)):
        return [parts[1] for parts in split]
    return lines
