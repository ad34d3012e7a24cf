"""The shared small trainer (fit / evaluate) and its in-memory data loader."""

from edgekit.training.data import UNLABELED, DecodedImages, decode_images, subset, unlabeled
from edgekit.training.trainer import EpochRecord, TrainResult, evaluate, fit, predict_logits, topk_accuracy

__all__ = ["fit", "evaluate", "predict_logits", "topk_accuracy", "EpochRecord", "TrainResult", "DecodedImages",
           "decode_images", "subset", "unlabeled", "UNLABELED"]
