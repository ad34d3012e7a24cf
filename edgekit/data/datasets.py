"""Labeled image sets as PaddleClas reads them.

Two layouts are accepted:
- a PaddleClas list file: lines `relative/path label`, paths relative to the
  list file's folder (or an explicit root); ImageNet's val_list.txt works as is;
- a folder of class folders: `root/<class name>/*.jpg`, classes sorted by name.

Reading the list never decodes images; decoding happens where the images are
used, so a corrupt file is counted and reported there instead of crashing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.userfiles import describe, read_lines

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass(frozen=True)
class LabeledImages:
    samples: tuple[Sample, ...]
    source: str
    class_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def limit(self, count: int | None) -> "LabeledImages":
        return self if count is None else LabeledImages(self.samples[:count], self.source, self.class_names)

    def check_labels(self, num_classes: int) -> None:
        bad = [s for s in self.samples if not 0 <= s.label < num_classes]
        if bad:
            first = ", ".join(f"{s.path.name}={s.label}" for s in bad[:3])
            raise EdgekitError(f"{self.source}: {len(bad)} labels are outside 0..{num_classes - 1} "
                               f"(the model has {num_classes} classes), e.g. {first}.")


# ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
_CLASS_ID = re.compile(r"-?[0-9]+")
LIST_LINES = "a PaddleClas list file (`relative/path label` lines) or a folder of class folders"


def read_list_file(list_file: str | Path, root: str | Path | None = None, option: str | None = None) -> LabeledImages:
    list_file = Path(list_file)
    name = describe(list_file, option)
    base = Path(root) if root else list_file.parent
    samples = []
    for number, line in enumerate(read_lines(list_file, LIST_LINES, option), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not _CLASS_ID.fullmatch(parts[1]):
            raise EdgekitError(f"{name}, line {number}: {line[:200]!r} is not `relative/path label` "
                               "(a PaddleClas list line: image path, whitespace, integer class id).")
        samples.append(Sample(base / parts[0], int(parts[1])))
    if not samples:
        raise EdgekitError(f"{name} has no samples (expected `relative/path label` lines).")
    return LabeledImages(tuple(samples), str(list_file))


def read_class_folders(root: str | Path, option: str | None = None) -> LabeledImages:
    root = Path(root)
    try:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        samples = [Sample(path, label) for label, name in enumerate(classes)
                   for path in sorted((root / name).iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]
    except OSError as exc:
        raise EdgekitError(f"{describe(root, option)} cannot be listed ({exc.strerror or exc}).") from None
    if not samples:
        raise EdgekitError(f"{describe(root, option)} has no class folders with images (expected "
                           "root/<class>/<image>).")
    return LabeledImages(tuple(samples), str(root), tuple(classes))


def open_dataset(data: str | Path, root: str | Path | None = None, option: str | None = None) -> LabeledImages:
    """A list file or a folder of class folders, whichever `data` is; messages name `option`."""
    data = Path(data)
    if data.is_dir():
        return read_class_folders(data, option)
    return read_list_file(data, root, option)