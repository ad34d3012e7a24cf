"""The shared small trainer (fit / evaluate) and its in-memory data loader."""

from edgekit.training.decoded import UNLABELED, DecodedImages, decode_images, subset, unlabeled
from edgekit.training.evaluation import evaluate, predict_logits, topk_accuracy
from edgekit.training.records import EpochRecord, TrainResult
from edgekit.training.trainer import fit

__all__ = ["fit", "evaluate", "predict_logits", "topk_accuracy", "EpochRecord", "TrainResult", "DecodedImages",
           "decode_images", "subset", "unlabeled", "UNLABELED"]
