"""The seed pages' TensorRT latency tables, from the model cards: what `--gpu` compares against.

Missing cells stay None (shown as missing), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from edgekit.errors import EdgekitError, suggest

REFERENCE_BATCHES = (1, 4, 8)


@dataclass(frozen=True)
class GpuProfile:
    """A GPU the seed pages published figures for, and its tables per precision."""

    name: str  # what --gpu takes
    gpu: str  # what nvidia-smi calls it, e.g. "Tesla T4"
    tables: dict[str, str]  # precision -> card latency profile

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(self.tables)


GPU_PROFILES = {
    "v100": GpuProfile("v100", "V100", {"fp32": "v100_trt_fp32"}),
    "t4": GpuProfile("t4", "T4", {"fp16": "t4_trt_fp16", "fp32": "t4_trt_fp32"}),
}


def gpu_profile(name: str) -> GpuProfile:
    try:
        return GPU_PROFILES[name.lower()]
    except KeyError:
        raise EdgekitError(f"--gpu {name!r}: the seed pages publish TensorRT tables for "
                           f"{', '.join(GPU_PROFILES)} only.{suggest(name, list(GPU_PROFILES))}") from None


def reference_ms(model: str, gpu: str, precision: str, batch: int) -> float | None:
    """The seed's published latency for one cell, or None where the page has none."""
    from edgekit.zoo.cards import get_card

    table = gpu_profile(gpu).tables.get(precision)
    if table is None:
        return None
    return get_card(model).latency_ms.get(table, {}).get(batch)


def reference_rows(models: Sequence[str] | None = None, gpu: str | None = None) -> list[dict]:
    """One row per (model, GPU profile, precision): batch 1/4/8 latency in ms, None where missing."""
    from edgekit.zoo import list_models
    from edgekit.zoo.cards import get_card

    profiles = [gpu_profile(gpu)] if gpu else list(GPU_PROFILES.values())
    rows = []
    for model in models or list_models():
        card = get_card(model)
        for profile in profiles:
            for precision, table in profile.tables.items():
                cells = card.latency_ms.get(table, {})
                rows.append({"model": model, "gpu": profile.name, "precision": precision, "profile": table,
                             "crop_size": card.crop_size,
                             **{f"batch{b}_ms": cells.get(b) for b in REFERENCE_BATCHES}})
    return rows
