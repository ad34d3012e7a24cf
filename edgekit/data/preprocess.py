"""PaddleClas eval preprocessing for the library: `edgekit.portable`'s, with edgekit's records and errors.

decode (RGB) -> resize the short side -> center crop -> scale and normalise ->
CHW float32. The parameters always come from the model card or the bundle
manifest, never from flags a user could get wrong; the arithmetic lives in
`edgekit.portable`, the one copy that also runs on devices and in apps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit import portable
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing


def decode_image(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB uint8 HxWx3 array."""
    try:
        return portable.decode(path)
    except ValueError:
        raise EdgekitError(f"Image {path} could not be decoded (missing, empty or not an image file).") from None


def preprocess(image_rgb: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """One RGB uint8 image -> the model's CHW float32 input."""
    return portable.preprocess(image_rgb, pp.to_dict())


def preprocess_batch(images: list[np.ndarray], pp: Preprocessing) -> np.ndarray:
    return portable.preprocess_batch(images, pp.to_dict())
