"""Touching objects: three-class training targets and instances from a semantic prediction.

A semantic model that only knows "nucleus" merges touching nuclei. Trained on three
classes -- background, object interior, object boundary (:func:`boundary_target`) --
it learns where one object ends and the next begins; :func:`instances_from_prediction`
then grows one instance from each confident interior region (a seeded watershed,
scikit-image's) inside the predicted foreground. Models without a boundary class get
plain connected components.
"""

from __future__ import annotations

import numpy as np

#: class ids of the three-class target
BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def boundary_target(
    instances: np.ndarray, *, width: int = 1, volumetric: bool = False
) -> np.ndarray:
    """Three classes from instance labels: background 0, interior 1, boundary 2.

    Parameters
    ----------
    instances : ndarray of int, shape (Y, X) or (Z, Y, X)
        0 = background, one id per object (a binary mask is split into connected
        components first).
    width : int
        Boundary thickness in pixels, inside each object.
    volumetric : bool
        A stack's objects are 3D (a 3D model's targets): boundaries also where objects
        meet, or end, in z. Default: plane by plane.

    Returns
    -------
    ndarray of uint8, same shape
        Every object pixel within `width` of another object or the background is 2,
        the rest of the object 1. Stacks are processed plane by plane, unless
        `volumetric`.

    Examples
    --------
    >>> two = np.zeros((4, 6), int); two[1:3, 1:3] = 1; two[1:3, 3:5] = 2
    >>> boundary_target(two)
    array([[0, 0, 0, 0, 0, 0],
           [0, 2, 2, 2, 2, 0],
           [0, 2, 2, 2, 2, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    instances = np.asarray(instances)
    if instances.dtype.kind not in "biu":
        raise ValueError(f"instances must be integer labels, got dtype {instances.dtype}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if instances.ndim not in (2, 3):
        raise ValueError(f"instances must be (Y, X) or (Z, Y, X), got shape {instances.shape}")
    if instances.ndim == 3 and not volumetric:
        return np.stack([boundary_target(plane, width=width) for plane in instances])
    if instances.max(initial=0) <= 1:
        instances = ndi.label(instances > 0)[0]
    edge = find_boundaries(instances, mode="inner")
    if width > 1:
        edge = ndi.binary_dilation(edge, iterations=width - 1) & (instances > 0)
    target = np.where(instances > 0, INTERIOR, BACKGROUND).astype(np.uint8)
    target[edge & (instances > 0)] = BOUNDARY
    return target


def instances_from_prediction(
    probabilities,
    *,
    threshold: float = 0.5,
    seed_threshold: float = 0.7,
    min_size: int = 0,
    fill_holes: bool = True,
    watershed: bool | None = None,
    volumetric: bool = False,
) -> np.ndarray:
    """Instance labels from class probabilities, plane by plane or in 3D.

    Parameters
    ----------
    probabilities : array of shape (K, Y, X) or (K, Z, Y, X)
        numpy, dask or zarr. K = 3 (background, interior, boundary): seeded watershed;
        K = 1 (sigmoid) or 2: connected components of the foreground.
    threshold : float
        Foreground where ``1 - p(background) >= threshold``.
    seed_threshold : float
        Seeds: connected regions where ``p(interior) >= seed_threshold`` (K = 3). A
        foreground region that holds no seed becomes an object of its own.
    min_size : int
        Objects smaller than this many pixels are dropped.
    fill_holes : bool
        Fill holes inside each object.
    watershed : bool, optional
        Split touching objects with the seeded watershed (needs K >= 3: class 1 is the
        interior, class 2 the boundary). Default: whenever K >= 3. False: connected
        components of the foreground (any class but 0) -- for a multi-class model not
        trained on boundary targets.
    volumetric : bool
        A stack's objects in 3D (a 3D model's, or to compare with 3D instance labels):
        the whole ``(K, Z, Y, X)`` is read into memory and labelled, or flooded by the
        watershed, in 3D (face connectivity). Default: plane by plane.

    Returns
    -------
    ndarray of int32, shape (Y, X) or (Z, Y, X)
        0 = background, 1..N; for a stack 1..N per plane, unless `volumetric`. Plane by
        plane, a stack is read one plane at a time, and each plane is processed whole,
        so objects crossing the chunks of a dask or zarr array are never cut (3D objects
        are not linked across planes).
    """
    k = probabilities.shape[0]
    if probabilities.ndim == 4 and not volumetric:
        return np.stack(
            [
                instances_from_prediction(
                    np.asarray(probabilities[:, z]),
                    threshold=threshold,
                    seed_threshold=seed_threshold,
                    min_size=min_size,
                    fill_holes=fill_holes,
                    watershed=watershed,
                )
                for z in range(probabilities.shape[1])
            ]
        )
    if probabilities.ndim not in (3, 4):
        raise ValueError(
            f"probabilities must be (K, Y, X) or (K, Z, Y, X), got {probabilities.shape}"
        )
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.max(initial=0) > 1.0 + 1e-3:  # uint8-encoded (p * 255)
        probs = probs / 255.0
    foreground = probs[0] >= threshold if k == 1 else (1.0 - probs[0]) >= threshold
    if k >= 3 and watershed is not False:
        labels = _watershed(probs, foreground, seed_threshold)
    else:
        from scipy import ndimage as ndi

        labels = ndi.label(foreground)[0]
    return _clean(labels, min_size=min_size, fill_holes=fill_holes)


def _watershed(probs: np.ndarray, foreground: np.ndarray, seed_threshold: float) -> np.ndarray:
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    seeds, n = ndi.label(probs[INTERIOR] >= seed_threshold)
    # flood from the seeds over the interior probability's valleys (the boundaries)
    labels = watershed(-probs[INTERIOR], markers=seeds, mask=foreground)
    # a foreground region without any seed (a small or faint object) is still an object
    orphans, n_orphans = ndi.label(foreground & (labels == 0))
    labels[orphans > 0] = orphans[orphans > 0] + n
    return labels


def _clean(labels: np.ndarray, *, min_size: int, fill_holes: bool) -> np.ndarray:
    from scipy import ndimage as ndi
    from skimage.measure import regionprops

    if min_size > 1:  # by pixel counts (scikit-image renamed its parameter in 0.26)
        small = np.bincount(labels.ravel()) < min_size
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    if fill_holes:
        for region in regionprops(labels):
            box = region.slice
            filled = ndi.binary_fill_holes(labels[box] == region.label)
            labels[box][filled & (labels[box] == 0)] = region.label
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)[0].astype(np.int32)


__all__ = ["BACKGROUND", "BOUNDARY", "INTERIOR", "boundary_target", "instances_from_prediction"]
