"""Recipes: ordered lists of compression passes, as validated data files.

A recipe file (recipes/*.yaml, shipped as the package data `edgekit._recipes`,
or any YAML file a user writes) looks like

    name: ptq-int8
    description: ...
    precision: int8          # what the artifact computes in: fp32, fp16 or int8
    passes:
      - pass: ptq            # one of edgekit.compress.passes.PASS_PARAMS
        algorithm: minmax
        max_drop: 0.01

It is referenced by name (`--recipe ptq-int8`) or by path (`--recipe my.yaml`).
Every problem is reported before any work starts, naming the file, the key
and what was expected.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edgekit.compress.passes import PASS_PARAMS, DistillParams, PassParams
from edgekit.errors import EdgekitError, suggest
from edgekit.userfiles import read_yaml

Precision = Literal["fp32", "fp16", "bf16", "int8"]
_TOP_LEVEL_KEYS = {"name": "a string", "description": "a string", "precision": "fp32, fp16, bf16 or int8",
                   "passes": "a list of passes"}


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: str
    description: str
    precision: Precision
    passes: list[PassParams]
    # Where it was read from (package recipes: "recipes/NAME.yaml"), for messages and the manifest.
    source: str

    @property
    def quantization(self) -> PassParams | None:
        return next((p for p in self.passes if p.quantizes), None)

    @property
    def distillation(self) -> DistillParams | None:
        return next((p for p in self.passes if isinstance(p, DistillParams)), None)

    @property
    def needs_data(self) -> bool:
        return any(p.needs_data for p in self.passes)

    def to_manifest(self) -> dict[str, Any]:
        """The resolved recipe as saved in the bundle manifest."""
        return {"name": self.name, "source": self.source, "precision": self.precision,
                "passes": [{"pass": p.kind, **_fields(p)} for p in self.passes]}


def _fields(params: PassParams, mode: str = "json") -> dict[str, Any]:
    # DistillPass carries its kind as a field too (alias "pass"); the recipe names it once.
    return params.model_dump(mode=mode, exclude={"pass_name"})


def _describe_errors(exc: ValidationError, prefix: str) -> str:
    parts = []
    for error in exc.errors():
        key = ".".join(str(x) for x in (prefix, *error["loc"]) if x != "")
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown key `{key}`")
        elif error["type"] == "missing":
            parts.append(f"`{key}` is required")
        else:
            parts.append(f"`{key}`: {error['msg'][0].lower() + error['msg'][1:]} (got {error.get('input')!r})")
    return "; ".join(parts)


def _parse_pass(item: Any, index: int, source: str, base_dir: Path | None) -> PassParams:
    where = f"passes[{index}]"
    if not isinstance(item, dict) or "pass" not in item:
        raise EdgekitError(f"Recipe {source}: `{where}` must be a mapping with a `pass:` key naming one of "
                           f"{', '.join(PASS_PARAMS)} (got {item!r}).")
    fields = dict(item)
    kind = fields.pop("pass")
    if kind not in PASS_PARAMS:
        raise EdgekitError(f"Recipe {source}: `{where}.pass` is {kind!r}, expected one of "
                           f"{', '.join(PASS_PARAMS)}.{suggest(str(kind), list(PASS_PARAMS))}")
    params_cls = PASS_PARAMS[kind]
    try:
        params = params_cls.model_validate(fields)
    except ValidationError as exc:
        known = ", ".join(k for k in params_cls.model_fields if k != "pass_name")
        raise EdgekitError(f"Recipe {source}: {_describe_errors(exc, f'{where}({kind})')}. "
                           f"The {kind} pass takes: {known}.") from None
    except EdgekitError as exc:  # a field's own check, e.g. a teacher that is not in the zoo
        raise EdgekitError(f"Recipe {source}: `{where}({kind})`: {exc}") from None
    if isinstance(params, DistillParams) and params.teacher_weights and base_dir is not None \
            and not params.teacher_weights.is_absolute():
        params = params.model_copy(update={"teacher_weights": base_dir / params.teacher_weights})
    return params


def parse_recipe(raw: Any, source: str, base_dir: Path | None = None) -> Recipe:
    """Validate a recipe's parsed YAML; `source` names it in messages."""
    if not isinstance(raw, dict):
        raise EdgekitError(f"Recipe {source} must be a YAML mapping with keys {', '.join(_TOP_LEVEL_KEYS)} "
                           f"(got {type(raw).__name__}).")
    unknown = [k for k in raw if k not in _TOP_LEVEL_KEYS]
    if unknown:
        raise EdgekitError(f"Recipe {source}: unknown key `{unknown[0]}`; a recipe has "
                           f"{', '.join(f'`{k}` ({v})' for k, v in _TOP_LEVEL_KEYS.items())}."
                           f"{suggest(str(unknown[0]), list(_TOP_LEVEL_KEYS))}")
    missing = [k for k in ("name", "precision") if k not in raw]
    if missing:
        raise EdgekitError(f"Recipe {source}: `{missing[0]}` is required ({_TOP_LEVEL_KEYS[missing[0]]}).")
    passes_raw = raw.get("passes") or []
    if not isinstance(passes_raw, list):
        raise EdgekitError(f"Recipe {source}: `passes` must be a list of passes (got {passes_raw!r}).")
    passes = [_parse_pass(item, i, source, base_dir) for i, item in enumerate(passes_raw)]
    try:
        recipe = Recipe(name=raw["name"], description=raw.get("description", ""), precision=raw["precision"],
                        passes=passes, source=source)
    except ValidationError as exc:
        raise EdgekitError(f"Recipe {source}: {_describe_errors(exc, '')}.") from None
    _check_pass_order(recipe)
    return recipe


