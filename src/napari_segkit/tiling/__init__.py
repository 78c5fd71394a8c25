"""Tile-by-tile prediction over images and volumes larger than memory."""

from .engine import PredictionCancelled, resolve_device
from .predict import predict
from .sink import OutputExistsError
from .source import InputError

__all__ = ["InputError", "OutputExistsError", "PredictionCancelled", "predict", "resolve_device"]
