"""Evaluation of a paddle classifier: eval-mode logits and top-1 / top-5 accuracy."""

from __future__ import annotations

import numpy as np

from edgekit.data.datasets import LabeledImages
from edgekit.preprocessing import Preprocessing
from edgekit.training.decoded import UNLABELED, DecodedImages, decode_images


def predict_logits(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits of an NCHW float32 array, batch by batch."""
    import paddle

    was_training = model.training
    model.eval()
    outputs = []
    with paddle.no_grad():
        for start in range(0, len(images), batch_size):
            outputs.append(model(paddle.to_tensor(images[start:start + batch_size])).numpy())
    if was_training:
        model.train()
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """top-1 and top-5 (top-k capped at the class count) over the labeled rows."""
    known = labels != UNLABELED
    logits, labels = logits[known], labels[known]
    if not len(labels):
        return {"top1": float("nan"), "top5": float("nan"), "n": 0}
    k = min(5, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return {"top1": float((top[:, 0] == labels).mean()), "top5": float((top == labels[:, None]).any(1).mean()),
            "n": int(len(labels))}


def evaluate(model, data: LabeledImages | DecodedImages, preprocessing: Preprocessing,
             batch_size: int = 256) -> dict[str, float]:
    """Top-1/top-5 of `model` on `data` (eval mode): {"top1", "top5", "n", "skipped"}."""
    decoded = decode_images(data, preprocessing, option="evaluation data")
    logits = predict_logits(model, decoded.images, batch_size)
    decoded.check_labels(logits.shape[1], allow_unlabeled=True, option="evaluation data")
    return {**topk_accuracy(logits, decoded.labels), "skipped": len(decoded.skipped)}
