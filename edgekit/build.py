"""`edgekit build`: a zoo model + weights -> a verified bundle for one target.

Config precedence is resolved once, in `plan_build`: defaults < model card <
target < recipe < CLI. Everything a user can get wrong is checked there, before
any work starts (recipe, calibration set, teacher); `run_build` then runs the
recipe's passes, exports, converts, quantizes, checks parity and commits the
bundle atomically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit import __version__
from edgekit.bundle import SCHEMA_VERSION, atomic_directory, write_manifest
from edgekit.compress import build_steps as compress_steps
from edgekit.compress.recipes import Recipe
from edgekit.errors import EdgekitError
from edgekit.export import paddle as paddle_export
from edgekit.parity import compare_logits, within
from edgekit.targets import Target, get_target
from edgekit.zoo import get_entry
from edgekit.preprocessing import Preprocessing
from edgekit.zoo.cards import ModelCard, get_card

Progress = Callable[[str], None]

RANDOM_INIT = "random-init"
TOOL_DISTRIBUTIONS = ("paddlepaddle", "paddle2onnx", "onnx", "onnxruntime", "openvino", "opencv-python", "numpy")


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
    labels: list[str] | None = None
    seed: int = 0
    # Resolved once: the card's preprocessing, with the CLI's --input-size on top.
    preprocessing: Preprocessing | None = None
    # The recipe with CLI overrides applied (fp32/fp16 builds get the plain recipe of that name).
    recipe: Recipe | None = None
    # --calib, checked at plan time (list read, labels in range, big enough); decoded in run_build.
    compression: compress_steps.CompressionPlan | None = None

    @property
    def weights_source(self) -> str:
        if self.weights:
            return str(self.weights)
        if self.inference_model:
            return str(self.inference_model)
        return RANDOM_INIT


@dataclass
class StepRecord:
    name: str
    seconds: float
    output: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds, 3), "output": self.output, "size": self.size}


@dataclass
class BuildResult:
    path: Path
    manifest: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)


def default_out_dir(model: str, target: str, precision: str) -> Path:
    return Path("dist") / f"{model}-{target}-{precision}"


def _inference_model_files(directory: Path) -> tuple[Path, Path]:
    params = directory / "inference.pdiparams"
    for name in ("inference.pdmodel", "inference.json"):
        if (directory / name).is_file() and params.is_file():
            return directory / name, params
    raise EdgekitError(f"--inference-model {directory} is not a PaddleClas inference model directory: expected "
                       "inference.pdmodel + inference.pdiparams (Paddle 2.x / legacy export) or "
                       "inference.json + inference.pdiparams (Paddle 3).")


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
    resolved_recipe = compress_steps.resolve_recipe(recipe, precision, calib_limit=calib_limit, max_drop=max_drop,
                                                    overrides=recipe_overrides)
    precision = resolved_recipe.precision
    target_spec.check_precision(precision)
    resolved_options = target_spec.resolve_options(options or {})
    if weights and inference_model:
        raise EdgekitError("Give either --weights or --inference-model, not both.")
    weights_path = Path(weights) if weights else None
    if weights_path and not weights_path.is_file():
        raise EdgekitError(f"--weights {weights_path} does not exist (expected a PaddleClas .pdparams file).")
    inference_dir = Path(inference_model) if inference_model else None
    if inference_dir:
        model_file, _ = _inference_model_files(inference_dir)
        if model_file.suffix == ".json" and target_spec.runtime in ("paddle-lite", "openvino"):
            raise EdgekitError(
                f"--inference-model {inference_dir} holds a Paddle 3 PIR program (inference.json), which "
                f"the {target_spec.runtime} toolchain cannot read. Pass the training weights with --weights "
                "instead (edgekit exports the legacy program itself), or re-export with "
                "FLAGS_enable_pir_api=0 set so Paddle writes inference.pdmodel.")
    label_list = None
    if labels:
        labels_path = Path(labels)
        if not labels_path.is_file():
            raise EdgekitError(f"--labels {labels_path} does not exist (expected one class name per line).")
        label_list = [line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if num_classes is None:
        num_classes = len(label_list) if label_list else 1000
    if label_list is not None and len(label_list) != num_classes:
        raise EdgekitError(f"--labels {labels} has {len(label_list)} names but the model has {num_classes} "
                           "classes; give one name per class (or fix --num-classes).")
    out_dir = Path(out) if out else default_out_dir(model, target, resolved_recipe.name)
    if out_dir.exists() and not force:
        raise EdgekitError(f"Output directory {out_dir} already exists; pass --force to replace it, "
                           "or choose another --out.")
    preprocessing = card.preprocessing
    if input_size is not None:
        if not 16 <= input_size <= 1024:
            raise EdgekitError(f"--input-size {input_size} is out of range (expected 16..1024 pixels).")
        # Small custom datasets (e.g. 64x64 digits) are trained at their own size: no resize margin.
        preprocessing = dataclasses.replace(preprocessing, resize_short=input_size, crop=input_size)
    compression = compress_steps.plan_compression(resolved_recipe, target_spec, calib, num_classes=num_classes,
                                                  inference_model=inference_dir)
    return BuildPlan(model=model, target=target_spec, precision=precision, card=card, num_classes=num_classes,
                     options=resolved_options, out=out_dir, force=force, weights=weights_path,
                     inference_model=inference_dir, labels=label_list, preprocessing=preprocessing,
                     recipe=resolved_recipe, compression=compression)


def _timed(steps: list[StepRecord], progress: Progress | None, name: str, fn, *args, **kwargs) -> Path:
    """Run one conversion step: time it, check it produced a non-empty output, record it."""
    if progress:
        progress(name)
    start = time.perf_counter()
    output = Path(fn(*args, **kwargs))
    seconds = time.perf_counter() - start
    if not output.is_file() or output.stat().st_size == 0:
        raise EdgekitError(f"Build step {name} produced no output at {output}.")
    steps.append(StepRecord(name, seconds, output.name, output.stat().st_size))
    return output


def _tool_versions() -> dict[str, str]:
    versions = {"edgekit": __version__, "python": platform.python_version()}
    for dist in TOOL_DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _source_model(plan: BuildPlan, work: Path):
    """The Paddle model the artifact must reproduce, and the .pdparams it was built from."""
    import paddle

    from edgekit.zoo import create_model
    from edgekit.zoo.weights import load_weights

    paddle.seed(plan.seed)
    model = create_model(plan.model, num_classes=plan.num_classes)
    sha = None
    if plan.weights:
        sha = load_weights(model, plan.weights)
        weights_file = plan.weights
    else:
        weights_file = work / "random-init.pdparams"
        paddle.save(model.state_dict(), str(weights_file))
    model.eval()
    return model, weights_file, sha


def _parity_images(plan: BuildPlan) -> tuple[list[str], np.ndarray]:
    from edgekit.data.preprocess import preprocess_batch
    from edgekit.data.samples import sample_photos

    photos = sample_photos()
    return list(photos), preprocess_batch(list(photos.values()), plan.preprocessing)


def _paddle_logits(model, batch: np.ndarray) -> np.ndarray:
    import paddle

    with paddle.no_grad():
        return model(paddle.to_tensor(batch)).numpy()


def run_build(plan: BuildPlan, progress: Progress | None = None) -> BuildResult:
    from edgekit.apps.python import python_app
    from edgekit.export.onnx import onnx_fp32_to_fp16, paddle2onnx
    from edgekit.export.openvino import onnx2openvino
    from edgekit.runtime.backends import open_backend

    steps: list[StepRecord] = []
    target = plan.target
    if target.runtime == "paddle-lite":
        from edgekit.toolchains import paddle_lite

        paddle_lite.find(install_missing=True,
                         progress=(lambda step, done, total: progress(f"paddle-lite toolchain: {step}"))
                         if progress else None)
    work = Path(tempfile.mkdtemp(prefix="edgekit-build-"))
    try:
        with atomic_directory(plan.out, plan.force) as bundle:
            size = plan.preprocessing.crop
            # 1. The source: a Paddle inference program (and, from weights, the live model).
            if plan.inference_model:
                source_model = None
                program, params = _inference_model_files(plan.inference_model)
                weights_sha = None
            else:
                source_model, weights_file, weights_sha = _source_model(plan, work)
            # The recipe's data, decoded once; distillation / QAT change the source model's weights.
            data = compress_steps.load_data(plan) if plan.compression else None
            compression: dict[str, Any] = {"data": data.to_manifest()} if data else {}
            if data is not None and source_model is not None:
                start = time.perf_counter()
                source_model, weights_file, trained = compress_steps.train_passes(plan, source_model, weights_file,
                                                                                  data, work, progress)
                if trained:
                    compression.update(trained)
                    steps.append(StepRecord("+".join(trained), time.perf_counter() - start, weights_file.name,
                                            weights_file.stat().st_size))
            if not plan.inference_model:
                program = _timed(steps, progress, "export paddle program", paddle_export.export_legacy_program,
                                 plan.model, plan.num_classes, weights_file, work / "paddle", size)
                params = program.with_suffix(".pdiparams")
            # 2. The target's converters (INT8: the target's quantization route).
            if plan.precision == "int8":
                model_file, compression["quantization"] = compress_steps.quantize(
                    plan, program, data, work, bundle, progress,
                    lambda name, fn, *a: _timed(steps, progress, name, fn, *a), compression)
                steps.append(StepRecord("int8 quantize", compression["quantization"]["seconds"], model_file.name,
                                        model_file.stat().st_size))
            elif target.runtime == "paddle-inference":
                model_file = bundle / ("model" + program.suffix)
                shutil.copyfile(program, model_file)
                shutil.copyfile(params, bundle / "model.pdiparams")
            elif target.runtime in ("onnxruntime", "openvino"):
                onnx_file = _timed(steps, progress, "paddle2onnx", paddle2onnx, program, params,
                                   work / "model.onnx", plan.options["opset"])
                if target.runtime == "onnxruntime":
                    if plan.precision == "fp16":
                        model_file = _timed(steps, progress, "onnx fp16", onnx_fp32_to_fp16, onnx_file,
                                            bundle / "model.onnx")
                    else:
                        model_file = bundle / "model.onnx"
                        shutil.copyfile(onnx_file, model_file)
                else:
                    model_file = _timed(steps, progress, "onnx2openvino", onnx2openvino, onnx_file,
                                        bundle / "model.xml", plan.precision == "fp16")
            elif target.runtime == "paddle-lite":
                from edgekit.export.lite import paddle2lite

                model_file = _timed(steps, progress, "paddle2lite", paddle2lite, program, params,
                                    bundle / "model.nb", plan.options["arch"])
            # 3. Parity: the artifact against its source on the same real photos.
            # INT8 is compared on the held-out images of its own domain, not on unrelated photos.
            parity_images = (["held-out --calib images"], data.holdout_images[:64]) if plan.precision == "int8" \
                else None
            parity = _measure_parity(plan, model_file, program, source_model, steps, progress, open_backend,
                                     parity_images)
            # 4. What an app needs beside the model.
            _write_app(plan, bundle, python_app)
            if plan.labels:
                (bundle / "labels.txt").write_text("\n".join(plan.labels) + "\n", encoding="utf-8")
            manifest = _manifest(plan, model_file.name, weights_sha, parity, steps, compression)
            write_manifest(bundle, manifest)
        return BuildResult(plan.out, manifest, steps)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure_parity(plan, model_file, program, source_model, steps, progress, open_backend,
                    images: tuple[list[str], np.ndarray] | None = None) -> dict[str, Any]:
    target = plan.target
    if not target.runs_on_host:
        return {"measured": False,
                "reason": f"{target.name} artifacts hold {plan.options.get('arch', 'ARM')} kernels and cannot run "
                          f"on this {platform.machine()} build host; validate on the device "
                          "(`edgekit validate --device ssh://... or adb://...`)."}
    if progress:
        progress("parity check")
    start = time.perf_counter()
    names, batch = images or _parity_images(plan)
    if source_model is not None:
        reference = _paddle_logits(source_model, batch)
        reference_name = "paddle dygraph model (source weights)"
    else:
        reference = open_backend("paddle-inference", program)(batch)
        reference_name = f"Paddle Inference on {program.name}"
    backend = open_backend(target.runtime, model_file)
    candidate = backend(batch)
    metrics = compare_logits(reference, candidate)
    tolerance = target.parity[plan.precision]
    failures = within(metrics, tolerance)
    steps.append(StepRecord("parity check", time.perf_counter() - start, model_file.name, model_file.stat().st_size))
    record = {"measured": True, "reference": reference_name, "runtime": target.runtime,
              "runtime_precision": backend.precision, "images": names, **metrics,
              "tolerance": tolerance.model_dump(), "passed": not failures}
    if failures:
        raise EdgekitError(f"Parity check failed for {plan.model} -> {target.name} ({plan.precision}): "
                           f"{'; '.join(failures)} on {len(batch)} images ({', '.join(names)[:80]}). The exported "
                           "model does not compute what the Paddle model computes; nothing was written.")
    return record


def _write_app(plan: BuildPlan, bundle: Path, python_app) -> None:
    app = bundle / "app"
    app.mkdir()
    if plan.target.app == "python":
        (app / "predict.py").write_text(python_app(plan.target.runtime))
    else:
        from edgekit.export.lite import write_lite_app

        write_lite_app(app, plan.preprocessing.to_dict())


def _manifest(plan: BuildPlan, model_file: str, weights_sha: str | None, parity: dict, steps,
              compression: dict[str, Any] | None = None) -> dict[str, Any]:
    card = plan.card
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
                   "precision": plan.precision, "options": plan.options},
        "recipe": plan.recipe.to_manifest() if plan.recipe else {"name": plan.precision, "passes": []},
        "compression": compression or None,
        "artifact": {"model_file": model_file},
        "input": {"name": paddle_export.INPUT_NAME, "shape": [-1, 3, size, size], "layout": "NCHW",
                  "dtype": "float32"},
        "output": {"shape": [-1, plan.num_classes], "kind": "logits"},
        "preprocessing": plan.preprocessing.to_dict(),
        "labels": "labels.txt" if plan.labels else None,
        "parity": parity,
        "build": {"steps": [s.to_dict() for s in steps], "host": f"{platform.system()} {platform.machine()}"},
        "tools": _tool_versions(),
        "validations": [],
    }
