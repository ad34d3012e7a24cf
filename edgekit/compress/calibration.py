"""The labeled images behind compression (`--calib DATA`), split once.

A seeded shuffle of the set is cut into a held-out part (INT8 vs FP32 top-1,
INT8 parity) and the rest (calibration, fine-tuning, distillation), so the
accuracy a build reports is never measured on images it calibrated or
trained on. Images that fail to decode are skipped and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgekit.data.datasets import LabeledImages, open_dataset
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing

# Fewer images than this cannot estimate activation ranges.
MIN_CALIBRATION_IMAGES = 16
# More unreadable images than this share means a wrong root or a broken copy, not a few bad files: stop.
MAX_SKIPPED_SHARE = 0.05
# How many skipped files the manifest names (the count is always exact).
SKIPPED_LISTED = 20


@dataclass(frozen=True)
class SplitPlan:
    """How many images go where; decided at plan time from the list alone (nothing decoded)."""

    total: int
    holdout: int
    calibration: int
    # Passes that train use every image beyond the held-out part; otherwise only holdout + calibration are
    # decoded (a PTQ build given ImageNet's 50,000-image val list decodes 756 of them, not 30 GB).
    trains: bool = True

    @property
    def needed(self) -> int:
        return self.total if self.trains else min(self.total, self.holdout + self.calibration)


def plan_split(data: LabeledImages, *, holdout_images: int, calibration_images: int,
               max_drop: float | None, trains: bool = True, option: str = "--calib") -> SplitPlan:
    """Check `data` is big enough for the recipe; raises EdgekitError naming `option` and the file."""
    total = len(data)
    # Held-out and calibration images share the set; neither takes more than half of a small one.
    holdout = min(holdout_images, total // 2)
    calibration = min(calibration_images, total - holdout)
    if calibration < MIN_CALIBRATION_IMAGES:
        raise EdgekitError(f"{option} {data.source} has {total} images: too few to calibrate INT8 and hold some "
                           f"out to measure its accuracy. Give at least {2 * MIN_CALIBRATION_IMAGES} labeled "
                           f"images (better: a few hundred from the training distribution).")
    if max_drop:
        # Top-1 on n images moves in steps of 1/n: the budget must be coarser than that step.
        needed = math.ceil(1.0 / max_drop)
        if holdout < needed:
            raise EdgekitError(f"{option} {data.source} leaves {holdout} held-out images, which measure top-1 in "
                               f"steps of {1 / max(holdout, 1):.4f}; max_drop {max_drop:g} needs at least "
                               f"{needed} held-out images ({2 * needed} images in {option}, or raise "
                               "holdout_images in the recipe), or a larger max_drop.")
    return SplitPlan(total, holdout, calibration, trains)


@dataclass(frozen=True)
class CompressionData:
    """Decoded, preprocessed arrays (NCHW float32) and their labels."""

    calibration: np.ndarray
    train_images: np.ndarray
    train_labels: np.ndarray
    holdout_images: np.ndarray
    holdout_labels: np.ndarray
    source: str
    skipped: int
    skipped_examples: tuple[str, ...] = ()

    def to_manifest(self) -> dict:
        record = {"source": self.source, "calibration_images": int(len(self.calibration)),
                  "train_images": int(len(self.train_images)), "holdout_images": int(len(self.holdout_images)),
                  "undecodable_images_skipped": self.skipped}
        if self.skipped:
            record["undecodable_images"] = list(self.skipped_examples)
        return record


def load_compression_data(data: LabeledImages, split: SplitPlan, preprocessing: Preprocessing, num_classes: int,
                          *, seed: int = 0, option: str = "--calib") -> CompressionData:
    """Decode the split's images; undecodable ones are skipped and counted, and replaced by the next images of
    the shuffle where the split does not use them all (else the split shrinks accordingly)."""
    data.check_labels(num_classes)
    order = np.random.default_rng(seed).permutation(len(data))
    shuffled = LabeledImages(tuple(data.samples[i] for i in order), data.source, data.class_names)
    decoded, attempted = _decode_first(shuffled, split.needed, preprocessing, option)
    _check_skipped(decoded.skipped, attempted, data.source, option)
    kept_fraction = min(1.0, len(decoded) / max(split.needed, 1))
    holdout = int(round(split.holdout * kept_fraction))
    rest = len(decoded) - holdout
    if rest < MIN_CALIBRATION_IMAGES:
        raise EdgekitError(f"{option} {data.source}: only {len(decoded)} of {len(data)} images could be decoded "
                           f"({len(decoded.skipped)} failed, e.g. {decoded.skipped[0] if decoded.skipped else '-'}); "
                           f"at least {MIN_CALIBRATION_IMAGES} are needed to calibrate beside {holdout} held out.")
    images, labels = decoded.images, decoded.labels
    calibration = images[holdout:holdout + min(split.calibration, rest)]
    return CompressionData(calibration=calibration, train_images=images[holdout:], train_labels=labels[holdout:],
                           holdout_images=images[:holdout], holdout_labels=labels[:holdout], source=data.source,
                           skipped=len(decoded.skipped),
                           skipped_examples=tuple(str(p) for p in decoded.skipped[:SKIPPED_LISTED]))


def _decode_first(shuffled: LabeledImages, needed: int, preprocessing: Preprocessing, option: str):
    """(the first `needed` decodable images of `shuffled`, how many were tried)."""
    from edgekit.training.decoded import DecodedImages, decode_images

    parts, skipped, tried, kept = [], [], 0, 0
    while not parts or (tried < len(shuffled) and kept < needed):
        chunk = shuffled.samples[tried:tried + needed - kept]
        tried += len(chunk)
        part = decode_images(LabeledImages(chunk, shuffled.source, shuffled.class_names), preprocessing,
                             min_images=0, option=option)
        parts.append(part)
        skipped.extend(part.skipped)
        kept += len(part)
    images = parts[0].images if len(parts) == 1 else np.concatenate([p.images for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    # Through decode_images again only for its "too few usable images" error.
    return decode_images(DecodedImages(images, labels, shuffled.source, tuple(skipped)), preprocessing,
                         option=option), tried


def _check_skipped(skipped, total: int, source: str, option: str) -> None:
    if len(skipped) <= MAX_SKIPPED_SHARE * total:
        return
    shown = ", ".join(str(p) for p in skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    raise EdgekitError(f"{option} {source}: {len(skipped)} of {total} images could not be read or decoded "
                       f"({shown}); more than {MAX_SKIPPED_SHARE:.0%} unreadable usually means the list's paths "
                       "are relative to another folder or the copy is incomplete. Fix the list (paths are "
                       "relative to the list file's folder) or remove the broken files.")


def open_calibration_set(path, option: str = "--calib") -> LabeledImages:
    """A PaddleClas list file or a folder of class folders, with messages naming `option`."""
    return open_dataset(path, option=option)
