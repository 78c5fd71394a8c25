"""Run-length encoding of masks, as Kaggle segmentation competitions use it.

Kaggle's common convention (DSB2018, Carvana, Airbus, ...): pixels are numbered
from 1, top to bottom then left to right (column-major, ``order="F"``); the string
lists ``start length`` pairs separated by spaces; an empty mask is ``""``. Some
competitions number pixels left to right then top to bottom (row-major): pass
``order="C"`` explicitly.

Vectorised with numpy (no Python loop over pixels or runs): a 4096 x 4096 mask
encodes and decodes in a fraction of a second. Written here because no
well-kept library offers Kaggle RLE with strict validation of malformed strings.
"""

from __future__ import annotations

import numpy as np

ORDERS = {"F": "column-major (Kaggle's common convention)", "C": "row-major"}


class RLEError(ValueError):
    """A malformed run-length string (the message says which run and why)."""


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(
            f"order must be 'F' (column-major, Kaggle's default) or 'C' (row-major), got {order!r}"
        )


def rle_encode(mask, *, order: str = "F") -> str:
    """Encode a binary mask as a run-length string.

    Parameters
    ----------
    mask : array, shape (Y, X)
        Non-zero pixels are foreground.
    order : {"F", "C"}
        Pixel numbering: "F" top to bottom then left to right (Kaggle's common
        convention), "C" left to right then top to bottom.

    Returns
    -------
    str
        ``"start length start length ..."`` with 1-based starts; ``""`` for an
        empty mask.
    """
    _check_order(order)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode takes a 2D mask (Y, X), got shape {mask.shape}")
    flat = mask.ravel(order=order) != 0
    # run boundaries are where the padded sequence changes value
    padded = np.concatenate(([False], flat, [False]))
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = changes[0::2], changes[1::2]
    if starts.size == 0:
        return ""
    pairs = np.empty(2 * starts.size, np.int64)
    pairs[0::2] = starts + 1
    pairs[1::2] = ends - starts
    return " ".join(pairs.astype(str).tolist())


def rle_decode(rle: str, shape: tuple[int, int], *, order: str = "F") -> np.ndarray:
    """Decode a run-length string into a mask.

    Parameters
    ----------
    rle : str
        ``"start length ..."`` (1-based starts); ``""`` (or NaN from a CSV) decodes
        to an empty mask.
    shape : (int, int)
        ``(height, width)`` of the image.
    order : {"F", "C"}
        As in :func:`rle_encode`.

    Returns
    -------
    ndarray of uint8, shape `shape`, values 0 / 1

    Raises
    ------
    RLEError
        Odd number of values, non-integers, starts below 1, zero or negative lengths,
        unsorted or overlapping runs, runs past the end of the image.
    """
    _check_order(order)
    shape = _check_shape(shape)
    size = shape[0] * shape[1]
    tokens = [] if rle is None or (isinstance(rle, float) and np.isnan(rle)) else str(rle).split()
    if not tokens:
        return np.zeros(shape, np.uint8)
    if len(tokens) % 2:
        raise RLEError(f"run-length string has {len(tokens)} values; it needs start/length pairs")
    for i, token in enumerate(tokens):
        # ASCII digits only: int() also takes "¹", "٣" and "1_000", and numbers past int64
        # would overflow numpy; neither can be a pixel index of a real image
        which = "start" if i % 2 == 0 else "length"
        if not (token.isascii() and token.lstrip("+-").isdigit()):
            raise RLEError(f"run {i // 2 + 1}: non-integer value {token[:30]!r} (its {which})")
        if len(token.lstrip("+-")) > 18:
            raise RLEError(f"run {i // 2 + 1}: {which} {token[:30]!r} is too large")
    values = np.array([int(t) for t in tokens], dtype=np.int64)
    starts, lengths = values[0::2] - 1, values[1::2]  # 0-based starts
    _validate_runs(starts, lengths, size, shape)
    delta = np.zeros(size + 1, np.int8)
    delta[starts] += 1
    delta[starts + lengths] -= 1
    flat = np.cumsum(delta[:-1], dtype=np.int8).astype(np.uint8)
    return flat.reshape(shape, order=order)


def _check_shape(shape) -> tuple[int, int]:
    """``(height, width)`` as positive whole numbers (2.5 is refused, not truncated)."""
    try:
        values = [float(v) for v in shape]
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (height, width), got {shape!r}") from None
    if len(values) != 2 or not all(v.is_integer() and v >= 1 for v in values):
        raise ValueError(
            f"shape must be (height, width) with positive sizes (whole numbers), got {shape!r}"
        )
    return int(values[0]), int(values[1])


def _validate_runs(starts, lengths, size, shape) -> None:
    def where(i):
        return f"run {int(i) + 1} (start {int(starts[i]) + 1}, length {int(lengths[i])})"

    if (bad := np.flatnonzero(starts < 0)).size:
        raise RLEError(f"{where(bad[0])}: starts are 1-based, so they must be >= 1")
    if (bad := np.flatnonzero(lengths <= 0)).size:
        raise RLEError(f"{where(bad[0])}: lengths must be positive")
    ends = starts + lengths
    if (bad := np.flatnonzero(starts[1:] < starts[:-1])).size:
        raise RLEError(f"{where(bad[0] + 1)}: runs must be sorted by start")
    if (bad := np.flatnonzero(starts[1:] < ends[:-1])).size:
        raise RLEError(f"{where(bad[0] + 1)}: overlaps the previous run")
    if ends[-1] > size:
        raise RLEError(
            f"{where(len(ends) - 1)}: ends at pixel {int(ends[-1])}, past the "
            f"{size} pixels of a {shape[0]} x {shape[1]} image"
        )
