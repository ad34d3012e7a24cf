"""Targets: what each runtime needs, as data files looked up by name.

A target file (targets/*.yaml, shipped as package data) names the artifact
format, the runtime, the precisions it supports, its options with defaults
and choices, and the parity tolerance per precision. Options are checked
before any work starts.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekit.errors import EdgekitError, suggest


class OptionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Any
    choices: list[Any] | None = None
    help: str = ""


class Tolerance(BaseModel):
    """Bounds on an artifact's outputs against its reference (edgekit.build.parity checks every one)."""

    model_config = ConfigDict(extra="forbid")
    # Largest |difference| of any logit, divided by max(1, largest |reference logit|): scale-free.
    max_rel_diff: float
    # Smallest cosine similarity of one image's output vectors.
    min_cosine: float
    # Share of images whose top-1 class is the same.
    min_top1_agreement: float


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    format: str
    runtime: Literal["onnxruntime", "openvino", "paddle-inference", "paddle-lite"]
    precisions: list[Literal["fp32", "fp16", "bf16", "int8"]]
    runs_on_host: bool
    app: Literal["python", "cpp"]
    options: dict[str, OptionSpec] = Field(default_factory=dict)
    parity: dict[str, Tolerance] = Field(default_factory=dict)

    def resolve_options(self, given: dict[str, str]) -> dict[str, Any]:
        """Defaults overlaid with user options, each checked against the target's spec."""
        resolved = {key: spec.default for key, spec in self.options.items()}
        for key, raw in given.items():
            if key not in self.options:
                known = ", ".join(self.options) or "none"
                raise EdgekitError(f"--option {key!r}: target {self.name!r} has no such option (its options: "
                                   f"{known}; see `edgekit targets`).{suggest(key, list(self.options))}")
            spec = self.options[key]
            try:
                value = type(spec.default)(raw) if not isinstance(raw, type(spec.default)) else raw
            except ValueError:  # e.g. opset=abc: not a number at all
                value = None
            if value is None or (spec.choices is not None and value not in spec.choices):
                expected = (f"one of {', '.join(map(str, spec.choices))}" if spec.choices is not None
                            else f"a {type(spec.default).__name__}")
                raise EdgekitError(f"--option {key}={raw!r} is not valid for target {self.name!r}: "
                                   f"expected {expected}.")
            resolved[key] = value
        return resolved

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            others = sorted(name for name, t in _load_all().items() if precision in t.precisions)
            elsewhere = f" ({precision} is built for: {', '.join(others)})" if others else ""
            raise EdgekitError(f"Target {self.name!r} does not support precision {precision!r}: "
                               f"it supports {', '.join(self.precisions)}{elsewhere}.")


@lru_cache(maxsize=None)
def _load_all() -> dict[str, Target]:
    targets = {}
    for entry in resources.files("edgekit._targets").iterdir():
        if not entry.name.endswith(".yaml"):
            continue
        raw = yaml.safe_load(entry.read_text(encoding="utf-8"))
        try:
            target = Target.model_validate(raw)
        except ValidationError as exc:
            raise EdgekitError(f"Target file targets/{entry.name} is invalid: {exc}") from None
        targets[target.name] = target
    return targets


def list_targets() -> list[Target]:
    return sorted(_load_all().values(), key=lambda t: t.name)


def get_target(name: str) -> Target:
    targets = _load_all()
    if name not in targets:
        raise EdgekitError(f"Unknown target {name!r}.{suggest(name, list(targets))} "
                           f"Available targets: {', '.join(sorted(targets))} (see `edgekit targets`).")
    return targets[name]
