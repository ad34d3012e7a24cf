"""Small labeled image sets decoded and preprocessed once, held in memory.

Digits (1,797 images at 32-64 px) fit in a few MB as float32, so every epoch
reads arrays instead of decoding PNGs again. Images that fail to decode are
counted and skipped, never fatal: the count travels with the arrays so the
caller can report it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.data.datasets import LabeledImages
from edgekit.data.preprocess import decode_image, preprocess
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing

# Label of an image whose class is unknown (unlabeled distillation data).
UNLABELED = -1
# Decoding threads: a ResNet50 PTQ build's 756 images at 224 take 0.9-1.2 s on 2 Zen 3 cores, 1.8-2.1 s on one.
DECODE_THREADS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class DecodedImages:
    """A labeled image set as model inputs: `images` NCHW float32, `labels` int64."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    skipped: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labeled(self) -> np.ndarray:
        """Mask of the images whose label is known."""
        return self.labels != UNLABELED

    def check_labels(self, num_classes: int, *, allow_unlabeled: bool = False, option: str = "data") -> None:
        """Raise EdgekitError unless every label is a class id of a `num_classes`-way model."""
        ok = (self.labels >= 0) & (self.labels < num_classes)
        if allow_unlabeled:
            ok |= self.labels == UNLABELED
        if not ok.all():
            bad = np.flatnonzero(~ok)
            examples = ", ".join(str(int(self.labels[i])) for i in bad[:3])
            raise EdgekitError(f"{option} {self.source}: {len(bad)} of {len(self)} labels are outside "
                               f"0..{num_classes - 1} (the model has {num_classes} classes), e.g. {examples}. "
                               "Fix the list file's class ids or the model's number of classes.")


def decode_images(data: LabeledImages | DecodedImages, preprocessing: Preprocessing, *,
                  min_images: int = 1, option: str = "data") -> DecodedImages:
    """Decode and preprocess every image of `data` once; undecodable images are skipped and counted.

    Raises EdgekitError naming `option` and the dataset when fewer than
    `min_images` images decode (an empty or too-small set).
    """
    decoded = data if isinstance(data, DecodedImages) else _decode_all(data, preprocessing)
    if len(decoded) < min_images:
        detail = f" ({len(decoded.skipped)} could not be decoded, e.g. {decoded.skipped[0]})" if decoded.skipped else ""
        raise EdgekitError(f"{option} {decoded.source} has {len(decoded)} usable images{detail}; at least "
                           f"{min_images} are needed. Check the list file and the image paths it names.")
    return decoded


def _decode_all(data: LabeledImages, preprocessing: Preprocessing) -> DecodedImages:
    """Decoded on DECODE_THREADS threads (OpenCV's decode and resize release the GIL) straight into one array:
    no list of per-image copies to stack, so the peak memory is the set's size, not twice it."""
    from concurrent.futures import ThreadPoolExecutor

    crop = preprocessing.crop
    out = np.empty((len(data.samples), 3, crop, crop), np.float32)

    def fill(index: int) -> bool:
        try:
            out[index] = preprocess(decode_image(data.samples[index].path), preprocessing)
        except EdgekitError:
            return False
        return True

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        ok = np.fromiter(pool.map(fill, range(len(data.samples))), bool, len(data.samples))
    labels = np.asarray([s.label for s in data.samples], np.int64)
    skipped = tuple(s.path for s, good in zip(data.samples, ok) if not good)
    images = out if ok.all() else out[ok]
    return DecodedImages(images, labels[ok], data.source, skipped)


def subset(data: LabeledImages, per_class: int, seed: int = 0) -> LabeledImages:
    """The first `per_class` images of each class after a seeded shuffle (a stratified subset)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.samples))
    kept, counts = [], {}
    for index in order:
        sample = data.samples[index]
        if counts.get(sample.label, 0) < per_class:
            counts[sample.label] = counts.get(sample.label, 0) + 1
            kept.append(index)
    samples = tuple(data.samples[i] for i in sorted(kept))
    return LabeledImages(samples, f"{data.source} ({per_class} per class)", data.class_names)


def unlabeled(data: LabeledImages) -> LabeledImages:
    """The same images with their labels hidden (for label-free distillation)."""
    from edgekit.data.datasets import Sample

    return LabeledImages(tuple(Sample(s.path, UNLABELED) for s in data.samples), f"{data.source} (unlabeled)",
                         data.class_names)
