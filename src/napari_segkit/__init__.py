"""napari-segkit: CNN semantic segmentation for napari, Python and the command line.

The public functions are imported lazily (PEP 562), so ``import napari_segkit``
pulls in neither torch nor napari; each loads when first used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "read_stack": "napari_segkit.core.io",
    "write_stack": "napari_segkit.core.io",
    "write_labels": "napari_segkit.core.io",
    "Stack": "napari_segkit.core.io",
    "make_nuclei": "napari_segkit.core.synthetic",
    "unet_weight_map": "napari_segkit.core.weight_maps",
    "compute_class_weights": "napari_segkit.core.weight_maps",
    "confusion_matrix": "napari_segkit.core.metrics",
    "segmentation_report": "napari_segkit.core.metrics",
    "adapted_rand_error": "napari_segkit.core.metrics",
    "get_loss": "napari_segkit.losses",
    "predict": "napari_segkit.tiling",
    "predict_objects": "napari_segkit.tiling",
    "train": "napari_segkit.training",
    "train_iter": "napari_segkit.training",
    "Cancelled": "napari_segkit.jobs",
    "PredictionCancelled": "napari_segkit.jobs",
    "TrainingCancelled": "napari_segkit.jobs",
    "build_model": "napari_segkit.models",
    "list_architectures": "napari_segkit.models",
    "save_model": "napari_segkit.models",
    "load_model": "napari_segkit.models",
}

# written out (not derived from _PUBLIC) so static tools and docs can read it;
# tests/test_layout.py checks that the two agree
__all__ = [
    "Cancelled",
    "PredictionCancelled",
    "Stack",
    "TrainingCancelled",
    "__version__",
    "adapted_rand_error",
    "build_model",
    "compute_class_weights",
    "confusion_matrix",
    "get_loss",
    "list_architectures",
    "load_model",
    "make_nuclei",
    "predict",
    "predict_objects",
    "read_stack",
    "save_model",
    "segmentation_report",
    "train",
    "train_iter",
    "unet_weight_map",
    "write_labels",
    "write_stack",
]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'napari_segkit' has no attribute {name!r}")


def __dir__():
    return __all__
