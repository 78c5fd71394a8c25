"""Training from annotated images: checked data, augmented patches, the fit loop."""

from .data import IGNORE_INDEX, PatchDataset, TrainingDataError, TrainingSet, prepare_training_set
from .loop import (
    TrainConfig,
    TrainingCancelled,
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
