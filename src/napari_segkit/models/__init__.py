"""Segmentation models: one registry, the architectures SMP lacks, and the model file.

Names load their module on first use (PEP 562): ``read_model_info`` and the model
description (``models.info``) need no torch, so the CLI and the widgets check a model
file before torch loads; ``build_model``, ``load_model`` and the rest load torch.

>>> from napari_segkit.models import build_model, list_architectures
>>> [a["name"] for a in list_architectures()][:3]
['deeplabv3', 'deeplabv3plus', 'fcdensenet103']
"""

from __future__ import annotations

import importlib

from .info import ModelFileError, ModelInfo, read_model_info

# public name -> module (inside this package) that defines it
_LAZY = {
    "ModelFile": "model_file",
    "load_model": "model_file",
    "save_model": "model_file",
    "record_training": "model_file",
    "Architecture": "registry",
    "build_model": "registry",
    "get_architecture": "registry",
    "list_architectures": "registry",
    "EncoderWeightsError": "smp_models",
    "ExportError": "export",
    "PackageError": "bioimageio",
    "SegmentationModel": "wrapper",
}

__all__ = [
    "Architecture",
    "EncoderWeightsError",
    "ExportError",
    "ModelFile",
    "ModelFileError",
    "ModelInfo",
    "PackageError",
    "SegmentationModel",
    "build_model",
    "get_architecture",
    "list_architectures",
    "load_model",
    "read_model_info",
    "record_training",
    "save_model",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
