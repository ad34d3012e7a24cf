"""What apps import: load a bundle, classify images with its own preprocessing.

    from edgekit.runtime import load
    classifier = load("dist/ResNet50_vd-onnx-fp32")
    for pred in classifier.predict(["cat.jpg"])[0]:
        print(pred.class_id, pred.score, pred.label)

Needs numpy, OpenCV and the one runtime the bundle uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit import portable
from edgekit.bundle import read_manifest, verify_files
from edgekit.data.preprocess import decode_image
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing
from edgekit.targets import adapter_of
from edgekit.userfiles import read_lines


@dataclass(frozen=True)
class Prediction:
    class_id: int
    score: float
    label: str | None


softmax = portable.softmax


class Classifier:
    def __init__(self, root: Path, manifest: dict, backend):
        self.root = root
        self.manifest = manifest
        self.backend = backend
        self.preprocessing = Preprocessing.from_dict(manifest["preprocessing"])
        self.output_kind = manifest.get("output", {}).get("kind", "logits")
        labels = root / "labels.txt"
        self.labels = read_lines(labels, "one class name per line", "Bundle labels") if labels.is_file() else None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for an already preprocessed float32 NCHW batch."""
        return self.backend(np.ascontiguousarray(batch, dtype=np.float32))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for a preprocessed batch: the softmax of logits, or, for a network that
        ends in PaddleClas's softmax head (manifest output.kind), its output as it is."""
        return portable.probabilities(self.run(batch), self.output_kind)

    def prepare(self, images: Sequence[str | Path | np.ndarray]) -> np.ndarray:
        decoded = [decode_image(i) if isinstance(i, (str, Path)) else i for i in images]
        return portable.preprocess_batch(decoded, self.manifest["preprocessing"])

    def predict(self, images: Sequence[str | Path | np.ndarray], topk: int = 5) -> list[list[Prediction]]:
        """Top-k per image; images are file paths or RGB uint8 arrays."""
        probs = self.probabilities(self.prepare(images))
        results = []
        for row in probs:
            top = np.argsort(-row)[:topk]
            results.append([Prediction(int(c), float(row[c]), self.labels[c] if self.labels else None)
                            for c in top])
        return results


def load(bundle_dir: str | Path, verify: bool = True, **backend_options) -> Classifier:
    """Open a bundle: check its files against the manifest, pick the backend it names."""
    root = Path(bundle_dir)
    manifest = read_manifest(root)
    if verify:
        verify_files(root, manifest)
    model_file = root / manifest["artifact"]["model_file"]
    if not model_file.is_file():
        raise EdgekitError(f"Bundle {root} names model file {model_file.name}, which is missing.")
    backend = adapter_of(manifest).open_bundle(root, manifest, **backend_options)
    return Classifier(root, manifest, backend)


__all__ = ["Classifier", "Prediction", "load", "softmax"]
