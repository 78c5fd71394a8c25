"""Kaggle-style competitions: dataset layouts, metrics, fold/TTA ensembles, submissions, tuning.

The names below load their module on first use (PEP 562): reading a dataset layout
or scoring needs no torch; ensembles, submissions and tuning load it.
"""

from __future__ import annotations

import importlib

# public name -> module (inside this package) that defines it
_PUBLIC = {
    "DatasetSample": "datasets",
    "load_dataset": "datasets",
    "read_dsb2018": "datasets",
    "read_image": "datasets",
    "read_paired_folders": "datasets",
    "read_rle_csv": "datasets",
    "read_stack_pair": "datasets",
    "average_precision": "metrics",
    "dice_score": "metrics",
    "instance_errors": "metrics",
    "instance_iou": "metrics",
    "iou_score": "metrics",
    "mean_dice": "metrics",
    "to_instances": "metrics",
    "KINDS": "kinds",
    "image_kind": "kinds",
    "split_by_kind": "kinds",
    "ensemble_at_object_size": "ensemble",
    "ensemble_probabilities": "ensemble",
    "load_models": "ensemble",
    "postprocess": "ensemble",
    "list_images": "submission",
    "make_submission": "submission",
    "read_submission": "submission",
    "submission_rows": "submission",
    "write_csv": "submission",
    "METRICS": "tuning",
    "tune_postprocessing": "tuning",
}

__all__ = [
    "KINDS",
    "METRICS",
    "DatasetSample",
    "average_precision",
    "dice_score",
    "ensemble_at_object_size",
    "ensemble_probabilities",
    "image_kind",
    "instance_errors",
    "instance_iou",
    "iou_score",
    "list_images",
    "load_dataset",
    "load_models",
    "make_submission",
    "mean_dice",
    "postprocess",
    "read_dsb2018",
    "read_image",
    "read_paired_folders",
    "read_rle_csv",
    "read_stack_pair",
    "read_submission",
    "split_by_kind",
    "submission_rows",
    "to_instances",
    "tune_postprocessing",
    "write_csv",
]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
