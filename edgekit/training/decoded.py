"""Small labeled image sets decoded and preprocessed once, held in memory.

Digits (1,797 images at 32-64 px) fit in a few MB as float32, so every epoch
reads arrays instead of decoding PNGs again. Images that fail to decode are
counted and skipped, never fatal: the count travels with the arrays so the
caller can report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.data.datasets import LabeledImages
from edgekit.data.preprocess import decode_image, preprocess
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing

# Label of an image whose class is unknown (unlabeled distillation data).
UNLABELED = -1


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
    if isinstance(data, DecodedImages):
        decoded = data
    else:
        arrays, labels, skipped = [], [], []
        for sample in data.samples:
            try:
                image = decode_image(sample.path)
            except EdgekitError:
                skipped.append(sample.path)
                continue
            arrays.append(preprocess(image, preprocessing))
            labels.append(sample.label)
        crop = preprocessing.crop
        images = np.stack(arrays) if arrays else np.zeros((0, 3, crop, crop), np.float32)
        decoded = DecodedImages(images, np.asarray(labels, np.int64), data.source, tuple(skipped))
    if len(decoded) < min_images:
        detail = f" ({len(decoded.skipped)} could not be decoded, e.g. {decoded.skipped[0]})" if decoded.skipped else ""
        raise EdgekitError(f"{option} {decoded.source} has {len(decoded)} usable images{detail}; at least "
                           f"{min_images} are needed. Check the list file and the image paths it names.")
    return decoded


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
