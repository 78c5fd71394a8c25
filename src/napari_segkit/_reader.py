"""napari reader contribution: a thin shell over :func:`napari_segkit.core.io.read_stack`.

Returns lazy layers (dask) for large or chunked data, with the pixel size as
``scale`` and precomputed ``contrast_limits`` so napari never scans a whole
volume to set them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core.errors import StackReadError
from .core.io import READABLE_SUFFIXES, SLICE_SUFFIXES, Stack, _looks_like_zarr, read_stack


def get_reader(path):
    """Return a reader function for `path`, or None when this plugin cannot read it."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return read_rle_csv_layers if p.is_file() else None
    if p.is_dir():
        return read_layers if _folder_is_readable(p) else None
    return read_layers if p.name.lower().endswith(READABLE_SUFFIXES) else None


def _folder_is_readable(p: Path) -> bool:
    if p.name.lower().endswith(".zarr") or _looks_like_zarr(p):
        return True
    for child in p.iterdir():
        name = child.name.lower()
        if child.is_file() and (
            name.endswith(SLICE_SUFFIXES + (".dcm", ".dicom")) or "." not in name
        ):
            return True
    return False


def read_layers(path) -> list[tuple]:
    """Read `path` into napari layer data tuples ``(data, kwargs, layer_type)``."""
    if isinstance(path, list):
        path = path[0]
    stack = read_stack(path)
    return [stack_to_layer(stack)]


def stack_to_layer(stack: Stack) -> tuple:
    """One napari layer tuple for a :class:`Stack` (labels when integer and named so)."""
    name = Path(stack.path).name.split(".")[0] or "image"
    data = stack.data
    kwargs = {"name": name, "metadata": {"segkit_path": stack.path, **stack.metadata}}
    is_labels = np.dtype(data.dtype).kind in "iu" and any(
        w in name.lower() for w in ("label", "mask", "annot", "seg")
    )
    if is_labels:
        kwargs["scale"] = stack.spatial_scale
        return data, kwargs, "labels"
    if stack.axes.endswith("C"):
        n_channels = data.shape[-1]
        if n_channels in (3, 4) and np.dtype(data.dtype) == np.uint8:
            kwargs.update(rgb=True, scale=stack.spatial_scale)
            return data, kwargs, "image"
        kwargs.update(channel_axis=data.ndim - 1, scale=stack.spatial_scale)
        kwargs["name"] = [f"{name} [ch{i}]" for i in range(n_channels)]
        return data, kwargs, "image"
    kwargs["scale"] = stack.scale
    kwargs["contrast_limits"] = sample_contrast_limits(data)
    return data, kwargs, "image"


def sample_contrast_limits(data) -> tuple[float, float]:
    """Contrast limits from the middle plane only (reads at most one slice of a lazy volume)."""
    plane = data[data.shape[0] // 2] if data.ndim == 3 else data
    plane = np.asarray(plane)
    lo, hi = (float(v) for v in np.percentile(plane, (0.5, 99.8))) if plane.size else (0.0, 1.0)
    if not np.isfinite([lo, hi]).all():
        lo, hi = 0.0, 1.0
    return (lo, hi if hi > lo else lo + 1.0)


__all__ = ["StackReadError", "get_reader", "read_layers", "stack_to_layer"]


#: a CSV with more images than this opens its first ones only (with a warning)
MAX_CSV_IMAGES = 24


def read_rle_csv_layers(path) -> list[tuple]:
    """A Kaggle RLE CSV with its image folder: one Image + one Labels layer per image."""
    import warnings

    from .core.datasets import read_rle_csv

    if isinstance(path, list):
        path = path[0]
    samples = read_rle_csv(path)
    if len(samples) > MAX_CSV_IMAGES:
        warnings.warn(
            f"'{path}' lists {len(samples)} images; opening the first {MAX_CSV_IMAGES} "
            "(use napari_segkit.core.datasets.read_rle_csv for all)",
            stacklevel=2,
        )
    layers = []
    for sample in samples[:MAX_CSV_IMAGES]:
        name = sample.id[:12]
        rgb = sample.image.ndim == 3
        layers.append((sample.image, {"name": name, "rgb": rgb}, "image"))
        labels = sample.instances if sample.instances is not None else sample.labels
        layers.append((labels, {"name": f"{name} masks"}, "labels"))
    return layers
