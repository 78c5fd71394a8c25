"""Training from annotated images: checked data, augmented patches, the fit loop."""

from ..config import TrainConfig
from ..jobs import TrainingCancelled
from .data import IGNORE_INDEX, PatchDataset, TrainingDataError, TrainingSet, prepare_training_set
from .loop import (
    TrainReport,
    fit,
    split_validation,
    train,
    train_iter,
    train_kfold,
)

__all__ = [
    "IGNORE_INDEX",
    "PatchDataset",
    "TrainConfig",
    "TrainReport",
    "TrainingCancelled",
    "TrainingDataError",
    "TrainingSet",
    "fit",
    "prepare_training_set",
    "split_validation",
    "train",
    "train_iter",
    "train_kfold",
]
