"""Tile geometry for sliding-window prediction: tile starts, blend weights, block plans.

Pure numpy, so every piece is testable alone and reusable outside torch.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product

import numpy as np

from .choices import BLEND_MODES


def tile_starts(size: int, tile: int, overlap: float, align: int = 1) -> list[int]:
    """Start offsets of tiles covering ``range(size)`` with at least ``overlap * tile`` shared.

    ``align == 1``: the spacing is evened out so the last tile ends exactly at the
    border (as nnU-Net does). ``align > 1``: every start is a multiple of `align`
    (a network with 2**d poolings is only shift-equivariant by multiples of 2**d, so
    aligned tiles reproduce a whole-image prediction) and the last tile may stick
    out past the border by less than `align`, where the image is padded by reflection
    (as the model wrapper pads a whole image). A `size` smaller
    than `tile` gives one tile at 0.

    Parameters
    ----------
    size : int
        Length of the axis to cover, in pixels.
    tile : int
        Tile length.
    overlap : float
        Fraction of `tile` shared by neighbours, ``0 <= overlap < 1``.
    align : int
        Starts are multiples of this.

    Returns
    -------
    list of int
        Increasing starts; the first is 0.

    >>> tile_starts(10, 4, 0.5)
    [0, 2, 4, 6]
    >>> tile_starts(11, 4, 0.25)
    [0, 2, 5, 7]
    >>> tile_starts(11, 4, 0.25, align=2)
    [0, 2, 4, 6, 8]
    """
    if tile < 1 or not 0 <= overlap < 1 or align < 1:
        raise ValueError(
            f"tile and align must be >= 1 and 0 <= overlap < 1, got tile={tile}, "
            f"overlap={overlap}, align={align}"
        )
    if size <= tile:
        return [0]
    if align > 1:
        step = max(align, int(tile * (1 - overlap)) // align * align)
        # the last tile ends at the next multiple of `align`: it sticks out by less than
        # `align`, exactly as far as a whole-image prediction pads the image
        last = -(-(size - tile) // align) * align
        return list(range(0, size - tile, step)) + [last]
    step = max(1, int(round(tile * (1 - overlap))))
    n = int(np.ceil((size - tile) / step)) + 1
    return [int(round(i * (size - tile) / (n - 1))) for i in range(n)]


@lru_cache(maxsize=64)
def blend_weights(
    tile_shape: tuple[int, ...],
    mode: str = "gaussian",
    overlap: float = 0.25,
    at_border: tuple[bool, ...] | None = None,
) -> np.ndarray:
    """Importance weights of one tile, shape `tile_shape` (2D or 3D), float32, all > 0.

    * ``"gaussian"``: a Gaussian centred on the tile, sigma = 1/8 of the tile side
      (as nnU-Net and MONAI), so tile borders, where context is missing, count least.
    * ``"linear"``: a pyramid falling linearly from the centre to the border.
    * ``"centre"``: centre-crop: 1 in the tile's centre, and in the border band of
      ``overlap / 2`` of the tile a weight falling steeply to 1e-6 at the edge, so each
      pixel takes the prediction of the tile it lies deepest in (image borders still
      get a value).

    `at_border` (low, high per axis: top, bottom, left, right in 2D; front and back
    first in 3D) marks tile sides lying on the image border; in ``"centre"`` mode those
    sides get no border band, since nothing better lies beyond them. The weights are
    the outer product of one profile per axis.

    The result is cached (read-only): do not modify it.
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"blend must be one of {BLEND_MODES}, got {mode!r}")
    at_border = tuple(at_border) if at_border is not None else (False,) * (2 * len(tile_shape))
    axes = []
    sides = [at_border[2 * i : 2 * i + 2] for i in range(len(tile_shape))]
    for n, (low_at_border, high_at_border) in zip(tile_shape, sides, strict=True):
        x = np.arange(n, dtype=np.float64) + 0.5 - n / 2
        if mode == "gaussian":
            w = np.exp(-0.5 * (x / (n / 8)) ** 2)
        elif mode == "linear":
            w = 1 - np.abs(x) / (n / 2)
        else:
            # 1 in the centre; in the border band it falls steeply (1e-6 at the edge), so
            # where only border bands overlap, the tile in which the pixel is deeper wins
            margin = max(n * overlap / 2, 1e-9)
            to_low = np.inf if low_at_border else x + n / 2
            to_high = np.inf if high_at_border else n / 2 - x
            edge_distance = np.minimum(to_low, to_high)
            w = 1e-6 ** np.clip(1 - edge_distance / margin, 0, 1)
        axes.append(np.broadcast_to(w, x.shape))  # a tile on both borders: a constant
    weights = axes[0]
    for profile in axes[1:]:
        weights = np.multiply.outer(weights, profile)
    weights = weights / weights.max()
    if mode != "centre":
        # a floor as MONAI's (1e-3): where only tile corners overlap, no tile's vanishing
        # weight (1e-7) may decide alone. Centre-crop needs its steep fall, so no floor there.
        weights = np.maximum(weights, 1e-3)
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def block_plan(shape: tuple[int, ...], block: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """Blocks tiling an array of `shape` in a regular grid of `block` (the last ones clipped).

    Parameters
    ----------
    shape : tuple of int
    block : tuple of int
        Block size per axis (same length as `shape`).

    Returns
    -------
    list of tuple of slice
        In C order (last axis fastest).

    >>> block_plan((5, 3), (2, 3))
    [(slice(0, 2, None), slice(0, 3, None)), (slice(2, 4, None), slice(0, 3, None)), (slice(4, 5, None), slice(0, 3, None))]
    """
    if len(shape) != len(block) or min(block) < 1:
        raise ValueError(f"block {block} does not fit shape {shape}")
    ranges = [range(0, s, b) for s, b in zip(shape, block, strict=False)]
    return [
        tuple(slice(s, min(s + b, n)) for s, b, n in zip(starts, block, shape, strict=False))
        for starts in product(*ranges)
    ]


def tiles_for_block(
    block: tuple[slice, slice], starts_y: list[int], starts_x: list[int], tile: tuple[int, int]
) -> list[tuple[int, int]]:
    """The (y, x) starts of the global tile grid whose tiles overlap `block`.

    Parameters
    ----------
    block : (slice, slice)
        Rows and columns of the block.
    starts_y, starts_x : list of int
        The plane's tile starts (:func:`tile_starts`).
    tile : (int, int)
        Tile height and width.

    Returns
    -------
    list of (int, int)
        Tile starts in C order.

    Examples
    --------
    >>> tiles_for_block((slice(0, 4), slice(4, 8)), [0, 4], [0, 4, 8], (4, 4))
    [(0, 4)]
    """
    ys = [y for y in starts_y if y < block[0].stop and y + tile[0] > block[0].start]
    xs = [x for x in starts_x if x < block[1].stop and x + tile[1] > block[1].start]
    return [(y, x) for y in ys for x in xs]
