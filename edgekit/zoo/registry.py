"""The one way to build a zoo model: a registry of tiny builders (timm-style).

Each architecture module registers its variants with `register_model`; variants
that share an architecture (``_ssld``, ``Fix_``) are entries with the same
builder and arguments, never copies of code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from edgekit.errors import EdgekitError, suggest


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    # The PaddleClas builder whose state dict this model loads (Fix_ and _ssld
    # variants reuse their base network).
    paddleclas_name: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: str, builder: Callable[..., Any],
                   paddleclas_name: str | None = None, **kwargs: Any) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = ModelEntry(name, family, builder, dict(kwargs), paddleclas_name or name)


def _ensure_loaded() -> None:
    # Importing the architecture modules fills the registry.
    from edgekit.zoo import architectures  # noqa: F401


def list_models(family: str | None = None) -> list[str]:
    _ensure_loaded()
    names = [n for n, e in _REGISTRY.items() if family is None or e.family.lower() == family.lower()]
    return names


def list_families() -> list[str]:
    _ensure_loaded()
    return sorted({e.family for e in _REGISTRY.values()})


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EdgekitError(
            f"Unknown model {name!r}: it is not in the edgekit zoo.{suggest(name, list(_REGISTRY))} "
            "Run `edgekit zoo list` to see every model."
        ) from None


def create_model(name: str, num_classes: int = 1000, **overrides: Any):
    """Build zoo model `name` as a paddle.nn.Layer with random initialisation.

    `overrides` replace the registered builder arguments (for example
    ``num_classes=10`` for a small dataset). Load weights with
    `edgekit.zoo.weights.load_weights`.
    """
    entry = get_entry(name)
    if num_classes < 1:
        raise EdgekitError(f"num_classes must be a positive integer, got {num_classes}.")
    kwargs = {**entry.kwargs, **overrides, "num_classes": num_classes}
    return entry.builder(**kwargs)
