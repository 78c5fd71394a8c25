"""Segmentation models: one registry, the architectures SMP lacks, and the model file.

>>> from napari_segkit.models import build_model, list_architectures
>>> [a["name"] for a in list_architectures()][:3]
['deeplabv3', 'deeplabv3plus', 'fcdensenet103']
"""

from .model_file import (
    ModelFile,
    ModelFileError,
    ModelInfo,
    load_model,
    read_model_info,
    save_model,
)
from .registry import Architecture, build_model, get_architecture, list_architectures
from .smp_models import EncoderWeightsError
from .wrapper import SegmentationModel

__all__ = [
    "Architecture",
    "EncoderWeightsError",
    "ModelFile",
    "ModelFileError",
    "ModelInfo",
    "SegmentationModel",
    "build_model",
    "get_architecture",
    "list_architectures",
    "load_model",
    "read_model_info",
    "save_model",
]
