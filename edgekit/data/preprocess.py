"""PaddleClas eval preprocessing with OpenCV and numpy only.

decode (RGB) -> resize the short side (bilinear) -> center crop -> scale and
normalise -> CHW float32. The parameters always come from the model card or
the bundle manifest, never from flags a user could get wrong.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing

_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                  "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}


def decode_image(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB uint8 HxWx3 array."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise EdgekitError(f"Image {path} could not be decoded (missing, empty or not an image file).")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def preprocess(image_rgb: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """One RGB uint8 image -> the model's CHW float32 input."""
    h, w = image_rgb.shape[:2]
    ratio = pp.resize_short / min(h, w)
    # PaddleClas rounds the resized sides to the nearest integer.
    size = (int(round(w * ratio)), int(round(h * ratio)))
    image = cv2.resize(image_rgb, size, interpolation=_INTERPOLATION[pp.interpolation])
    h, w = image.shape[:2]
    top, left = (h - pp.crop) // 2, (w - pp.crop) // 2
    image = image[top:top + pp.crop, left:left + pp.crop]
    if pp.channel_order == "BGR":
        image = image[:, :, ::-1]
    mean = np.asarray(pp.mean, np.float32)
    std = np.asarray(pp.std, np.float32)
    out = (image.astype(np.float32) * np.float32(pp.scale) - mean) / std
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def preprocess_batch(images: list[np.ndarray], pp: Preprocessing) -> np.ndarray:
    return np.stack([preprocess(img, pp) for img in images])
