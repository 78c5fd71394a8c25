"""Multiscale pyramids: level shapes and 2 x 2 downsampling of labels and intensities.

Levels halve Y and X (Z is kept: stacks are usually coarser in Z already) until the
image fits in one chunk. Labels are downsampled by the *mode* of each 2 x 2 window
(never a class id that was not there), intensities and probabilities by the mean.
Written with numpy because each block of an output is downsampled on its own, in
memory, as it is written (no library offers mode downsampling of a numpy block that
keeps the top-left pixel on ties).
"""

from __future__ import annotations

import numpy as np


def level_shapes(spatial_shape: tuple[int, ...], min_size: int = 512) -> list[tuple[int, ...]]:
    """Shapes of the pyramid levels of an image.

    Parameters
    ----------
    spatial_shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)``.
    min_size : int
        No level is added once Y and X fit in this many pixels.

    Returns
    -------
    list of tuple of int
        Level 0 first; each next level is ``ceil(Y / 2), ceil(X / 2)`` (Z unchanged).

    Examples
    --------
    >>> level_shapes((3, 2000, 1000), min_size=512)
    [(3, 2000, 1000), (3, 1000, 500), (3, 500, 250)]
    """
    shapes = [tuple(int(s) for s in spatial_shape)]
    while max(shapes[-1][-2:]) > min_size:
        *lead, y, x = shapes[-1]
        shapes.append((*lead, -(-y // 2), -(-x // 2)))
    return shapes


def _windows(array: np.ndarray) -> np.ndarray:
    """``(..., Y, X)`` -> ``(..., ceil(Y/2), ceil(X/2), 4)``: the 2 x 2 windows (edges repeated)."""
    y, x = array.shape[-2:]
    pad = [(0, 0)] * (array.ndim - 2) + [(0, y % 2), (0, x % 2)]
    if y % 2 or x % 2:
        array = np.pad(array, pad, mode="edge")
    return np.stack(
        [
            array[..., 0::2, 0::2],
            array[..., 0::2, 1::2],
            array[..., 1::2, 0::2],
            array[..., 1::2, 1::2],
        ],
        axis=-1,
    )


def downsample_mode(labels: np.ndarray) -> np.ndarray:
    """Halve the last two axes of a label image, keeping each window's most frequent label.

    Parameters
    ----------
    labels : ndarray of int, shape (..., Y, X)

    Returns
    -------
    ndarray, same dtype, shape (..., ceil(Y / 2), ceil(X / 2))
        Ties go to the window's top-left pixel.

    Examples
    --------
    >>> downsample_mode(np.array([[1, 2, 5], [2, 2, 5]]))
    array([[2, 5]])
    """
    windows = _windows(np.asarray(labels))
    counts = (windows[..., :, None] == windows[..., None, :]).sum(-1)
    best = counts.argmax(-1)  # first maximum: the top-left pixel wins ties
    return np.take_along_axis(windows, best[..., None], -1)[..., 0]


def downsample_mean(array: np.ndarray) -> np.ndarray:
    """Halve the last two axes by 2 x 2 means (integer dtypes rounded back).

    Parameters
    ----------
    array : ndarray, shape (..., Y, X)

    Returns
    -------
    ndarray, same dtype, shape (..., ceil(Y / 2), ceil(X / 2))

    Examples
    --------
    >>> downsample_mean(np.array([[0, 255], [255, 255]], np.uint8))
    array([[191]], dtype=uint8)
    """
    array = np.asarray(array)
    mean = _windows(array).astype(np.float32).mean(-1)
    if array.dtype.kind in "iub":
        return np.round(mean).astype(array.dtype)
    return mean.astype(array.dtype)


__all__ = ["downsample_mean", "downsample_mode", "level_shapes"]
