"""What kind of microscopy image a picture is, and validation splits that keep kinds balanced.

DSB2018 mixes fluorescence (dark background, bright nuclei), stained tissue in colour
(H&E-like: bright background, purple nuclei) and bright-field (gray, bright background,
dark nuclei). Scores differ a lot between kinds and the kinds are unequally common
(about 82 / 16 / 3 % of dsb2018-train), so results are reported per kind and a
validation split draws the same fraction of every kind. numpy only.
"""

from __future__ import annotations

import numpy as np

#: image kinds, in report order
KINDS = ("fluorescence", "tissue", "brightfield")

#: mean absolute difference between colour channels (in 0..255 units) above which an
#: image is colour-stained: gray images saved as RGB have exactly 0, DSB2018's stained
#: tissue 15 to 180, its bright-field 0
COLOUR_SPREAD = 5.0


def image_kind(image: np.ndarray) -> str:
    """Classify an image as "fluorescence", "tissue" (colour-stained) or "brightfield".

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Y, X, C)
        Gray, RGB or RGBA (alpha ignored), any numeric dtype.

    Returns
    -------
    str
        "tissue" when the colour channels differ (stained), else "brightfield" when
        the background (the median) is brighter than the middle of the 1..99.8
        percentile range, else "fluorescence".

    Examples
    --------
    >>> dark = np.zeros((8, 8), np.uint8); dark[2:4, 2:4] = 200
    >>> image_kind(dark)
    'fluorescence'
    >>> image_kind(255 - dark)
    'brightfield'
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] >= 3:
        rgb = image[..., :3].astype(np.float32)
        if np.issubdtype(image.dtype, np.integer):
            rgb *= 255.0 / max(float(np.iinfo(image.dtype).max), 1.0)
        else:
            rgb *= 255.0 / max(float(rgb.max()), 1e-8)
        spread = (
            np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean()
        )
        if spread > COLOUR_SPREAD:
            return "tissue"
        gray = rgb.mean(-1)
    elif image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
        gray = image.reshape(image.shape[:2]).astype(np.float32)
    else:
        raise ValueError(f"image must be (Y, X) or (Y, X, C), got shape {image.shape}")
    low, median, high = np.percentile(gray, [1.0, 50.0, 99.8])
    return "brightfield" if median - low > 0.5 * max(high - low, 1e-8) else "fluorescence"


def split_by_kind(
    ids, kinds, *, fraction: float = 0.15, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split `ids` into training and validation ids, `fraction` of every kind held out.

    Parameters
    ----------
    ids : sequence of str
    kinds : sequence of str
        One per id (e.g. from :func:`image_kind`).
    fraction : float
        In (0, 1); every kind with at least 2 images gives at least one.
    seed : int
        The split depends only on the ids, kinds, fraction and seed.

    Returns
    -------
    train_ids, val_ids : list of str
        Sorted.

    Examples
    --------
    >>> split_by_kind(["a", "b", "c", "d"], ["x", "x", "y", "y"], fraction=0.5)[1]
    ['a', 'c']
    """
    ids, kinds = list(ids), list(kinds)
    if len(ids) != len(kinds):
        raise ValueError(f"{len(ids)} ids but {len(kinds)} kinds")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val = []
    for kind in sorted(set(kinds)):
        members = sorted(i for i, k in zip(ids, kinds, strict=True) if k == kind)
        n = int(round(fraction * len(members)))
        if len(members) >= 2:
            n = min(max(n, 1), len(members) - 1)
        val += [members[j] for j in rng.permutation(len(members))[:n]]
    held = set(val)
    return sorted(i for i in ids if i not in held), sorted(val)


__all__ = ["KINDS", "image_kind", "split_by_kind"]
