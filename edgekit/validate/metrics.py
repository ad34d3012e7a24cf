"""Accuracy and agreement from logits: pure numpy, the same whichever device produced them."""

from __future__ import annotations

import hashlib

import numpy as np


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per image: is the label among the k highest logits (ties broken by class index)?"""
    if len(logits) == 0:
        return np.zeros(0, bool)
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=1)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict[str, float | int | None]:
    """top-1 and top-5 as fractions (top-5 is top-min(5, classes)); None on an empty set."""
    n = len(labels)
    return {"images": n,
            "top1": float(topk_hits(logits, labels, 1).mean()) if n else None,
            "top5": float(topk_hits(logits, labels, 5).mean()) if n else None,
            "top5_k": min(5, logits.shape[1]) if logits.ndim == 2 else 5}


def agreement(candidate: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """How closely a candidate's logits follow the reference's, image by image."""
    if len(candidate) == 0:
        return {"top1_agreement": None, "cosine_mean": None, "cosine_min": None, "max_abs_diff": None}
    c = candidate.astype(np.float64)
    r = reference.astype(np.float64)
    norms = np.linalg.norm(c, axis=1) * np.linalg.norm(r, axis=1)
    cosine = (c * r).sum(axis=1) / np.maximum(norms, 1e-30)
    return {"top1_agreement": float((c.argmax(1) == r.argmax(1)).mean()),
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
            "max_abs_diff": float(np.abs(c - r).max())}


def logits_sha256(logits: np.ndarray) -> str:
    """A fingerprint of exactly these logits (little-endian float32, row order): equal runs, equal hashes."""
    return hashlib.sha256(np.ascontiguousarray(logits, dtype="<f4").tobytes()).hexdigest()
