"""napari reader contribution: a thin shell over :func:`napari_segkit.core.io.read_stack`.

Returns lazy layers (dask) for large or chunked data, with the pixel size as
``scale`` and precomputed ``contrast_limits`` so napari never scans a whole
volume to set them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..core.io import READABLE_SUFFIXES, SLICE_SUFFIXES, is_zarr_store, read_stack
from .layers import (
    annotated_image_layers,
    multiscale_layers,
    prediction_output_layers,
    stack_layer,
)

#: a CSV with more images than this opens its first ones only (with a warning)
MAX_CSV_IMAGES = 24


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
    if is_zarr_store(p):
        return True
    for child in p.iterdir():
        name = child.name.lower()
        if child.is_file() and (
            name.endswith(SLICE_SUFFIXES + (".dcm", ".dicom")) or "." not in name
        ):
            return True
    return False


def read_layers(path) -> list[tuple]:
    """Read `path` into napari layer data tuples ``(data, kwargs, layer_type)``.

    OME-Zarr images open as multiscale layers with their label images (colours and
    class names); napari-segkit's plain zarr prediction outputs open as Labels.
    """
    if isinstance(path, list):
        path = path[0]
    p = Path(path)
    if is_zarr_store(p):
        name = p.name.split(".")[0] or "image"
        multiscale = _multiscale(p)
        if multiscale is not None:
            return multiscale_layers(multiscale, name)
        outputs = _prediction_arrays(p)
        if outputs is not None:
            return prediction_output_layers(p, outputs, name)
    return [stack_layer(read_stack(path))]


def _multiscale(path: Path):
    from ..core.errors import UnsupportedFormatError
    from ..core.io import read_multiscale

    try:
        return read_multiscale(path)
    except (UnsupportedFormatError, KeyError, ValueError, TypeError):
        return None


def _prediction_arrays(path: Path):
    """``{"labels", "probabilities"}`` of a finished plain zarr prediction output, else None."""
    import dask.array as da
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:  # noqa: BLE001 -- an array, or not zarr: not an output
        return None
    state = dict(group.attrs).get("segkit")
    if not isinstance(state, dict):
        return None
    read_stack(
        path / "labels" if "labels" in group else path / "probabilities"
    )  # refuses unfinished
    return {k: da.from_zarr(group[k]) if k in group else None for k in ("labels", "probabilities")}


def read_rle_csv_layers(path) -> list[tuple]:
    """A Kaggle RLE CSV with its image folder: one Image + one Labels layer per image."""
    from ..kaggle.datasets import read_rle_csv
    from ..kaggle.submission import read_labels_csv

    if isinstance(path, list):
        path = path[0]
    written = read_labels_csv(path)  # a CSV from the Export widget: its sidecar has the sizes
    if written is not None:
        name, labels = written
        return [(labels, {"name": name}, "labels")]
    from ..kaggle.datasets import read_csv_rows

    ids = list(dict.fromkeys(row[0] for row in read_csv_rows(path)[1:] if row))
    if len(ids) > MAX_CSV_IMAGES:
        # a notification in the viewer (a terminal warning goes unseen), and only the
        # first images are decoded: opening stays a matter of seconds on the UI thread
        message = (
            f"'{Path(path).name}' lists {len(ids)} images; opening the first "
            f"{MAX_CSV_IMAGES} (napari_segkit.kaggle.read_rle_csv reads them all)"
        )
        warnings.warn(message, stacklevel=2)
        _notify(message)
    samples = read_rle_csv(path, limit=MAX_CSV_IMAGES)
    return annotated_image_layers(samples)


def _notify(message: str) -> None:
    """A napari notification when a viewer is there to show it."""
    try:
        from napari.utils.notifications import show_info
    except ImportError:  # pragma: no cover - the reader runs inside napari
        return
    show_info(message)
