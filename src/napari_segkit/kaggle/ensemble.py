"""Fold and test-time-augmentation ensembles, and the post-processing of their probabilities.

models = load_models(["fold0.safetensors", "fold1.safetensors"])
probs = ensemble_probabilities(models, image, tta="flips")   # (K, Y, X)
labels = postprocess(probs, threshold=0.5, min_area=20)
"""

from __future__ import annotations

import numpy as np


def load_models(models) -> list:
    """Model files (paths or ModelFile objects) -> ModelFile list, checked to agree.

    Parameters
    ----------
    models : path, ModelFile, or a list of them

    Returns
    -------
    list of ModelFile

    Raises
    ------
    ValueError
        No model, or models that differ in input channels or classes.
    """
    from ..models import ModelFile, load_model

    loaded = [m if isinstance(m, ModelFile) else load_model(m) for m in models]
    if not loaded:
        raise ValueError("give at least one model")
    first = loaded[0].info
    for m in loaded[1:]:
        if (m.info.in_channels, m.info.num_classes) != (first.in_channels, first.num_classes):
            raise ValueError(
                f"models disagree: {m.path} takes {m.info.in_channels} channel(s) / "
                f"{m.info.num_classes} classes, {loaded[0].path} "
                f"{first.in_channels} / {first.num_classes}"
            )
    return loaded


def ensemble_probabilities(
    models,
    image,
    *,
    tta: str | None = None,
    tile_size=None,
    overlap=None,
    device: str = "auto",
    renormalize_sparse: bool = True,
) -> np.ndarray:
    """Class probabilities ``(K, Y, X)`` averaged over `models` (e.g. the k folds).

    `image` is ``(Y, X)`` or ``(Y, X, C)``; each model predicts it tile by tile with
    its own normalisation, optionally with test-time augmentation ("flips", "d4").

    Parameters
    ----------
    models : list of path or ModelFile
        Checked to agree in channels and classes (:func:`load_models`).
    image : ndarray of shape (Y, X) or (Y, X, C)
    tta : {None, "flips", "d4"}
    tile_size, overlap : optional
        Default: each model file's own.
    device : str
    renormalize_sparse : bool
        Each model predicts again, normalised to the objects, an image whose objects are
        too sparse for its percentile normalisation
        (:func:`~napari_segkit.tiling.objects.object_probabilities`).

    Returns
    -------
    ndarray of float32, shape (K, Y, X)
    """
    from ..tiling.objects import object_probabilities

    total = None
    for model in load_models(models):
        p, _ = object_probabilities(
            model,
            image,
            renormalize_sparse=renormalize_sparse,
            tta=tta,
            tile_size=tile_size,
            overlap=overlap,
            device=device,
        )
        total = p if total is None else total + p
    return total / len(models)


def ensemble_at_object_size(
    models,
    image,
    *,
    object_diameter: float | str | None,
    tta: str | None = None,
    threshold: float = 0.5,
    seed_threshold: float = 0.7,
    min_size: int = 0,
) -> tuple[np.ndarray, float]:
    """:func:`ensemble_probabilities` at the object size the models were trained on.

    What ``predict_objects(..., object_diameter=...)`` does for one model, for a fold
    ensemble: an image whose objects lie outside the diameters the models were trained
    on (``ModelInfo.trained_diameters``) is rescaled to them, predicted, and the
    probabilities resized back (:mod:`napari_segkit.core.object_size`).

    Parameters
    ----------
    models : list of ModelFile
        From :func:`load_models`; the first model's recorded sizes are used (the folds
        of one ``train_kfold`` run record the same).
    image : ndarray of shape (Y, X) or (Y, X, C)
    object_diameter : None, "auto" or float
        None: as :func:`ensemble_probabilities`. A number: the objects' diameter in
        pixels; "auto": the median of a first prediction's instances.
    tta : {None, "flips", "d4"}
    threshold, seed_threshold, min_size
        The post-processing that makes the first prediction's instances for "auto"
        (:func:`~napari_segkit.core.instances.instances_from_prediction`).

    Returns
    -------
    probabilities : ndarray of float32, shape (K, Y, X)
    scale : float
        The magnification the image was predicted at (1.0: as it is); minimum object
        areas should be divided by its square.

    Raises
    ------
    ValueError
        A diameter for models that record no trained object sizes.
    """
    from ..core.instances import instances_from_prediction
    from ..core.object_size import predict_at_object_size

    image = np.asarray(image)
    if object_diameter is None:
        return ensemble_probabilities(models, image, tta=tta), 1.0
    trained = models[0].info.trained_diameters()
    if trained is None or models[0].info.spatial_dims != 2:
        raise ValueError(
            f"'{models[0].path}' does not record the object sizes it was trained on (2D "
            "models trained on instances do), so it cannot predict at its object size"
        )

    def instances_of(probabilities):
        return instances_from_prediction(
            probabilities, threshold=threshold, seed_threshold=seed_threshold, min_size=min_size
        )

    probabilities, scale, _ = predict_at_object_size(
        lambda img: ensemble_probabilities(models, img, tta=tta),
        image,
        spatial_axes=(0, 1),
        trained=trained,
        object_diameter=object_diameter,
        instances_of=instances_of,
    )
    return probabilities, scale


def postprocess(
    probabilities: np.ndarray, *, threshold: float = 0.5, min_area: int = 0
) -> np.ndarray:
    """Probabilities ``(K, Y, X)`` or ``(K, Z, Y, X)`` -> class labels ``(Y, X)`` or
    ``(Z, Y, X)`` (uint8/uint16).

    Binary models (K = 1 sigmoid, or K = 2): foreground where p(foreground) >=
    `threshold`. More classes: the arg-max class, kept where its probability is >=
    `threshold` (else background). Then connected components (per class) smaller
    than `min_area` pixels (voxels for a 3D model's ``(K, Z, Y, X)``) become background.

    Parameters
    ----------
    probabilities : ndarray of shape (K, Y, X) or (K, Z, Y, X)
    threshold : float
    min_area : int
        Pixels (voxels); 0 keeps everything.

    Returns
    -------
    ndarray of shape (Y, X) or (Z, Y, X)
        Class ids, uint8 (uint16 beyond 256 classes).

    Examples
    --------
    >>> p = np.array([[[0.9, 0.2], [0.6, 0.1]]], np.float32)   # K = 1 (sigmoid)
    >>> postprocess(p, threshold=0.5)
    array([[1, 0],
           [1, 0]], dtype=uint8)
    """
    from skimage.measure import label as components

    p = np.asarray(probabilities, np.float32)
    if p.ndim not in (3, 4):
        raise ValueError(f"probabilities must be (K, Y, X) or (K, Z, Y, X), got shape {p.shape}")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if p.shape[0] <= 2:
        labels = (p[-1] >= threshold).astype(np.uint8)
    else:
        labels = p.argmax(0).astype(np.uint8 if p.shape[0] <= 256 else np.uint16)
        labels[p.max(0) < threshold] = 0
    if min_area > 0:
        for c in np.unique(labels)[1:]:
            objects = components(labels == c, connectivity=1)
            small = np.bincount(objects.ravel()) < min_area
            small[0] = False  # not an object
            labels[small[objects]] = 0
    return labels


__all__ = ["ensemble_at_object_size", "ensemble_probabilities", "load_models", "postprocess"]
