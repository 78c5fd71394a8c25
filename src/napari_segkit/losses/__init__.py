"""Losses for semantic segmentation and the table that names them.

The table (``LOSSES``, :func:`get_loss`, :func:`register_loss`) imports no torch;
the loss modules (:class:`SoftDiceLoss`, :class:`WeightedCrossEntropyLoss`,
:class:`DiceCELoss`, :class:`LovaszLoss`, :class:`LovaszCELoss`) load torch when first used.
"""

from __future__ import annotations

import importlib

from .table import LOSSES, LossSpec, get_loss, get_loss_spec, loss_names, register_loss

_MODULE_CLASSES = (
    "DiceCELoss",
    "LovaszCELoss",
    "LovaszLoss",
    "SoftDiceLoss",
    "WeightedCrossEntropyLoss",
)

__all__ = [
    "LOSSES",
    "DiceCELoss",
    "LossSpec",
    "LovaszCELoss",
    "LovaszLoss",
    "SoftDiceLoss",
    "WeightedCrossEntropyLoss",
    "get_loss",
    "get_loss_spec",
    "loss_names",
    "register_loss",
]


def __getattr__(name: str):
    if name in _MODULE_CLASSES:
        return getattr(importlib.import_module(".modules", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
