"""Training from annotated images (data pipeline; the fit loop follows in issue 6)."""

from .data import IGNORE_INDEX, PatchDataset, TrainingDataError, TrainingSet, prepare_training_set

__all__ = ["IGNORE_INDEX", "PatchDataset", "TrainingDataError", "TrainingSet", "prepare_training_set"]
