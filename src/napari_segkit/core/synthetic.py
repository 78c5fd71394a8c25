"""Deterministic synthetic fluorescence-nuclei images with exact ground truth.

They serve as napari sample data, as test fixtures and as training data for the
bundled demo model. Nuclei are random ellipses (ellipsoids in 3D); some are
placed so they touch or overlap a neighbour, as in dense tissue. The image is
blurred nucleus intensity (overlaps add up, like fluorescence) on an uneven
background, with Poisson (shot) and Gaussian (read) noise.

Label conventions: instance labels are 1..N (0 background; where nuclei overlap
the later one wins); semantic labels are 0 background, 1 nucleus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass
class SyntheticSample:
    """An image with its exact ground truth.

    Attributes
    ----------
    image : ndarray of uint16, shape (Y, X) or (Z, Y, X)
    instances : ndarray of uint16, same shape: one id per nucleus, 0 background
    semantic : ndarray of uint8, same shape: 1 nucleus, 0 background
    """

    image: np.ndarray
    instances: np.ndarray
    semantic: np.ndarray

    class_names = ("background", "nucleus")


def make_nuclei(
    shape: tuple[int, ...] = (256, 256),
    *,
    n_nuclei: int | None = None,
    radius: tuple[float, float] = (6.0, 11.0),
    touching_fraction: float = 0.4,
    noise: float = 1.0,
    seed: int = 0,
) -> SyntheticSample:
    """Make a synthetic nuclei image (2D) or stack (3D) with exact labels.

    Parameters
    ----------
    shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)``.
    n_nuclei : int, optional
        Number of nuclei (default: about 25 % of the area covered).
    radius : (float, float)
        Range of the semi-axes in pixels.
    touching_fraction : float
        Fraction of nuclei placed against a previous one (touching or overlapping).
    noise : float
        Noise strength (0 for a clean image).
    seed : int
        Random seed; the same seed gives the same sample on every machine.

    Returns
    -------
    SyntheticSample
    """
    if len(shape) not in (2, 3) or min(shape[-2:]) < 8 or min(shape) < 1:
        raise ValueError(f"shape must be (Y, X) or (Z, Y, X) with Y, X >= 8, got {shape}")
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    if n_nuclei is None:
        mean_volume = (np.pi if ndim == 2 else 4 / 3 * np.pi) * np.mean(radius) ** ndim
        n_nuclei = max(1, int(0.25 * np.prod(shape) / mean_volume))
    instances = np.zeros(shape, np.uint16)
    signal = np.zeros(shape, np.float32)
    centres: list[np.ndarray] = []
    for label in range(1, n_nuclei + 1):
        radii = rng.uniform(*radius, size=ndim)
        if ndim == 3:
            radii[0] *= 0.6  # nuclei are flatter along Z, as in most stacks
        centre = _place(rng, shape, radii, centres, touching_fraction)
        centres.append(centre)
        # draw in the nucleus' bounding box only: cost per nucleus independent of image size
        box = tuple(
            slice(max(0, int(c - r) - 1), min(s, int(c + r) + 2))
            for c, r, s in zip(centre, [radii.max()] * ndim, shape, strict=False)
        )
        grid = np.ogrid[box]
        mask = _ellipse_mask(grid, centre, radii, rng.uniform(0, np.pi))
        instances[box][mask] = label
        signal[box][mask] += rng.uniform(0.6, 1.0)
    image = _render(signal, rng, noise)
    return SyntheticSample(image, instances, (instances > 0).astype(np.uint8))


def _place(rng, shape, radii, centres, touching_fraction) -> np.ndarray:
    """Random centre; with probability `touching_fraction`, next to an earlier nucleus."""
    low = np.zeros(len(shape))
    high = np.asarray(shape, float) - 1
    if centres and rng.random() < touching_fraction:
        anchor = centres[rng.integers(len(centres))]
        direction = rng.normal(size=len(shape))
        if len(shape) == 3:
            direction[0] *= 0.3
        direction /= np.linalg.norm(direction) + 1e-9
        # distance ~ sum of radii: 0.8 overlaps a little, 1.05 leaves a one-pixel gap
        return np.clip(anchor + direction * 2 * radii.mean() * rng.uniform(0.8, 1.05), low, high)
    return rng.uniform(low, high)


def _ellipse_mask(grid, centre, radii, angle) -> np.ndarray:
    """Boolean mask of an ellipse (rotated in the Y-X plane) or ellipsoid."""
    d = [g.astype(np.float32) - c for g, c in zip(grid, centre, strict=False)]
    y, x = d[-2], d[-1]
    cos, sin = np.cos(angle), np.sin(angle)
    d[-2], d[-1] = cos * y - sin * x, sin * y + cos * x
    return sum((di / r) ** 2 for di, r in zip(d, radii, strict=False)) <= 1.0


def _render(signal, rng, noise) -> np.ndarray:
    """Blur (optics), add an uneven background and noise; return uint16."""
    shape = signal.shape
    blurred = ndi.gaussian_filter(signal, 1.2)
    # a smooth illumination gradient plus a broad blob: the uneven background
    coords = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    mesh = np.meshgrid(*coords, indexing="ij")
    background = 0.15 + 0.08 * mesh[-1] + 0.06 * np.exp(-(mesh[-2] ** 2 + mesh[-1] ** 2) * 2)
    photons = (blurred * 0.8 + background) * 400.0
    if noise > 0:
        photons = rng.poisson(photons).astype(np.float32)
        photons += rng.normal(0, 8.0 * noise, shape).astype(np.float32)
    return np.clip(photons * 50, 0, 65535).astype(np.uint16)


def sample_2d(seed: int = 0) -> SyntheticSample:
    """The 256 x 256 2D sample shipped with the plugin.

    Parameters
    ----------
    seed : int

    Returns
    -------
    SyntheticSample
        ``image`` uint16 (256, 256), ``instances`` and ``semantic`` labels of that shape.
    """
    return make_nuclei((256, 256), seed=seed)


def sample_3d(seed: int = 1) -> SyntheticSample:
    """The 24 x 128 x 128 3D sample shipped with the plugin.

    Parameters
    ----------
    seed : int

    Returns
    -------
    SyntheticSample
        ``image`` uint16 (24, 128, 128), ``instances`` and ``semantic`` labels of that shape.
    """
    return make_nuclei((24, 128, 128), radius=(6.0, 10.0), seed=seed)