def _check_pass_order(recipe: Recipe) -> None:
    quantizing = [i for i, p in enumerate(recipe.passes) if p.quantizes]
    source = recipe.source
    if recipe.precision == "int8":
        if len(quantizing) != 1 or quantizing[0] != len(recipe.passes) - 1:
            raise EdgekitError(f"Recipe {source}: `precision: int8` needs exactly one quantization pass (ptq or "
                               f"qat), and it must be the last of `passes` (got "
                               f"{[p.kind for p in recipe.passes]}).")
    elif quantizing:
        raise EdgekitError(f"Recipe {source}: `passes[{quantizing[0]}]` is a quantization pass "
                           f"({recipe.passes[quantizing[0]].kind}) but `precision` is {recipe.precision}; "
                           "set `precision: int8`.")
    if sum(isinstance(p, DistillParams) for p in recipe.passes) > 1:
        raise EdgekitError(f"Recipe {source}: at most one distill pass.")


def _read_yaml(path: Path, source: str) -> Any:
    return read_yaml(path, "a recipe (YAML with name, precision and passes; see `edgekit recipes`)",
                     option="Recipe file")


@lru_cache(maxsize=None)
def _builtin() -> dict[str, Recipe]:
    recipes = {}
    for entry in resources.files("edgekit._recipes").iterdir():
        if entry.name.endswith(".yaml"):
            source = f"recipes/{entry.name}"
            recipe = parse_recipe(yaml.safe_load(entry.read_text(encoding="utf-8")), source)
            recipes[recipe.name] = recipe
    return recipes


def list_recipes() -> list[Recipe]:
    return sorted(_builtin().values(), key=lambda r: (r.precision != "fp32", len(r.passes), r.name))


def get_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name, or a recipe file by path."""
    text = str(name_or_path)
    builtin = _builtin()
    if text in builtin:
        return builtin[text]
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.is_file() or "/" in text:
        return parse_recipe(_read_yaml(path, str(path)), str(path), base_dir=path.parent)
    raise EdgekitError(f"Unknown recipe {text!r}.{suggest(text, list(builtin))} Shipped recipes: "
                       f"{', '.join(sorted(builtin))} (see `edgekit recipes`); or give a path to a recipe file.")


def recipe_for_precision(precision: str) -> Recipe:
    """The recipe a plain `--precision` build means (fp32 / fp16 / bf16)."""
    return _builtin()[precision] if precision in _builtin() else get_recipe(precision)


def with_overrides(recipe: Recipe, overrides: dict[str, Any], origins: dict[str, str] | None = None) -> Recipe:
    """`{"PASS.KEY": value}` (CLI flags, highest precedence) applied and validated again.

    String values are read as YAML scalars, so "0.005" is a number and "null" is None.
    `origins` says how the user gave each key (`--max-drop`); a bad value is blamed on that, not on the
    recipe file.
    """
    if not overrides:
        return recipe
    origins = origins or {}
    raw_passes = [{"pass": p.kind, **_fields(p, "python")} for p in recipe.passes]
    origin = f"{recipe.source} with overrides"
    for key, value in overrides.items():
        given = origins.get(key, f"Recipe override {key!r}")
        kind, sep, field = key.partition(".")
        matches = [item for item in raw_passes if item["pass"] == kind]
        if not sep or not matches:
            kinds = ", ".join(sorted({p["pass"] for p in raw_passes})) or "none"
            raise EdgekitError(f"{given}: expected PASS.KEY where PASS is a pass of recipe "
                               f"{recipe.name!r} (its passes: {kinds}).")
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else value
            except yaml.YAMLError:
                pass
        for item in matches:
            item[field] = value
            _check_override(item, field, value, given)
    raw = {"name": recipe.name, "description": recipe.description, "precision": recipe.precision,
           "passes": raw_passes}
    return parse_recipe(raw, origin, base_dir=None)


def _check_override(item: dict[str, Any], field: str, value: Any, given: str) -> None:
    """One overridden field, checked alone so its error names the flag the user typed."""
    params_cls = PASS_PARAMS[item["pass"]]
    if field not in params_cls.model_fields or field == "pass_name":
        known = ", ".join(k for k in params_cls.model_fields if k != "pass_name")
        raise EdgekitError(f"{given}: the {item['pass']} pass has no `{field}`; it takes: {known}."
                           f"{suggest(field, list(params_cls.model_fields))}")
    try:
        params_cls.model_validate({k: v for k, v in item.items() if k != "pass"})
    except ValidationError as exc:
        mine = [e for e in exc.errors() if e["loc"][:1] == (field,)]
        if mine:
            message = mine[0]["msg"].replace("Input should be", "must be")
            raise EdgekitError(f"{given} {value!r}: {message[0].lower() + message[1:]}.") from None
    except EdgekitError as exc:
        raise EdgekitError(f"{given} {value!r}: {exc}") from None
