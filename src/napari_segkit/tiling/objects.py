"""Objects in one call: class labels, probabilities and instances, at the model's scale.

:func:`predict_objects` is what the Predict widget, ``segkit predict
--object-diameter`` and scripts use when they want instances: it predicts with
:func:`~napari_segkit.tiling.prediction.predict`, optionally at the object size the
model was trained for (:mod:`napari_segkit.core.object_size`), and splits the objects
with the model's own post-processing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass
class ObjectPrediction:
    """What :func:`predict_objects` returns.

    Attributes
    ----------
    labels : ndarray, shape (*spatial)
        Class ids (argmax of the probabilities).
    probabilities : ndarray of float32, shape (K, *spatial)
    instances : ndarray of int32, shape (*spatial)
        0 = background, one id per object (per plane for a 2D model's stack; in 3D for
        a 3D model's).
    scale : float
        The magnification the image was predicted at (1.0: as it is).
    diameter : float or None
        The objects' diameter in the image, pixels: the one given, or the median of
        a first prediction's objects for ``object_diameter="auto"``; None when not
        asked for (or when the image holds no object).
    renormalized : bool
        The objects were too sparse for the model's percentile normalisation and the
        image was predicted again normalised to them (:func:`object_probabilities`).
    volumetric : bool
        The instances of a stack are 3D objects (a 3D model's), not ids per plane.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    instances: np.ndarray
    scale: float = 1.0
    diameter: float | None = None
    renormalized: bool = False
    volumetric: bool = False

    def describe(self) -> str:
        """One line for a log or a notification."""
        if self.volumetric or self.instances.ndim == 2:
            n = int(self.instances.max(initial=0))
        else:  # ids restart in each plane
            n = sum(int(plane.max(initial=0)) for plane in self.instances)
        size = "" if self.diameter is None else f", objects about {self.diameter:.1f} px across"
        how = "as it is" if self.scale == 1.0 else f"magnified {self.scale:.2f}x"
        sparse = ", normalised to its sparse objects" if self.renormalized else ""
        return f"{n} objects{size}; predicted {how}{sparse}"


def object_probabilities(
    model, image, *, renormalize_sparse: bool = True, **predict_options
) -> tuple[np.ndarray, bool]:
    """Class probabilities of an in-memory image, predicted again where its objects are
    too sparse for the model's percentile normalisation.

    A first prediction shows where the objects are; when they cover less of the image
    than the model's high percentile assumes and are far brighter than it,
    :func:`~napari_segkit.core.volume.sparse_object_normalization` re-anchors the
    normalisation on them and the image is predicted a second time. Images with a usual
    share of objects (all 544 of DSB2018's training images) are predicted once, as by
    ``predict``.

    Parameters
    ----------
    model : ModelFile
    image : ndarray
        As ``predict`` takes it (its `axes` and `color` among `predict_options`).
    renormalize_sparse : bool
        False: one prediction, as ``predict`` makes it. Also off when
        `predict_options` give a `normalization` of their own.
    **predict_options
        Passed to ``predict`` (not `output`).

    Returns
    -------
    probabilities : ndarray of float32, shape (K, *spatial)
        In [0, 1], also for ``prob_dtype="uint8"``.
    renormalized : bool
        Whether the second prediction was made (and returned).
    """
    from ..core.volume import Volume, sparse_object_normalization
    from .prediction import predict
    from .sink import labels_from_probabilities

    def probabilities_of(**options):
        probabilities = np.asarray(
            predict(model, image, output="probabilities", **options), dtype=np.float32
        )
        return (
            probabilities / 255.0 if probabilities.max(initial=0) > 1.0 + 1e-3 else probabilities
        )

    probabilities = probabilities_of(**predict_options)
    if not renormalize_sparse or predict_options.get("normalization", "model") != "model":
        return probabilities, False
    info = model.info
    volume = Volume(
        image,
        axes=predict_options.get("axes"),
        in_channels=info.in_channels,
        color=predict_options.get("color") or info.color,
    )
    stats = sparse_object_normalization(
        volume, info.normalization, labels_from_probabilities(probabilities) != 0
    )
    if stats is None:
        return probabilities, False
    return probabilities_of(**{**predict_options, "normalization": stats}), True


def predict_objects(
    model,
    image,
    *,
    object_diameter: float | str | None = None,
    axes: str | None = None,
    color: str | None = None,
    renormalize_sparse: bool = True,
    **predict_options,
) -> ObjectPrediction:
    """Class labels, probabilities and instances of `image`, in memory.

    Parameters
    ----------
    model : path or ModelFile
        A model file (its post-processing -- threshold, seed threshold, minimum size --
        makes the instances: ``ModelInfo.instance_options``).
    image : array or path
        ``(Y, X[, C])`` or a stack ``(Z, Y, X[, C])`` for a 2D model (as for
        :func:`~napari_segkit.tiling.prediction.predict`); read into memory.
    object_diameter : None, "auto" or float
        None: predict the image as it is. A number: the objects' diameter in pixels;
        "auto": estimated from a first prediction. Either way, an image whose objects
        lie outside the diameters the model was trained on (its file records them,
        ``ModelInfo.trained_diameters``) is magnified to bring them to the nearest edge
        of that range (by 1/3 to 3x), predicted, and the probabilities are resized back;
        the minimum object size follows the magnification. Images inside the range are
        predicted as they are (one prediction, even for "auto").
    axes, color
        As for ``predict``.
    renormalize_sparse : bool
        Predict again, normalised to the objects, an image whose objects are too sparse
        for the model's percentile normalisation (:func:`object_probabilities`; the
        result's ``renormalized`` says whether it happened). False: never.
    **predict_options
        Passed to ``predict`` (``tile_size``, ``overlap``, ``tta``, ``device``,
        ``tile_progress``, ``cancel``, ...); ``output``, ``out`` and ``client`` are not
        (the result is in memory).

    Returns
    -------
    ObjectPrediction

    Raises
    ------
    ValueError
        A rescaling asked of a model that records no trained diameters, a 3D model, or
        options for a zarr output.
    """
    from ..core.instances import instances_from_prediction
    from ..core.object_size import predict_at_object_size
    from ..core.volume import Volume
    from ..models import ModelFile, load_model
    from .sink import labels_from_probabilities

    refused = sorted({"output", "out", "client"} & set(predict_options))
    if refused:
        raise ValueError(
            f"predict_objects returns arrays in memory; it takes no {', '.join(refused)} "
            "(use predict for zarr outputs and clusters)"
        )
    if object_diameter is not None and not (
        object_diameter == "auto"
        or (isinstance(object_diameter, (int, float)) and object_diameter > 0)
    ):
        raise ValueError(
            "object_diameter must be None, 'auto' or a positive number of pixels, "
            f"got {object_diameter!r}"
        )
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if not isinstance(model, ModelFile):
        raise TypeError(f"model must be a model file or its path, got {type(model).__name__}")
    info = model.info
    trained = info.trained_diameters()
    if object_diameter is not None:
        if info.spatial_dims == 3:
            raise ValueError(
                "object_diameter is for 2D models; a 3D model resamples by voxel spacing "
                "(predict(..., spacing=..., resample=True))"
            )
        if trained is None:
            raise ValueError(
                f"the model{_named(model)} does not record the object sizes it was trained "
                "on (training['object_diameter'], written when training on instances), so "
                "it cannot be rescaled by object size; predict without object_diameter"
            )
    if isinstance(image, (str, os.PathLike)):
        from ..core.io import read_stack

        image = read_stack(image)
    color = color or info.color
    volume = Volume(image, axes=axes, in_channels=info.in_channels, color=color)
    array = np.asarray(volume.image)
    options = {"axes": volume.axes, "color": color, **predict_options}

    renormalized = []

    def probabilities_of(img):
        probabilities, again = object_probabilities(
            model, img, renormalize_sparse=renormalize_sparse, **options
        )
        renormalized.append(again)
        return probabilities

    first_pass = {}

    def instances_of(probabilities):  # the estimate's objects, kept: when the image is not
        # rescaled they are the final ones (the same probabilities, the same options)
        first_pass["instances"] = instances_from_prediction(
            probabilities, **info.instance_options()
        )
        return first_pass["instances"]

    if object_diameter is None:
        probabilities, scale, diameter = probabilities_of(array), 1.0, None
    else:
        probabilities, scale, diameter = predict_at_object_size(
            probabilities_of,
            array,
            spatial_axes=(volume.axes.index("Y"), volume.axes.index("X")),
            trained=trained,
            object_diameter=object_diameter,
            instances_of=instances_of,
        )
    instances = (
        first_pass["instances"]
        if scale == 1.0 and "instances" in first_pass
        else instances_from_prediction(probabilities, **info.instance_options(scale=scale))
    )
    labels = labels_from_probabilities(probabilities)
    # the last prediction is the one returned (a rescaled one follows the estimate's)
    return ObjectPrediction(
        labels,
        probabilities,
        instances,
        scale,
        diameter,
        renormalized[-1],
        volumetric=info.spatial_dims == 3,
    )


def _named(model) -> str:
    return f" '{model.path}'" if getattr(model, "path", None) else ""


__all__ = ["ObjectPrediction", "object_probabilities", "predict_objects"]
