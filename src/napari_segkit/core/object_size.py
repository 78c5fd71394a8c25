"""Object size: predict at the pixel size a model was trained for.

A CNN learns objects at the sizes its training images showed them. Nuclei imaged with
another objective or camera are bigger or smaller in pixels, and a model's mean AP drops
by 0.04-0.13 at half or twice DSB2018's size (README "Other pixel sizes"). Like
Cellpose's diameter option, this module brings such images to the model's scale:

1. the model file records the sizes it was trained on (:func:`diameter_range`: the
   spread of the training images' median object diameters);
2. the objects' diameter in the user's image is given, or estimated from a first
   prediction (:func:`median_diameter` of its instances);
3. when that diameter lies outside the trained range, the image is magnified by
   :func:`rescale_factor` so that it lies on the range's nearest edge, predicted, and
   the class probabilities are resized back (:func:`predict_at_object_size`).

Images already inside the range are predicted as they are: rescaling them always (to
the median) cost 0.009 mean AP on our validation split, because one image's estimate is
noisy. Numpy / scikit-image only; the prediction itself is a callable given by the caller.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: magnifications are kept within these bounds: beyond them the first prediction's
#: estimate is not trustworthy (objects of 3 px or of most of a tile) and the image
#: would grow 9-fold in pixels
SCALE_LIMITS = (1 / 3, 3.0)


def median_diameter(instances) -> float | None:
    """The equivalent diameter of the median object: ``2 * sqrt(median area / pi)``.

    Parameters
    ----------
    instances : array of int, shape (Y, X) or (Z, Y, X)
        0 = background, one id per object. A stack's planes are measured one by one
        (an object is its pixels in one plane, as a 2D model sees it).

    Returns
    -------
    float or None
        In pixels; None when there is no object.

    Examples
    --------
    >>> square = np.zeros((20, 20), int); square[2:12, 2:12] = 1
    >>> round(median_diameter(square), 2)  # area 100
    11.28
    """
    instances = np.asarray(instances)
    if instances.dtype.kind not in "biu":
        raise ValueError(f"instances must be integer labels, got dtype {instances.dtype}")
    if instances.ndim not in (2, 3):
        raise ValueError(f"instances must be (Y, X) or (Z, Y, X), got shape {instances.shape}")
    planes = instances if instances.ndim == 3 else instances[None]
    areas = []
    for plane in planes:
        counts = np.bincount(plane.ravel().astype(np.int64))[1:]
        areas.append(counts[counts > 0])
    areas = np.concatenate(areas)
    if areas.size == 0:
        return None
    return float(2.0 * np.sqrt(np.median(areas) / np.pi))


def diameter_range(instance_images) -> dict | None:
    """The object sizes a training set shows, as a model file records them.

    Parameters
    ----------
    instance_images : sequence of arrays of int, each (Y, X) or (Z, Y, X)
        Instance labels (0 = background); each 2D image (or stack plane) counts once.

    Returns
    -------
    dict or None
        ``{"median", "low", "high"}``: the median and the 25th / 75th percentiles of the
        images' median object diameters, in pixels (rounded to 0.1), plus ``"images"``
        (how many had objects). None when no image has an object.
    """
    per_image = []
    for labels in instance_images:
        labels = np.asarray(labels)
        for plane in labels if labels.ndim == 3 else labels[None]:
            d = median_diameter(plane)
            if d is not None:
                per_image.append(d)
    if not per_image:
        return None
    low, median, high = np.percentile(per_image, [25, 50, 75])
    return {
        "median": round(float(median), 1),
        "low": round(float(low), 1),
        "high": round(float(high), 1),
        "images": len(per_image),
    }


def rescale_factor(diameter: float, low: float, high: float) -> float:
    """How much to magnify an image whose objects are `diameter` pixels across.

    Parameters
    ----------
    diameter : float
        The objects' (median) diameter in the image, pixels.
    low, high : float
        The diameter range the model was trained on (:func:`diameter_range`).

    Returns
    -------
    float
        1.0 inside ``[low, high]``; else the factor that brings `diameter` to the nearest
        edge (``low / diameter`` or ``high / diameter``), within :data:`SCALE_LIMITS`.

    Examples
    --------
    >>> rescale_factor(20, 13, 31), rescale_factor(6.5, 13, 31), rescale_factor(62, 13, 31)
    (1.0, 2.0, 0.5)
    """
    if not (np.isfinite(diameter) and diameter > 0):
        raise ValueError(f"object diameter must be a positive number of pixels, got {diameter}")
    if not (0 < low <= high):
        raise ValueError(f"diameter range must satisfy 0 < low <= high, got ({low}, {high})")
    target = min(max(diameter, low), high)
    return float(np.clip(target / diameter, *SCALE_LIMITS))


def rescale_planes(image: np.ndarray, factor: float, *, spatial_axes: tuple[int, int]):
    """`image` magnified by `factor` along its two in-plane axes (bilinear).

    Parameters
    ----------
    image : ndarray
        Any layout; only ``spatial_axes`` (Y, X) change size, to ``round(n * factor)``.
    factor : float
    spatial_axes : (int, int)
        The positions of Y and X in ``image.shape``.

    Returns
    -------
    ndarray of float32
        Anti-aliased when shrinking, so that fine texture does not alias.
    """
    from skimage.transform import resize

    shape = list(image.shape)
    for axis in spatial_axes:
        shape[axis] = max(1, round(shape[axis] * factor))
    return resize(
        np.asarray(image, dtype=np.float32),
        shape,
        order=1,
        preserve_range=True,
        anti_aliasing=factor < 1,
    ).astype(np.float32)


def resize_probabilities(probabilities: np.ndarray, spatial_shape: tuple) -> np.ndarray:
    """Class probabilities ``(K, *spatial)`` resized (bilinear) to `spatial_shape`.

    Parameters
    ----------
    probabilities : ndarray, shape (K, Y, X) or (K, Z, Y, X)
    spatial_shape : tuple
        ``(Y, X)`` or ``(Z, Y, X)``; Z must not change.

    Returns
    -------
    ndarray of float32, shape (K, *spatial_shape)
        Anti-aliased when shrinking; classes still sum to 1 (bilinear weights are convex).
    """
    from skimage.transform import resize

    probabilities = np.asarray(probabilities, dtype=np.float32)
    if tuple(spatial_shape) == probabilities.shape[1:]:
        return probabilities
    shrinking = np.prod(spatial_shape) < np.prod(probabilities.shape[1:])
    out = resize(
        probabilities,
        (probabilities.shape[0], *spatial_shape),
        order=1,
        preserve_range=True,
        anti_aliasing=bool(shrinking),
    )
    return out.astype(np.float32)


def predict_at_object_size(
    probabilities_of: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    spatial_axes: tuple[int, int],
    trained: tuple[float, float],
    object_diameter: float | str = "auto",
    instances_of: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, float, float | None]:
    """Class probabilities of `image` predicted at the scale its model was trained for.

    Parameters
    ----------
    probabilities_of : callable
        ``probabilities_of(image) -> (K, *spatial)`` float probabilities (a model's
        prediction); called once or twice.
    image : ndarray
        ``(Y, X[, C])`` or ``(Z, Y, X[, C])``, or any layout with `spatial_axes`.
    spatial_axes : (int, int)
        Positions of Y and X in ``image.shape``.
    trained : (float, float)
        The ``(low, high)`` object diameters the model was trained on, pixels.
    object_diameter : "auto" or float
        The objects' diameter in `image` (pixels), or "auto": estimated as the
        :func:`median_diameter` of ``instances_of`` applied to a first prediction
        (an image without objects is left as it is).
    instances_of : callable, optional
        ``instances_of(probabilities) -> labels``; needed for "auto".

    Returns
    -------
    probabilities : ndarray of float32, shape (K, *spatial) of `image`
    scale : float
        The magnification the image was predicted at (1.0: as it is).
    diameter : float or None
        The given or estimated object diameter in `image`'s pixels.
    """
    first = None
    if isinstance(object_diameter, str):
        if object_diameter != "auto":
            raise ValueError(
                f"object_diameter must be 'auto' or a number of pixels, got {object_diameter!r}"
            )
        if instances_of is None:
            raise ValueError("object_diameter='auto' needs instances_of (to measure objects)")
        first = np.asarray(probabilities_of(image), dtype=np.float32)
        diameter = median_diameter(instances_of(first))
    else:
        diameter = float(object_diameter)
    scale = 1.0 if diameter is None else rescale_factor(diameter, *trained)
    if scale == 1.0:
        probabilities = first if first is not None else probabilities_of(image)
        return np.asarray(probabilities, dtype=np.float32), 1.0, diameter
    magnified = probabilities_of(rescale_planes(image, scale, spatial_axes=spatial_axes))
    # (K, [Z,] Y', X') back to the image's Y and X; a stack's Z never changed
    y, x = spatial_axes
    shape = (*np.shape(magnified)[1:-2], image.shape[y], image.shape[x])
    return resize_probabilities(magnified, shape), scale, diameter


__all__ = [
    "SCALE_LIMITS",
    "diameter_range",
    "median_diameter",
    "predict_at_object_size",
    "rescale_factor",
    "rescale_planes",
    "resize_probabilities",
]
