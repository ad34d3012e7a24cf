"""The public Python API. The CLI is a thin layer over these functions."""

from __future__ import annotations

from edgekit.zoo import create_model, list_families, list_models
from edgekit.zoo.cards import ModelCard, get_card

__all__ = ["create_model", "list_models", "list_families", "get_card", "zoo_cards", "doctor", "build",
           "targets"]


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
          input_size: int | None = None, progress=None):
    """Export `model` for `target` into a verified bundle directory; returns a BuildResult.

    All inputs are checked before any work starts (EdgekitError on bad input).
    """
    from edgekit.build import plan_build, run_build

    plan = plan_build(model, target, precision, weights=weights, inference_model=inference_model, out=out,
                      force=force, num_classes=num_classes, labels=labels, options=options, input_size=input_size)
    return run_build(plan, progress=progress)


def targets():
    """Every target edgekit can build, with the precisions and options it supports."""
    from edgekit.targets import list_targets

    return list_targets()


def install_toolchain(name: str, force: bool = False, progress=None):
    """Provision an external toolchain into the user cache (today: "paddle-lite")."""
    from edgekit.errors import EdgekitError

    if name != "paddle-lite":
        raise EdgekitError(f"Unknown toolchain {name!r}; edgekit manages: paddle-lite.")
    from edgekit.toolchains import paddle_lite

    return paddle_lite.install(progress=progress, force=force)
