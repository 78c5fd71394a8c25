"""Choice lists the core validates against, kept free of numpy.

``napari_segkit.config`` re-exports them with the other choice lists, so the CLI and
the widgets offer exactly what the library accepts, and ``segkit --help`` needs no
numpy to list them.
"""

from __future__ import annotations

#: how overlapping tiles are combined (see :func:`napari_segkit.core.tiles.blend_weights`)
BLEND_MODES = ("gaussian", "linear", "centre")

#: input normalisation modes (see :func:`napari_segkit.core.volume.normalization_stats`)
NORMALIZATION_MODES = ("percentile", "meanstd", "fixed", "none")

#: the normalisation new models are trained with, and recorded in their model file
DEFAULT_NORMALIZATION = {"mode": "percentile", "low": 1.0, "high": 99.8}

#: how an image's channels become the model's (see :class:`napari_segkit.core.volume.Volume`):
#: "as-is" (counts must match), "gray" (RGB(A) -> luminance), "rgb" (gray -> 3 copies,
#: RGBA -> RGB)
COLOR_MODES = ("as-is", "gray", "rgb")

#: what a label image given to ``unet_weight_map`` holds ("auto": 0/1 means semantic)
LABEL_KINDS = ("auto", "instances", "semantic")

#: class-balance terms of ``unet_weight_map`` ("balanced" is inverse frequency)
BALANCE_METHODS = ("balanced", "median")

__all__ = [
    "BALANCE_METHODS",
    "BLEND_MODES",
    "COLOR_MODES",
    "DEFAULT_NORMALIZATION",
    "LABEL_KINDS",
    "NORMALIZATION_MODES",
]
