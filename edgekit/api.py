"""The public Python API. The CLI is a thin layer over these functions."""

from __future__ import annotations

from edgekit.zoo import create_model, list_families, list_models
from edgekit.zoo.cards import ModelCard, get_card

__all__ = ["create_model", "list_models", "list_families", "get_card", "zoo_cards", "doctor", "build", "build_fastest",
           "targets", "recipes"]


def zoo_cards(family: str | None = None) -> list[ModelCard]:
    """Cards of every zoo model, optionally of one family (case-insensitive)."""
    if family is not None and family.lower() not in {f.lower() for f in list_families()}:
        from edgekit.errors import EdgekitError, suggest

        raise EdgekitError(f"Unknown family {family!r} for --family.{suggest(family, list_families())} "
                           f"Families: {', '.join(list_families())}.")
    return [get_card(name) for name in list_models(family)]


def doctor():
    """Which runtimes and toolchains are usable on this machine, with versions."""
    from edgekit.doctor import run_checks

    return run_checks()


def build(model: str, target: str, precision: str = "fp32", *, weights=None, inference_model=None, out=None,
          force: bool = False, num_classes: int | None = None, labels=None, options: dict | None = None,
          input_size: int | None = None, progress=None, recipe=None, calib=None, calib_limit: int | None = None,
          max_drop: float | None = None, recipe_overrides: dict | None = None, cache: bool = False):
    """Export `model` for `target` into a verified bundle directory; returns a BuildResult.

    `recipe` (name or YAML path, see `recipes()`) compresses on the way: INT8
    recipes need `calib` (labeled images: a PaddleClas list file or class
    folders); `max_drop` / `calib_limit` / `recipe_overrides` ({"PASS.KEY": value})
    override the recipe. All inputs are checked before any work starts
    (EdgekitError on bad input). With `cache=True` (what `edgekit build` does unless --no-cache) a build
    whose inputs match an earlier one reuses that bundle (see edgekit.build.cache; `result.cache` says
    whether it did); the library builds unless asked, so a program that calls build gets a build.
    """
    from edgekit.build import plan_build, run_build
    from edgekit.fastest import FASTEST

    if target == FASTEST:
        return build_fastest(model, precision=precision, weights=weights, inference_model=inference_model, out=out, force=force,
                             num_classes=num_classes, labels=labels, options=options, input_size=input_size,
                             recipe=recipe, calib=calib, calib_limit=calib_limit, max_drop=max_drop,
                             recipe_overrides=recipe_overrides, cache=cache, progress=progress)
    plan = plan_build(model, target, precision, weights=weights, inference_model=inference_model, out=out,
                      force=force, num_classes=num_classes, labels=labels, options=options, input_size=input_size,
                      recipe=recipe, calib=calib, calib_limit=calib_limit, max_drop=max_drop,
                      recipe_overrides=recipe_overrides)
    if cache:
        from edgekit.build.cache import cached_build

        return cached_build(plan, progress=progress)
    return run_build(plan, progress=progress)


def build_fastest(model: str, *, candidates=None, batch: int = 1, threads: int | None = None,
                  device: str = "local", **build_options):
    """The fastest bundle of `model` for this CPU (or `device`) within the recipe's accuracy budget.

    Builds every candidate (default: paddle, onnx, openvino in FP32, and onnx, openvino in INT8 when
    `calib` is given; `candidates="onnx:int8,openvino:fp32"` chooses), benches them in one interleaved
    run at `batch`, and writes the fastest whose build met the budget to `out` (default
    dist/<model>-fastest) with a `selection` record in its manifest. `build_options` are `build`'s
    (weights, calib, recipe: the INT8 candidates' recipe, max_drop, out, ...). Returns a FastestResult.
    """
    from edgekit.fastest import build_fastest as run

    return run(model, candidates=candidates, batch=batch, threads=threads, device=device, **build_options)


def recipes():
    """The shipped compression recipes (fp32, fp16, ptq-int8, qat-int8, distill, ...)."""
    from edgekit.compress.recipes import list_recipes

    return list_recipes()


def recipe(name_or_path):
    """One recipe, shipped (by name) or a YAML file (by path), validated."""
    from edgekit.compress.recipes import get_recipe

    return get_recipe(name_or_path)


def targets():
    """Every target edgekit can build, with the precisions and options it supports."""
    from edgekit.targets import list_targets

    return list_targets()


def install_toolchain(name: str, force: bool = False, progress=None):
    """Provision an external toolchain into the user cache (today: "paddle-lite")."""
    from edgekit.toolchains import install

    return install(name, force=force, progress=progress)


def bench(targets=(), **options):
    """Latency of bundles on this CPU (interleaved, with records), the seed's TensorRT method on a GPU
    (`gpu="t4"|"v100"`), or the seed's reference tables (`reference_only=True`); returns a BenchReport.

    Options are those of `edgekit.bench.run` (batch="1,4,8", threads, warmup, iterations, duration,
    target, precision, precision_hint, end_to_end, peak, device, ...).
    """
    from pathlib import Path

    from edgekit.bench import run

    return run([str(targets)] if isinstance(targets, (str, Path)) else [str(t) for t in targets], **options)


