"""A checked plan file -> builds and cells: every build planned (as `edgekit build` would), skips explained.

A build the toolchain cannot make (a target without the recipe's precision, INT8 this host cannot
quantize) becomes a skipped cell with the reason. A device that cannot run a target (an ARM .nb on this
x86 host, an onnx bundle on emu://) keeps the build and skips validate / bench, saying why. Anything else
wrong (a missing weights file, labels that do not fit, a recipe that needs `calib:`) is an EdgekitError
naming the plan file and the entry.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.matrix.plan import (BenchSpec, BuildSpec, CellSpec, DeviceSpec, ModelSpec, PlanFile, RecipeSpec,
                                 TargetSpec, digest)


def _rel(base: Path, value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def _recipe_ref(base: Path, spec: RecipeSpec) -> str:
    """A shipped recipe's name stays a name; a file is relative to the plan."""
    from edgekit.compress.recipes import list_recipes

    if spec.recipe in {r.name for r in list_recipes()}:
        return spec.recipe
    return _rel(base, spec.recipe)


def _data_digest(data: str | None) -> str | None:
    if data is None:
        return None
    path = Path(data)
    if path.is_file():
        return digest(path.read_bytes().hex())
    return digest(sorted((p.relative_to(path).as_posix(), p.stat().st_size) for p in path.rglob("*") if p.is_file()))


def _emulation_missing(address: str) -> str | None:
    from edgekit.native.runner import EMULATOR_ALIASES, EMULATORS
    from edgekit.toolchains import lite_runtime

    name = address.split("://", 1)[1].strip("/").lower()
    arch, qemu, _ = EMULATORS.get(EMULATOR_ALIASES.get(name, name), (None, None, None))
    if arch is None:
        return None  # open_device has already refused the name
    if lite_runtime.registered().get(arch) is None:
        return (f"no {arch} Paddle Lite runtime is registered for {address} (edgekit toolchain "
                "register-lite-runtime DIR; see the README's ARM runtimes)")
    if shutil.which(qemu) is None:
        return f"{qemu} is not installed for {address} (apt-get install qemu-user)"
    return None


def _cannot_run(target, device: DeviceSpec) -> str | None:
    """Why this device cannot run the target's bundles at all, or None."""
    address = device.address
    if address == "local" and not target.runs_on_host:
        return (f"{target.name} bundles do not run on this host ({target.description}); add an ssh:// device "
                "(or emu://aarch64 for numbers)")
    if address.startswith("emu://"):
        return f"{address} runs ARM .nb bundles only" if target.runs_on_host else _emulation_missing(address)
    return None


def _device_skips(device: DeviceSpec, cannot: str | None, has_data: bool,
                  bench: BenchSpec | None) -> tuple[str | None, str | None]:
    """(why validate cannot run, why bench cannot run) on this device, or None; `cannot`: `_cannot_run`'s."""
    address = device.address
    validate = cannot or (None if has_data else "the plan has no `data:` to validate on")
    bench_why = cannot or ("`bench: false` in the plan" if bench is None else None)
    if bench_why is None and address.startswith("emu://"):
        bench_why = "emulation measures numbers, not speed: bench on the board itself (an ssh:// device)"
    return validate, bench_why


