"""Data augmentation applied identically to an image, its labels and a weight map, in 2D
and in 3D (patches of stacks for 3D models: flips of z, y and x, in-plane rotations, and
the same coarse-grid elastic deformation with a displacement per axis).

Mirroring and 90-degree rotations (exact, no resampling), random zoom (objects
seen at other pixel sizes), translation jitter, and elastic deformation as in the
U-Net paper (Ronneberger et al. 2015: random displacement vectors on a coarse 3 x 3
grid, drawn from a Gaussian with a 10 pixel standard deviation, smoothly
(bicubically) interpolated to every pixel), plus, on the image alone, intensity scale /
shift and optional degradations of image quality as other microscopes give it: Gaussian
blur (a wider point spread function, slight defocus), gamma (another camera response or
display curve) and Gaussian noise (fewer photons).

Zoom, translation and elastic deformation share one coordinate map and one
resampling (scipy.ndimage.map_coordinates): the image and the weight map are
interpolated linearly, labels by nearest neighbour, so no interpolated (non-existent)
class id ever appears. Written with numpy/scipy because the libraries that do elastic
deformation for 2D + masks (albumentations, MONAI) would be heavy dependencies for
these few lines, and torchvision's elastic transform does not follow the paper's
coarse-grid formulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation settings; call it with a generator and the arrays.

    Attributes
    ----------
    flips : bool
        Random horizontal / vertical mirroring.
    rotate90 : bool
        Random rotation by a multiple of 90 degrees (square patches keep their shape).
    zoom : (float, float)
        Random in-plane magnification, drawn log-uniformly from ``[zoom[0], zoom[1]]``
        (``(1, 1)``: off). Above 1 objects look larger, below 1 smaller: a model
        trained with ``(0.7, 1.4)`` has seen its objects at pixel sizes 2x apart, as
        another objective or camera gives them. Planes only: a stack's z is not zoomed.
        :class:`~napari_segkit.training.PatchDataset` cuts a window of
        ``patch / zoom`` pixels and resamples it to the patch (no mirrored content
        when zooming out); called on its own the patch is zoomed about its centre
        (zooming out then fills the borders by reflection, as translation does).
    translate : float
        Largest shift in pixels (uniform in [-translate, translate], per axis).
    elastic_sigma : float
        Standard deviation in pixels of the coarse-grid displacements (0: off).
    elastic_grid : int
        Points per side of the coarse displacement grid (3 in the paper).
    intensity_scale, intensity_shift : float
        Image values become ``x * (1 + u1) + u2`` with ``u1 ~ U(-scale, scale)`` and
        ``u2 ~ U(-shift, shift)`` (on normalised images).
    blur_sigma : (float, float)
        Range of the standard deviation, in pixels, of an in-plane Gaussian blur (drawn
        uniformly), applied to a patch with probability ``blur_probability`` (``(0, 0)``:
        off).
    blur_probability : float
        Fraction of the patches that are blurred (1: all of them).
    gamma : (float, float)
        Range of a gamma applied to the patch's values between its minimum and maximum
        (drawn log-uniformly; ``(1, 1)``: off). Above 1 dim objects get dimmer against
        bright ones, below 1 brighter.
    noise_std : float or (float, float)
        Standard deviation of added Gaussian noise (on normalised images; 0: off), or a
        range it is drawn from uniformly for each patch (clean and noisy patches alike).
    image_order : int
        Interpolation order for the image (1 linear; 0 nearest, used by tests).
    """

    flips: bool = True
    rotate90: bool = True
    zoom: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    elastic_sigma: float = 10.0
    elastic_grid: int = 3
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    blur_sigma: tuple[float, float] = (0.0, 0.0)
    blur_probability: float = 1.0
    gamma: tuple[float, float] = (1.0, 1.0)
    noise_std: float | tuple[float, float] = 0.0
    image_order: int = 1

    def __post_init__(self):
        low, high = (float(v) for v in self.blur_sigma)
        if not 0 <= low <= high:
            raise ValueError(
                f"blur_sigma must be (low, high) with 0 <= low <= high, got {self.blur_sigma}"
            )
        if not 0 <= self.blur_probability <= 1:
            raise ValueError(f"blur_probability must lie in [0, 1], got {self.blur_probability}")
        low, high = (float(v) for v in self.gamma)
        if not 0 < low <= high:
            raise ValueError(f"gamma must be (low, high) with 0 < low <= high, got {self.gamma}")
        low, high = _noise_range(self.noise_std)
        if not 0 <= low <= high:
            raise ValueError(
                f"noise_std must be >= 0 or (low, high) with 0 <= low <= high, got {self.noise_std}"
            )

    def __call__(
        self,
        rng: np.random.Generator,
        image: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray | None = None,
        *,
        out_shape: tuple[int, ...] | None = None,
    ):
        """Augment one patch.

        Parameters
        ----------
        rng : numpy Generator
        image : ndarray of float, shape (C, H, W) or (C, D, H, W)
        labels : ndarray of int, shape (H, W) or (D, H, W)
        weights : ndarray of float, the labels' shape, optional
        out_shape : tuple of int, optional
            Spatial shape of the result: the input window is stretched to it (a window
            twice the size of `out_shape` halves the objects). The caller drew the zoom
            with :meth:`draw_zoom` and cut the window to match; none is drawn here.
            Default: the input's shape, zoomed about the centre by a drawn zoom.

        Returns
        -------
        image, labels, weights
            New arrays of shape `out_shape` (weights None if not given); the inputs are
            never modified.
        """
        if image.ndim not in (3, 4) or labels.shape != image.shape[1:]:
            raise ValueError(
                "image (C, H, W) / (C, D, H, W) and labels (H, W) / (D, H, W) do not match: "
                f"{image.shape} vs {labels.shape}"
            )
        if weights is not None and weights.shape != labels.shape:
            raise ValueError(f"weights {weights.shape} must have the labels' shape {labels.shape}")
        spatial = labels.shape
        if out_shape is None:
            zoom = self.draw_zoom(rng)
            out_shape = spatial
            # output pixel -> input pixel: in-plane steps of 1 / zoom (z keeps its planes)
            step = (1.0,) * (len(spatial) - 2) + (1.0 / zoom,) * 2
        else:
            out_shape = tuple(int(n) for n in out_shape)
            if len(out_shape) != len(spatial):
                raise ValueError(f"out_shape {out_shape} must have {len(spatial)} axes")
            step = tuple(n / m for n, m in zip(spatial, out_shape, strict=True))
        arrays = [image, labels[None], None if weights is None else weights[None]]
        arrays = [a for a in arrays if a is not None]
        if self.flips:
            for axis in range(-1, -labels.ndim - 1, -1):  # x, y (and z)
                if rng.random() < 0.5:
                    arrays = [np.flip(a, axis) for a in arrays]
        if self.rotate90 and image.shape[-2] == image.shape[-1]:
            k = int(rng.integers(4))
            arrays = [np.rot90(a, k, axes=(-2, -1)) for a in arrays]
        coords = self._coordinates(rng, spatial, out_shape, step)
        if coords is not None:
            orders = [self.image_order, 0, 1]
            arrays = [
                np.stack(
                    [ndi.map_coordinates(ch, coords, order=order, mode="reflect") for ch in a]
                )
                for a, order in zip(arrays, orders, strict=False)
            ]
        out_image = np.ascontiguousarray(arrays[0], dtype=np.float32)
        out_image = self._intensity(rng, out_image)
        out_labels = np.ascontiguousarray(arrays[1][0]).astype(labels.dtype, copy=False)
        out_weights = (
            None if weights is None else np.ascontiguousarray(arrays[2][0], dtype=np.float32)
        )
        return out_image, out_labels, out_weights

    def draw_zoom(self, rng: np.random.Generator) -> float:
        """One random zoom factor (log-uniform in ``zoom``); 1.0, drawing nothing, when off."""
        low, high = (float(z) for z in self.zoom)
        if not 0 < low <= high:
            raise ValueError(f"zoom must be (low, high) with 0 < low <= high, got {self.zoom}")
        if low == high == 1.0:
            return 1.0
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))

    def _coordinates(self, rng, in_shape, out_shape, step):
        """Input coordinates (ndim, *out_shape) of every output pixel (zoom about the
        centre, translation, elastic deformation), or None when nothing moves."""
        resized = tuple(in_shape) != tuple(out_shape) or any(s != 1.0 for s in step)
        if self.translate <= 0 and self.elastic_sigma <= 0 and not resized:
            return None
        shape = out_shape
        grid = np.indices(shape, dtype=np.float32)
        if resized:
            for axis, (n_in, n_out, s) in enumerate(zip(in_shape, shape, step, strict=True)):
                grid[axis] = (grid[axis] - (n_out - 1) / 2) * np.float32(s) + (n_in - 1) / 2
        if self.translate > 0:
            shift = rng.uniform(
                -self.translate, self.translate, size=(len(shape),) + (1,) * len(shape)
            )
            grid += shift.astype(np.float32)
        if self.elastic_sigma > 0:
            grid += elastic_displacement(rng, shape, self.elastic_sigma, self.elastic_grid)
        return grid

    def _intensity(self, rng, image):
        # in the order an image is formed: optics (blur), the camera's response (gamma),
        # exposure (scale, shift), then shot and read noise. Each draws random numbers
        # only when switched on, so the patches of settings without it stay as they were.
        blur = self.blur_probability > 0 and self.blur_sigma[1] > 0
        if blur and rng.random() < self.blur_probability:
            sigma = rng.uniform(*self.blur_sigma)
            in_plane = (0.0,) * (image.ndim - 2) + (sigma, sigma)  # channels, z: not
            image = ndi.gaussian_filter(image, in_plane, mode="reflect")
        if tuple(self.gamma) != (1.0, 1.0):
            image = gamma_between_extremes(image, np.exp(rng.uniform(*np.log(self.gamma))))
        if self.intensity_scale > 0 or self.intensity_shift > 0:
            scale = 1 + rng.uniform(-self.intensity_scale, self.intensity_scale)
            shift = rng.uniform(-self.intensity_shift, self.intensity_shift)
            image = image * np.float32(scale) + np.float32(shift)
        low, high = _noise_range(self.noise_std)
        if high > 0:
            std = low if low == high else rng.uniform(low, high)
            image = image + rng.normal(0, std, image.shape).astype(np.float32)
        return image


