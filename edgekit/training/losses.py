"""The trainer's losses: the `loss_fn` contract and the default, label-masked cross-entropy."""

from __future__ import annotations

from typing import Any, Callable

from edgekit.training.decoded import UNLABELED

# (logits, labels, images) -> scalar loss tensor. Labels may hold UNLABELED (-1) entries.
LossFn = Callable[[Any, Any, Any], Any]


def masked_cross_entropy(logits, labels):
    """Mean cross-entropy over the rows whose label is known (UNLABELED rows add nothing).

    paddle's `cross_entropy(ignore_index=...)` divides by the whole batch, ignored
    rows included, which would shrink the label term on partly labeled batches.
    """
    import paddle
    import paddle.nn.functional as F

    known = (labels != UNLABELED).astype("float32")
    per_row = F.cross_entropy(logits, labels, ignore_index=UNLABELED, reduction="none").reshape([-1])
    return (per_row * known).sum() / paddle.clip(known.sum(), min=1.0)


def cross_entropy_loss(logits, labels, images):
    """The default `loss_fn` (fit's `loss_fn=None`): masked cross-entropy on the labels."""
    return masked_cross_entropy(logits, labels)


def loss_name(loss_fn: LossFn | None) -> str:
    """How a loss is named in checkpoint settings; None and the default are "cross-entropy"."""
    # A loss may carry a `fingerprint` of its own settings (distillation: teacher, T, alpha).
    if loss_fn is None or loss_fn is cross_entropy_loss:
        return "cross-entropy"
    return str(getattr(loss_fn, "fingerprint", None) or getattr(loss_fn, "__qualname__", type(loss_fn).__name__))
