"""The Preprocessing record: how an image becomes the model's input tensor.

It travels with the model: from the model card into the bundle manifest, from
which the runtime, validate, bench and apps read it. `edgekit.portable` applies
it (from its manifest dict) with numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input tensor (PaddleClas eval transforms)."""

    resize_short: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1.0 / 255.0
    interpolation: str = "bilinear"
    channel_order: str = "RGB"
    layout: str = "NCHW"

    def to_dict(self) -> dict[str, Any]:
        return {
            "resize_short": self.resize_short, "crop": self.crop, "mean": list(self.mean),
            "std": list(self.std), "scale": self.scale, "interpolation": self.interpolation,
            "channel_order": self.channel_order, "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        return cls(resize_short=int(d["resize_short"]), crop=int(d["crop"]), mean=tuple(d["mean"]),
                   std=tuple(d["std"]), scale=float(d.get("scale", 1 / 255)),
                   interpolation=d.get("interpolation", "bilinear"),
                   channel_order=d.get("channel_order", "RGB"), layout=d.get("layout", "NCHW"))
