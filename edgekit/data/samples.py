"""Real photographs that ship inside a package, for parity checks at build time.

scikit-image carries a handful of public-domain sample photos; nothing is
downloaded. They are natural images, so top-1 agreement on them means more
than on random noise.
"""

from __future__ import annotations

import numpy as np

# Colour photos bundled in the scikit-image wheel (others need a download).
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "colorwheel",
                 "immunohistochemistry")


def sample_photos(count: int = 8) -> dict[str, np.ndarray]:
    """{name: RGB uint8 image} for up to `count` of scikit-image's sample photos."""
    from skimage import data

    photos = {}
    for name in SAMPLE_PHOTOS[:count]:
        image = np.asarray(getattr(data, name)())
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        photos[name] = np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)
    return photos
