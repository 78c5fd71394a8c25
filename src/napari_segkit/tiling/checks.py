"""Checks of ``predict``'s options and output path that need no torch.

``predict`` runs them first, and ``segkit predict`` runs them before torch loads, so
a wrong option or an output that would clobber the input is reported at once.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

from ..config import BLEND_MODES, OUTPUTS, PROB_DTYPES, TTA_MODES
from ..models.info import MAX_TILE


class OutputExistsError(ValueError):
    """The output exists and was made with other settings (or is complete) and overwrite is off."""


def check_options(*, blend, tta, output, prob_dtype, batch_size, block_size, overlap=None):
    """Raise ValueError naming the first invalid option.

    Parameters
    ----------
    blend, tta, output, prob_dtype : str or None
        Checked against :mod:`napari_segkit.config`'s choice lists.
    batch_size, block_size : int
        Whole numbers >= 1.
    overlap : float, optional
        In ``[0, 1)``.

    Returns
    -------
    None
    """
    for name, value, choices in (
        ("blend", blend, BLEND_MODES),
        ("tta", tta, TTA_MODES),
        ("output", output, OUTPUTS),
        ("prob_dtype", prob_dtype, PROB_DTYPES),
    ):
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if not _is_whole(value) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if overlap is not None and not (isinstance(overlap, numbers.Real) and 0 <= overlap < 1):
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")


def tile_pair(tile_size) -> tuple[int, int]:
    """``tile_size`` as ``(height, width)`` whole pixels, checked.

    Parameters
    ----------
    tile_size : int or (int, int)

    Returns
    -------
    (int, int)

    Raises
    ------
    ValueError
        Not whole numbers (2.7 is refused, not truncated), below 1, or above
        :data:`~napari_segkit.models.info.MAX_TILE`.

    Examples
    --------
    >>> tile_pair(256), tile_pair((128, 64))
    ((256, 256), (128, 64))
    """
    pair = (tile_size, tile_size) if not isinstance(tile_size, (tuple, list)) else tile_size
    if len(pair) != 2 or not all(_is_whole(t) and 1 <= t <= MAX_TILE for t in pair):
        raise ValueError(
            f"tile_size must be a whole number of pixels from 1 to {MAX_TILE}, or a pair of "
            f"them (height, width); got {tile_size!r}"
        )
    return int(pair[0]), int(pair[1])


def check_output_path(out, *, source=None, overwrite: bool = False) -> Path:
    """Check a zarr output path before anything is computed.

    Parameters
    ----------
    out : path
        Must end in ``.zarr``; its folder must exist and be writable.
    source : path, optional
        The input's path: the output may not be it, be inside it or contain it
        (``--overwrite`` would otherwise delete the input).
    overwrite : bool
        Without it, an existing path that is not a napari-segkit prediction is refused.

    Returns
    -------
    Path

    Raises
    ------
    ValueError, FileNotFoundError, PermissionError
    """
    from ..core.io import is_zarr_store

    out = Path(out)
    if not str(out).rstrip("/").endswith(".zarr"):
        raise ValueError(
            f"out must be a .zarr path (got '{out}'); write TIFF from the returned "
            "array with napari_segkit.write_labels"
        )
    if source is not None:
        _refuse_overlap(out, Path(source))
    if not out.parent.is_dir():
        raise FileNotFoundError(f"Cannot write '{out}': folder '{out.parent}' does not exist")
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"Cannot write '{out}': folder '{out.parent}' is not writable")
    if out.exists() and not overwrite and not (is_zarr_store(out) and _is_prediction(out)):
        raise OutputExistsError(
            f"Output '{out}' exists and is not a napari-segkit prediction; choose another "
            "path, or pass overwrite=True (--overwrite) to replace it."
        )
    return out


def _refuse_overlap(out: Path, source: Path) -> None:
    out_r, src_r = out.resolve(), source.resolve()
    if out_r == src_r:
        problem = "is the input"
    elif src_r in out_r.parents:
        problem = "is inside the input"
    elif out_r in src_r.parents:
        problem = "contains the input"
    else:
        return
    raise ValueError(f"Output '{out}' {problem} '{source}': choose an output outside the input")


def _is_prediction(path: Path) -> bool:
    import json

    for meta in ("zarr.json", ".zattrs"):
        try:
            attrs = json.loads((path / meta).read_text())
        except (OSError, ValueError):
            continue
        attrs = attrs.get("attributes", attrs) if isinstance(attrs, dict) else {}
        if isinstance(attrs, dict) and "segkit" in attrs:
            return True
    return False


def _is_whole(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return float(value).is_integer()


__all__ = ["OutputExistsError", "check_options", "check_output_path", "tile_pair"]