def _build(path: Path, base: Path, spec: PlanFile, model: ModelSpec, target_spec: TargetSpec,
           recipe_spec: RecipeSpec, out: Path, use_cache: bool, where: str) -> BuildSpec:
    from edgekit.build import plan_build
    from edgekit.build.cache import build_inputs, key_of
    from edgekit.compress.recipes import get_recipe
    from edgekit.targets import adapter_for, get_target

    target = get_target(target_spec.target)
    recipe_ref = _recipe_ref(base, recipe_spec)
    recipe = get_recipe(recipe_ref)
    build_id = f"{model.key}-{target.name}-{recipe.name}"
    inference_model = _rel(base, model.inference_model)
    kwargs: dict[str, Any] = dict(
        weights=_rel(base, model.weights), inference_model=inference_model, num_classes=model.num_classes,
        labels=_rel(base, model.labels), input_size=model.input_size,
        options={k: str(v) for k, v in target_spec.options.items()}, recipe=recipe_ref,
        calib=_rel(base, spec.calib) if recipe.needs_data else None, calib_limit=recipe_spec.calib_limit,
        max_drop=recipe_spec.max_drop, recipe_overrides=dict(recipe_spec.set) or None,
        out=str(out / "bundles" / build_id), force=True)
    common = dict(id=build_id, model=model.name, target=target.name, recipe=recipe.name, kwargs=kwargs,
                  use_cache=use_cache)
    # What the toolchain cannot make is a skipped cell, not a mistake in the plan.
    try:
        target.check_precision(recipe.precision)
        if recipe.precision == "int8":
            adapter_for(target.runtime).check_int8(Path(inference_model) if inference_model else None)
    except EdgekitError as exc:
        return BuildSpec(**common, skipped=str(exc))
    if recipe.needs_data and spec.calib is None:
        raise EdgekitError(f"Plan file {path}: recipe {recipe.name!r} ({where}) needs labeled images for its "
                           f"{'/'.join(p.kind for p in recipe.passes)} pass: add `calib: LIST_OR_FOLDER` to the "
                           "plan (a few hundred images of the models' own classes).")
    try:
        plan = plan_build(model.name, target.name, **kwargs)
    except EdgekitError as exc:
        raise EdgekitError(f"Plan file {path}: {where}: {exc}") from None
    inputs = build_inputs(plan)
    return BuildSpec(**common, key=key_of(inputs),
                     inputs_digest=digest({k: v for k, v in inputs.items() if k != "edgekit_source"}))


def expand(path: Path, spec: PlanFile, models: list[ModelSpec], devices: list[DeviceSpec], out: Path,
           use_cache: bool) -> tuple[list[BuildSpec], list[CellSpec], list[str]]:
    from edgekit.data.datasets import open_dataset
    from edgekit.devices import open_device
    from edgekit.targets import get_target

    base = path.parent
    targets = [TargetSpec(target=t) if isinstance(t, str) else t for t in spec.targets]
    recipes = [RecipeSpec(recipe=r) if isinstance(r, str) else r for r in spec.recipes]
    for j, t in enumerate(targets):
        try:
            get_target(t.target)
        except EdgekitError as exc:
            raise EdgekitError(f"Plan file {path}: `targets[{j}]`: {exc}") from None
    for k, r in enumerate(recipes):
        try:
            from edgekit.compress.recipes import get_recipe

            get_recipe(_recipe_ref(base, r))
        except EdgekitError as exc:
            raise EdgekitError(f"Plan file {path}: `recipes[{k}]`: {exc}") from None
    for d, device in enumerate(devices):
        try:
            open_device(device.address, python=device.python, work_dir=device.dir,
                        ssh_options=device.ssh_options or None)
        except EdgekitError as exc:
            raise EdgekitError(f"Plan file {path}: `devices[{d}]` ({device.name}): {exc}") from None
    data = _rel(base, spec.data)
    if data is not None:
        try:
            open_dataset(data, option="`data:`")
        except EdgekitError as exc:
            raise EdgekitError(f"Plan file {path}: {exc}") from None
    bench = None if spec.bench is False else spec.bench
    warnings = [f"models: {m.key} has no weights or inference_model: its bundles use RANDOM INITIALISATION and "
                "classify nothing meaningful (latency is still real)" for m in models
                if not m.weights and not m.inference_model]
    builds, cells = [], []
    data_digest = _data_digest(data)
    for i, model in enumerate(models):
        for t in targets:
            for r in recipes:
                where = f"models[{i}] ({model.key}) x target {t.target} x recipe {r.recipe}"
                build = _build(path, base, spec, model, t, r, out, use_cache, where)
                builds.append(build)
                target = get_target(t.target)
                # A bundle goes to the devices that can run it; only where none can is each cell kept to say why.
                cannot = {d.name: _cannot_run(target, d) for d in devices}
                runnable = [d for d in devices if cannot[d.name] is None] or devices
                for device in runnable:
                    v_skip, b_skip = _device_skips(device, cannot[device.name], data is not None, bench)
                    key = digest({"build": build.inputs_digest or [build.id, build.skipped],
                                  "device": device.model_dump(), "data": data_digest, "validate": spec.validate_.model_dump(),
                                  "bench": bench.model_dump() if bench else None})
                    cells.append(CellSpec(id=f"{build.id}@{device.name}", key=key, build=build, model_id=model.key,
                                          device=device, data=data, validate=spec.validate_, bench=bench,
                                          validate_skipped=v_skip, bench_skipped=b_skip))
    return builds, cells, warnings
