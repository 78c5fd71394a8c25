"""Tile-by-tile prediction over images and volumes larger than memory."""

from ..core.errors import InputError
from ..jobs import PredictionCancelled
from .predict import predict
from .sink import OutputExistsError

__all__ = ["InputError", "OutputExistsError", "PredictionCancelled", "predict"]