def _noise_range(noise_std) -> tuple[float, float]:
    """``noise_std`` as a (low, high) range: a number is a range of one value."""
    if np.ndim(noise_std) == 0:
        return float(noise_std), float(noise_std)
    low, high = (float(v) for v in noise_std)
    return low, high


def gamma_between_extremes(image: np.ndarray, gamma: float) -> np.ndarray:
    """`image` ** `gamma` between its minimum and maximum, which it keeps: another camera
    response or display curve (above 1 dim objects get dimmer against bright ones).

    Parameters
    ----------
    image : ndarray of float, any shape
        All channels are bent by one mapping, so that colours keep their order.
    gamma : float
        The exponent (> 0).

    Returns
    -------
    ndarray of float32
        `image`'s shape; `image` itself when it is flat (nothing to bend).
    """
    low, high = float(image.min()), float(image.max())
    if high - low < 1e-6:  # a flat image: nothing to bend
        return image
    unit = (image - np.float32(low)) / np.float32(high - low)
    return (unit ** np.float32(gamma)) * np.float32(high - low) + np.float32(low)


def elastic_displacement(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float, grid: int = 3
) -> np.ndarray:
    """Smooth random displacement field (ndim, *shape) in pixels, U-Net style.

    Displacements are drawn on a coarse ``grid x grid`` (x ``grid`` in 3D) lattice from
    N(0, sigma) and interpolated with cubic splines to every pixel, so the deformation
    is smooth.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int) or (int, int, int)
        ``(H, W)`` or ``(D, H, W)`` of the field.
    sigma : float
        Standard deviation of the coarse displacements, in pixels.
    grid : int
        Points per side of the coarse lattice (3 in the U-Net paper).

    Returns
    -------
    ndarray of float32, shape (ndim, *shape)
        Displacements per axis in pixels (rows and columns; planes first in 3D).
    """
    if grid < 2:
        raise ValueError(f"elastic_grid must be >= 2, got {grid}")
    ndim = len(shape)
    coarse = rng.normal(0, sigma, size=(ndim,) + (grid,) * ndim)
    # cubic spline through the lattice points, evaluated on the full-resolution grid
    axes = [np.linspace(0, grid - 1, n, dtype=np.float64) for n in shape]
    where = np.meshgrid(*axes, indexing="ij")
    return np.stack(
        [ndi.map_coordinates(c, where, order=3, mode="nearest") for c in coarse]
    ).astype(np.float32)
