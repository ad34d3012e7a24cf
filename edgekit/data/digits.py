"""scikit-learn's handwritten digits as an image dataset in PaddleClas's list format.

The 1,797 8x8 scans ship inside scikit-learn, so a real labeled dataset is
available offline. Each scan is upscaled to `size` (bilinear), turned into a
3-channel PNG, and split into stratified train/val lists:

    root/images/<index>.png, root/train_list.txt, root/val_list.txt, root/labels.txt
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DIGIT_LABELS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class DigitsDataset:
    root: Path
    train_list: Path
    val_list: Path
    labels: Path
    size: int
    num_classes: int = 10


def make_digits_dataset(root: str | Path, size: int = 64, val_fraction: float = 0.25,
                        seed: int = 0) -> DigitsDataset:
    """Write the digits dataset under `root` (idempotent for the same arguments)."""
    from sklearn.datasets import load_digits

    root = Path(root)
    dataset = DigitsDataset(root, root / "train_list.txt", root / "val_list.txt", root / "labels.txt", size)
    stamp = root / ".edgekit-digits"
    signature = f"size={size} val_fraction={val_fraction} seed={seed}\n"
    if stamp.is_file() and stamp.read_text() == signature:
        return dataset
    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).astype(np.uint8)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in range(10):
        indices = np.flatnonzero(digits.target == label)
        rng.shuffle(indices)
        cut = int(round(len(indices) * val_fraction))
        val += [(i, label) for i in indices[:cut]]
        train += [(i, label) for i in indices[cut:]]
    for index in range(len(images)):
        big = cv2.resize(images[index], (size, size), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(root / "images" / f"{index:04d}.png"), cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    for path, rows in ((dataset.train_list, train), (dataset.val_list, val)):
        rows = sorted(rows)
        path.write_text("".join(f"images/{i:04d}.png {label}\n" for i, label in rows))
    dataset.labels.write_text("\n".join(DIGIT_LABELS) + "\n")
    stamp.write_text(signature)
    return dataset
