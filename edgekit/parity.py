"""Do two models compute the same function? Compare their logits on the same inputs."""

from __future__ import annotations

from typing import Any

import numpy as np


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    reference = reference.astype(np.float64)
    candidate = candidate.astype(np.float64)
    diff = np.abs(reference - candidate)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = (reference * candidate).sum(axis=1) / np.maximum(norms, 1e-30)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "min_cosine": float(cosine.min()),
        "top1_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean()),
        "reference_max_abs_logit": float(np.abs(reference).max()),
        # Scale-free: random-init networks can have logits in the hundreds.
        "max_rel_diff": float(diff.max() / max(1.0, np.abs(reference).max())),
    }


def within(metrics: dict[str, float], tolerance: Any) -> list[str]:
    """Failures of `metrics` against a target tolerance, as readable strings."""
    failures = []
    if metrics["max_rel_diff"] > tolerance.max_abs_diff:
        failures.append(f"max diff {metrics['max_rel_diff']:.3g} (relative to max(1, |logit|)) "
                        f"> {tolerance.max_abs_diff:g}")
    if metrics["min_cosine"] < tolerance.min_cosine:
        failures.append(f"cosine {metrics['min_cosine']:.6f} < {tolerance.min_cosine:g}")
    if metrics["top1_agreement"] < tolerance.min_top1_agreement:
        failures.append(f"top-1 agreement {metrics['top1_agreement']:.2f} < {tolerance.min_top1_agreement:g}")
    return failures