def validate(bundle, data, *, root=None, limit: int | None = None, batch: int = 32, device: str = "local",
             reference=None, use_reference: bool = True, x86_lite=None, max_drop: float | None = None,
             threads: int | None = None, workers: int | None = None, device_python: str | None = None,
             device_dir: str | None = None, ssh_options: dict[str, str] | None = None,
             timeout: float | None = None, record: bool = True, report=None, progress=None):
    """Accuracy of `bundle` on labeled images where it runs (local, ssh://, adb://); returns a ValidationReport.

    top-1/top-5 and images/s on the device; top-1 agreement and logit cosine against `reference` (a bundle)
    or the FP32 Paddle source model; the published figures for ImageNet models. The record is appended to
    the bundle's manifest unless `record=False`. `max_drop` is a fraction of top-1 (0.01 = one point).
    """
    from edgekit.validate import validate as run

    return run(bundle, data, root=root, limit=limit, batch=batch, device=device, reference=reference,
               use_reference=use_reference, x86_lite=x86_lite, max_drop=max_drop, threads=threads,
               workers=workers, device_python=device_python, device_dir=device_dir, ssh_options=ssh_options,
               timeout=timeout, record=record, report=report, progress=progress)


__all__.append("validate")


def train(model: str, train_data, val_data=None, *, out, num_classes: int | None = None,
          input_size: int | None = None, epochs: int = 3, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
          checkpoint_dir=None, augment: bool = False, warmup: float = 0.2, progress: bool = True):
    """Train zoo `model` from scratch on a labeled dataset (list file, class folders or LabeledImages).

    Saves the last weights to `out` (.pdparams, loadable by `build --weights`);
    with `checkpoint_dir`, an interrupted run resumes. Returns a TrainedModel.
    """
    from edgekit.training.zoo_training import train_zoo_model

    return train_zoo_model(model, train_data, val_data, out=out, num_classes=num_classes, input_size=input_size,
                           epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
                           augment=augment, warmup=warmup, progress=progress)


def distill(student: str, train_data, val_data=None, *, teacher: str, teacher_weights, out,
            num_classes: int | None = None, input_size: int | None = None, epochs: int = 3,
            temperature: float = 4.0, alpha: float = 0.9, use_labels: bool = True, batch_size: int = 64,
            lr: float = 1e-3, seed: int = 0, work_dir=None, augment: bool = False, warmup: float = 0.2,
            progress: bool = True):
    """Distill zoo `teacher` (its trained .pdparams required) into a fresh zoo `student`.

    See edgekit.compress.distill.DistillPass for the loss. Saves the student to
    `out` (.pdparams); returns a TrainedModel with the teacher's val accuracy.
    """
    from edgekit.training.zoo_training import distill_zoo_model

    return distill_zoo_model(student, train_data, val_data, teacher=teacher, teacher_weights=teacher_weights,
                             out=out, num_classes=num_classes, input_size=input_size, epochs=epochs,
                             temperature=temperature, alpha=alpha, use_labels=use_labels, batch_size=batch_size,
                             lr=lr, seed=seed, work_dir=work_dir, augment=augment, warmup=warmup,
                             progress=progress)


def demo(out="demo-out", *, force: bool = False, log=print, use_cache: bool = True):
    """The whole pipeline on the bundled digits: train, distill, then the student's FP32 and INT8 bundles as a
    matrix (built through the build cache unless use_cache=False, validated, benched), and its report.

    Writes data, models, plan.yaml, records.jsonl, bundles and report.md/.html/.png under `out`; returns a
    DemoResult.
    """
    from edgekit.demo import DemoConfig, run_demo

    return run_demo(out, force=force, log=log, config=DemoConfig(cache=use_cache))


__all__.extend(["train", "distill", "demo", "bench"])


def matrix_plan(plan, *, out=None, use_cache: bool | None = None):
    """Read, check and expand a matrix file (plan.yaml) into cells, skipped ones with their reason; nothing
    is built. EdgekitError names the file and the key on bad input. See edgekit.matrix.plan for the format."""
    from edgekit.matrix.plan import load_plan

    return load_plan(plan, out=out, use_cache=use_cache)


def matrix(plan, *, out=None, ray: str | None = None, jobs: int | None = None, use_cache: bool | None = None,
           progress=None):
    """Run a matrix file (or the MatrixPlan `matrix_plan` returned): every model x target x recipe built
    (through the build cache), validated and benched on every device; returns a MatrixResult. One JSON record per finished cell goes to
    <out>/records.jsonl as it finishes, so an interrupted run resumes where it stopped; the report is
    <out>/report.md and report.html. `ray="HOST:PORT"` runs cells as tasks on that Ray cluster (devices are
    its custom resources device:NAME; needs `pip install 'edgekit[ray]'`); otherwise a local process pool of
    `jobs` processes (default: one per core) builds, and each device benches one cell at a time.
    """
    from edgekit.matrix.plan import MatrixPlan, load_plan
    from edgekit.matrix.run import run_matrix

    if not isinstance(plan, MatrixPlan):  # a path; a MatrixPlan is one matrix_plan() already checked
        plan = load_plan(plan, out=out, use_cache=use_cache)
    return run_matrix(plan, ray=ray, jobs=jobs, progress=progress)


def cache_location():
    """Where the build cache keeps its entries (<edgekit cache dir>/builds; $EDGEKIT_CACHE_DIR moves it)."""
    from edgekit.build.cache import cache_dir

    return cache_dir()


def cache_entries():
    """The build cache's entries (edgekit.build.cache.CacheEntry), most recently used first."""
    from edgekit.build.cache import entries

    return entries()


def prune_cache(*, older_than_days: float | None = None, max_size: int | None = None, everything: bool = False,
                dry_run: bool = False):
    """Remove build-cache entries unused for `older_than_days`, beyond `max_size` bytes (least recently used
    first), or all; returns a PruneResult (what went, what stays, bytes freed)."""
    from edgekit.build.cache import prune

    return prune(older_than_days=older_than_days, max_size=max_size, everything=everything, dry_run=dry_run)


__all__.extend(["matrix", "matrix_plan", "cache_location", "cache_entries", "prune_cache"])
