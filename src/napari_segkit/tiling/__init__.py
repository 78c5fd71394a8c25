"""Tile-by-tile prediction over images and volumes larger than memory.

Names load their module on first use (PEP 562): the option checks
(``tiling.checks``) need no torch, ``predict`` does.
"""

from __future__ import annotations

import importlib

from ..core.errors import InputError
from ..core.outputs import OutputExistsError
from ..jobs import PredictionCancelled

_LAZY = {"predict": "prediction", "predict_objects": "objects", "ObjectPrediction": "objects"}

__all__ = [
    "InputError",
    "ObjectPrediction",
    "OutputExistsError",
    "PredictionCancelled",
    "predict",
    "predict_objects",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
