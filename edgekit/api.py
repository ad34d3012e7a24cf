"""The public Python API. The CLI is a thin layer over these functions."""

from __future__ import annotations

from edgekit.zoo import create_model, list_families, list_models
from edgekit.zoo.cards import ModelCard, get_card

__all__ = ["create_model", "list_models", "list_families", "get_card", "zoo_cards", "doctor"]


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
