"""Checks of ``predict``'s options that need no torch.

``predict`` runs them first, and ``segkit predict`` runs them before torch loads, so
a wrong option or an output that would clobber the input is reported at once.
"""

from __future__ import annotations

import numbers
import re

from ..config import BLEND_MODES, DEVICE_CHOICES, OUTPUTS, PROB_DTYPES, TTA_MODES
from ..core.outputs import OutputExistsError
from ..models.info import MAX_TILE


def check_options(*, blend, tta, output, prob_dtype, batch_size, block_size, overlap=None):
    """Raise ValueError naming the first invalid option.

    Parameters
    ----------
    blend, tta, output, prob_dtype : str or None
        Checked against :mod:`napari_segkit.config`'s choice lists.
    batch_size, block_size : int
        Whole numbers >= 1 (``batch_size`` None: chosen by the engine).
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
        if name == "batch_size" and value is None:
            continue  # chosen by the engine
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


def _is_whole(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return float(value).is_integer()


def check_device_name(device) -> str:
    """Refuse a device name torch would not understand, without importing torch.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

    Returns
    -------
    str

    Examples
    --------
    >>> check_device_name("cuda:1")
    'cuda:1'
    """
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(device)):
        raise ValueError(
            f"unknown device {device!r}: use one of {', '.join(DEVICE_CHOICES)} or e.g. cuda:1"
        )
    return str(device)


__all__ = ["OutputExistsError", "check_device_name", "check_options", "tile_pair"]
