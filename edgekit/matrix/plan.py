"""plan.yaml: the matrix file, checked up front (file, key, what was expected) and expanded into cells.

    name: digits-sweep              # optional: the report's title
    out: sweep-out                  # optional: records, bundles, report [default: <plan name>-out beside it]
    models:
      - name: ResNet18              # a zoo model, as `edgekit build MODEL`
        id: r18                     # optional: tells two entries of one zoo model apart [default: name]
        weights: r18.pdparams       # or inference_model: DIR; neither: random-init (said loudly)
        num_classes: 10
        labels: labels.txt
        input_size: 32
    targets: [onnx, {target: openvino, options: {opset: 13}}]
    recipes: [fp32, {recipe: ptq-int8, max_drop: 0.05, calib_limit: 200, set: {ptq.algorithm: minmax}}]
    calib: train_list.txt           # labeled images for recipes with passes (INT8, distillation)
    data: val_list.txt              # validation images; without it cells are built and benched only
    validate: {limit: 200, batch: 32}
    devices: [local, {name: pi, address: "ssh://pi@board", python: /usr/bin/python3}]
    bench: {batch: "1", iterations: 30, warmup: 5, rounds: 3}   # or `bench: false`
    cache: true                     # reuse earlier builds of the same inputs (edgekit cache ls)

Paths are relative to the plan file. A cell is one model x target x recipe (a build) on one device. Cells the
toolchain cannot make (a target without that precision, INT8 a host cannot quantize) are kept as skipped,
with the reason; everything else that is wrong stops the plan before any work.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgekit.errors import EdgekitError, suggest

DEVICE_NAME = re.compile(r"^[A-Za-z0-9_.@-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    name: str
    id: Optional[str] = None
    weights: Optional[str] = None
    inference_model: Optional[str] = None
    num_classes: Optional[int] = Field(None, ge=1)
    labels: Optional[str] = None
    input_size: Optional[int] = Field(None, ge=16, le=1024)

    @property
    def key(self) -> str:
        return self.id or self.name


class TargetSpec(_Strict):
    target: str
    options: dict[str, Union[str, int, float, bool]] = Field(default_factory=dict)


class RecipeSpec(_Strict):
    recipe: str
    max_drop: Optional[float] = Field(None, gt=0, lt=1)
    calib_limit: Optional[int] = Field(None, ge=1)
    set: dict[str, Union[str, int, float, bool, None]] = Field(default_factory=dict)


class DeviceSpec(_Strict):
    name: str
    address: str = "local"
    python: Optional[str] = None
    dir: Optional[str] = None
    ssh_options: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not DEVICE_NAME.match(value):
            raise ValueError("a device name is letters, digits and _ . @ - (it becomes the Ray resource "
                             "device:NAME)")
        return value


class ValidateSpec(_Strict):
    limit: Optional[int] = Field(None, ge=1)
    batch: int = Field(32, ge=1)


class BenchSpec(_Strict):
    batch: str = "1"
    iterations: Optional[int] = Field(30, ge=1)
    duration: Optional[float] = Field(None, gt=0)
    warmup: int = Field(5, ge=0)
    rounds: int = Field(3, ge=1)
    threads: Optional[int] = Field(None, ge=1)

    @field_validator("batch", mode="before")
    @classmethod
    def _batch(cls, value: Any) -> str:
        return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


class PlanFile(_Strict):
    name: Optional[str] = None
    out: Optional[str] = None
    models: list[Union[str, ModelSpec]] = Field(min_length=1)
    targets: list[Union[str, TargetSpec]] = Field(min_length=1)
    recipes: list[Union[str, RecipeSpec]] = Field(default_factory=lambda: ["fp32"], min_length=1)
    calib: Optional[str] = None
    data: Optional[str] = None
    validate_: ValidateSpec = Field(default_factory=ValidateSpec, alias="validate")
    devices: list[Union[str, DeviceSpec]] = Field(default_factory=lambda: ["local"], min_length=1)
    bench: Union[Literal[False], BenchSpec] = Field(default_factory=BenchSpec)
    cache: bool = True


# --------------------------------------------------------------------------- the expanded plan


@dataclass(frozen=True)
class BuildSpec:
    """One model x target x recipe: everything `plan_build` takes, as plain values (it travels to workers)."""

    id: str  # also the bundle's directory name under <out>/bundles
    model: str
    target: str
    recipe: str
    kwargs: dict[str, Any]
    use_cache: bool = True
    skipped: str | None = None  # why this build cannot be made (then nothing runs)
    key: str | None = None  # the build cache key (None when skipped)
    # The inputs without edgekit's source digest: what a resumed matrix compares, so editing edgekit's
    # code (the cache's concern) does not re-run finished cells; a new edgekit or tool version does.
    inputs_digest: str | None = None


@dataclass(frozen=True)
class CellSpec:
    """One build on one device: validate (when the plan has data) and bench (unless `bench: false`)."""

    id: str
    key: str  # changes when any input does, so a resumed matrix re-runs only what changed
    build: BuildSpec
    model_id: str
    device: DeviceSpec
    data: str | None
    validate: ValidateSpec
    bench: BenchSpec | None
    validate_skipped: str | None = None
    bench_skipped: str | None = None


@dataclass
class MatrixPlan:
    source: Path
    name: str
    out: Path
    builds: list[BuildSpec]
    cells: list[CellSpec]
    devices: list[DeviceSpec]
    cache: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), "name": self.name, "out": str(self.out), "cache": self.cache,
                "devices": [d.model_dump() for d in self.devices], "warnings": self.warnings,
                "cells": [{"id": c.id, "key": c.key, "build": c.build.id, "device": c.device.name,
                           "skipped": c.build.skipped, "validate_skipped": c.validate_skipped,
                           "bench_skipped": c.bench_skipped} for c in self.cells]}


# --------------------------------------------------------------------------- reading and checking


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = [str(x) for x in error["loc"] if not str(x).startswith(("function-after", "union[", "literal["))]
        # A union reports each alternative; the mapping one names the field the user wrote.
        loc = [x for x in loc if x not in ("str", "ModelSpec", "TargetSpec", "RecipeSpec", "DeviceSpec",
                                             "BenchSpec", "constrained-str")]
        key = ".".join(x if not x.isdigit() else f"[{x}]" for x in loc).replace(".[", "[").replace("validate_",
                                                                                                  "validate")
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown key `{key}`")
        elif error["type"] == "missing":
            parts.append(f"`{key}` is required")
        else:
            parts.append(f"`{key}`: {error['msg'][0].lower() + error['msg'][1:]} (got {error.get('input')!r})")
    return "; ".join(dict.fromkeys(parts))


def read_plan_file(path: str | Path) -> PlanFile:
    from edgekit.userfiles import read_yaml

    path = Path(path)
    raw = read_yaml(path, "a matrix plan (YAML with models, targets, recipes, devices; see `edgekit matrix "
                          "--help`)", option="Plan file")
    if not isinstance(raw, dict):
        raise EdgekitError(f"Plan file {path} must be a YAML mapping with keys models, targets, recipes, devices, "
                           f"... (got {type(raw).__name__}).")
    known = [name if f.alias is None else f.alias for name, f in PlanFile.model_fields.items()]
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise EdgekitError(f"Plan file {path}: unknown key `{unknown[0]}`; a plan has {', '.join(known)}."
                           f"{suggest(str(unknown[0]), known)}")
    try:
        return PlanFile.model_validate(raw)
    except ValidationError as exc:
        raise EdgekitError(f"Plan file {path}: {_describe(exc)}.") from None


def _device(item: str | DeviceSpec) -> DeviceSpec:
    if isinstance(item, DeviceSpec):
        return item
    name = item.split("://", 1)[-1].strip("/") or item
    return DeviceSpec(name=re.sub(r"[^A-Za-z0-9_.@-]", "_", name), address=item)


def load_plan(path: str | Path, *, out: str | Path | None = None, use_cache: bool | None = None) -> MatrixPlan:
    """Read, check and expand a plan file; raises EdgekitError (naming the file and key) before any work."""
    from edgekit.matrix.expand import expand

    path = Path(path)
    spec = read_plan_file(path)
    base = path.parent
    out_dir = Path(out) if out else (base / spec.out if spec.out else base / f"{path.stem}-out")
    devices = [_device(d) for d in spec.devices]
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise EdgekitError(f"Plan file {path}: `devices` names {dup!r} twice; give each device its own `name:`.")
    models = [ModelSpec(name=m) if isinstance(m, str) else m for m in spec.models]
    ids = [m.key for m in models]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise EdgekitError(f"Plan file {path}: `models` has two entries called {dup!r}; give one an `id:`.")
    cache = spec.cache if use_cache is None else use_cache
    builds, cells, warnings = expand(path, spec, models, devices, out_dir, cache)
    return MatrixPlan(source=path, name=spec.name or path.stem, out=out_dir, builds=builds, cells=cells,
                      devices=devices, cache=cache, warnings=warnings)


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
