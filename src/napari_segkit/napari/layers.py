"""napari layer-data tuples ``(data, kwargs, layer_type)`` -- the one place they are built.

The reader, the sample data and the widgets return or add these
(``napari.layers.Layer.create(*t)``); in the napari console the same tuples work by
hand (``viewer.add_labels(data, **kwargs)``). This module never imports napari, so
scripts and tests build exactly what the viewer shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: words in a file name that make an integer image open as a Labels layer
LABEL_WORDS = ("label", "mask", "annot", "seg")


def class_colormap(class_colors: list[str]) -> dict:
    """``{class id: "#rrggbb"}`` for a napari Labels layer; background stays transparent.

    Parameters
    ----------
    class_colors : list of str
        ``"#rrggbb"`` per class id.

    Returns
    -------
    dict
        For ``Labels(colormap=...)``: ``{None: "transparent", 0: "transparent", 1: ..., ...}``.

    Examples
    --------
    >>> class_colormap(["#000000", "#ff0000"])
    {None: 'transparent', 0: 'transparent', 1: '#ff0000'}
    """
    colormap = {None: "transparent", 0: "transparent"}
    colormap.update({i: c for i, c in enumerate(class_colors) if i > 0})
    return colormap


def prediction_layers(
    labels,
    probabilities=None,
    *,
    class_names: list[str],
    class_colors: list[str],
    name: str,
    scale=None,
    per_class: bool = False,
) -> list[tuple]:
    """Layers for one prediction.

    Parameters
    ----------
    labels : array of int, shape (*spatial)
        Class ids (numpy, dask or zarr: lazy data stays lazy).
    probabilities : array, shape (K, *spatial), optional
        One image layer per class (``"<name> p(<class>)"``), colormap magma, 0..1
        (0..255 for uint8 probabilities).
    class_names, class_colors : one per class id
    name : base layer name
    scale : spatial scale of the input layer
    per_class : bool
        Also one Labels layer per foreground class (value 1 where predicted).

    Returns
    -------
    list of (data, kwargs, "labels" | "image")
    """
    class_names = list(class_names) or [f"class {i}" for i in range(2)]
    base = {"scale": tuple(scale)} if scale is not None else {}
    features = {"index": list(range(len(class_names))), "class": list(class_names)}
    layers = [
        (
            labels,
            {
                **base,
                "name": f"{name} labels",
                "features": features,
                "colormap": class_colormap(class_colors),
            },
            "labels",
        )
    ]
    if per_class:
        for k in range(1, len(class_names)):
            mask = labels == k  # lazy for dask input
            layers.append(
                (
                    mask.astype(np.uint8),
                    {
                        **base,
                        "name": f"{name} {class_names[k]}",
                        "colormap": {None: "transparent", 0: "transparent", 1: class_colors[k]},
                    },
                    "labels",
                )
            )
    if probabilities is not None:
        top = 255 if np.dtype(probabilities.dtype) == np.uint8 else 1.0
        for k, class_name in enumerate(class_names[: probabilities.shape[0]]):
            layers.append(
                (
                    probabilities[k],
                    {
                        **base,
                        "name": f"{name} p({class_name})",
                        "colormap": "magma",
                        "contrast_limits": (0, top),
                        "blending": "additive",
                        "opacity": 0.5,  # additive at full strength washes the image out
                        "visible": k > 0,
                    },
                    "image",
                )
            )
    return layers


def model_prediction_layers(
    labels, info, probabilities=None, *, name: str, scale=None, per_class: bool = False
) -> list[tuple]:
    """:func:`prediction_layers` with the class names and colours of a model file.

    `info` is a :class:`~napari_segkit.models.ModelInfo` (``load_model(path).info``);
    a binary (sigmoid) model is shown with two classes, unnamed classes as "class i".

    Parameters
    ----------
    labels : array of int, shape (*spatial)
    info : ModelInfo
    probabilities : array of shape (K, *spatial), optional
    name : str
    scale : sequence of float, optional
    per_class : bool

    Returns
    -------
    list of (data, kwargs, "labels" | "image")
        As :func:`prediction_layers`.
    """
    k = max(info.num_classes, 2)
    names = (list(info.class_names) or [f"class {i}" for i in range(k)])[:k]
    return prediction_layers(
        labels,
        probabilities,
        class_names=names,
        class_colors=list(info.class_colors)[:k],
        name=name,
        scale=scale,
        per_class=per_class,
    )


def instances_layer(instances, *, name: str, scale=None) -> tuple:
    """Instance labels (one id per object) as a labels layer tuple.

    Parameters
    ----------
    instances : array of int, shape (*spatial)
        0 background, 1..N objects (e.g. from
        :func:`~napari_segkit.core.instances.instances_from_prediction`).
    name : str
        Base layer name (" instances" is appended).
    scale : sequence of float, optional

    Returns
    -------
    (data, kwargs, "labels")
    """
    kwargs = {"name": f"{name} instances"}
    if scale is not None:
        kwargs["scale"] = tuple(scale)
    return instances, kwargs, "labels"


def weight_map_layer(
    labels,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights=None,
    kind: str = "auto",
    name: str = "labels",
    scale=None,
) -> tuple:
    """The U-Net border weight map of `labels` as an image layer tuple.

    `labels`: ``(Y, X)`` or ``(Z, Y, X)`` instances or semantic mask (see
    :func:`~napari_segkit.core.weight_maps.unet_weight_map`). Colormap "turbo" from 0
    to ``max(w)``, so the separating borders (high weight) stand out.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
    w0, sigma : float
        Border weight and width (pixels).
    class_weights : optional
        As for ``unet_weight_map``.
    kind : {"auto", "instances", "semantic"}
    name : str
        Base layer name.
    scale : sequence of float, optional

    Returns
    -------
    (ndarray of float32, dict, "image")
    """
    from ..core.weight_maps import unet_weight_map

    weights = unet_weight_map(
        np.asarray(labels), w0=w0, sigma=sigma, class_weights=class_weights, kind=kind
    )
    kwargs = {
        "name": f"{name} border weights (w0={w0:g}, sigma={sigma:g})",
        "colormap": "turbo",
        "contrast_limits": (0.0, float(max(weights.max(), 1.0))),
        "opacity": 0.6,  # over the image, not hiding it
    }
    if scale is not None:
        kwargs["scale"] = tuple(scale)
    return weights, kwargs, "image"


def sample_layers(sample, name: str) -> list[tuple]:
    """Image, semantic and instance labels of a bundled sample (labels hidden).

    Parameters
    ----------
    sample : SyntheticSample
        ``image``, ``semantic`` and ``instances`` arrays of one shape.
    name : str
        Base layer name.

    Returns
    -------
    list of (data, kwargs, "image" | "labels")
    """
    return [
        (sample.image, {"name": name, "contrast_limits": (0, int(sample.image.max()))}, "image"),
        (sample.semantic, {"name": f"{name} semantic labels", "visible": False}, "labels"),
        (sample.instances, {"name": f"{name} instance labels", "visible": False}, "labels"),
    ]


def stack_layer(stack) -> tuple:
    """One layer tuple for a :class:`~napari_segkit.core.io.Stack`.

    Integer data whose file name contains one of :data:`LABEL_WORDS` becomes Labels;
    uint8 with 3 or 4 trailing channels an RGB image; other channels one image layer
    each (``channel_axis``); the rest an image with contrast limits from one plane.

    Parameters
    ----------
    stack : Stack
        ``data`` (numpy or dask, lazy data stays lazy), ``axes``, ``scale``, ``path``.

    Returns
    -------
    (data, kwargs, "image" | "labels")
    """
    name = Path(stack.path).name.split(".")[0] or "image"
    data = stack.data
    kwargs = {"name": name, "metadata": {"segkit_path": stack.path, **stack.metadata}}
    is_labels = np.dtype(data.dtype).kind in "iu" and any(w in name.lower() for w in LABEL_WORDS)
    if is_labels:
        kwargs["scale"] = stack.spatial_scale
        return data, kwargs, "labels"
    if stack.axes.endswith("C"):
        n_channels = data.shape[-1]
        if n_channels in (3, 4) and np.dtype(data.dtype) == np.uint8:
            kwargs.update(rgb=True, scale=stack.spatial_scale)
            return data, kwargs, "image"
        kwargs.update(channel_axis=data.ndim - 1, scale=stack.spatial_scale)
        kwargs["name"] = [f"{name} [ch{i}]" for i in range(n_channels)]
        return data, kwargs, "image"
    kwargs["scale"] = stack.scale
    kwargs["contrast_limits"] = sample_contrast_limits(data)
    return data, kwargs, "image"


def sample_contrast_limits(data) -> tuple[float, float]:
    """Contrast limits from the middle plane only (reads at most one slice of a lazy volume).

    Parameters
    ----------
    data : array of shape (Y, X) or (Z, Y, X)

    Returns
    -------
    (float, float)
        The 0.5th and 99.8th percentiles of the plane; ``(0, 1)`` for an empty or
        non-finite plane, and never an empty range.

    Examples
    --------
    >>> sample_contrast_limits(np.zeros((3, 4, 4)))
    (0.0, 1.0)
    """
    plane = data[data.shape[0] // 2] if data.ndim == 3 else data
    plane = np.asarray(plane)
    lo, hi = (float(v) for v in np.percentile(plane, (0.5, 99.8))) if plane.size else (0.0, 1.0)
    if not np.isfinite([lo, hi]).all():
        lo, hi = 0.0, 1.0
    return (lo, hi if hi > lo else lo + 1.0)


def annotated_image_layers(samples, *, max_name: int = 12) -> list[tuple]:
    """An image layer and a Labels layer per annotated sample (a Kaggle CSV's images).

    Parameters
    ----------
    samples : list of Sample
        ``id``, ``image`` ((Y, X) or (Y, X, C) RGB), ``labels`` and optional ``instances``.
    max_name : int
        Layer names are the ids cut to this many characters.

    Returns
    -------
    list of (data, kwargs, "image" | "labels")
    """
    layers = []
    for sample in samples:
        name = sample.id[:max_name]
        layers.append((sample.image, {"name": name, "rgb": sample.image.ndim == 3}, "image"))
        labels = sample.instances if sample.instances is not None else sample.labels
        layers.append((labels, {"name": f"{name} masks"}, "labels"))
    return layers


def multiscale_layers(image: dict, name: str) -> list[tuple]:
    """Layers of an OME-Zarr image read by :func:`~napari_segkit.core.io.read_multiscale`.

    Parameters
    ----------
    image : dict
        ``levels``, ``axes``, ``scale`` and ``labels`` as that function returns them.
    name : str
        Base layer name.

    Returns
    -------
    list of (data, kwargs, "image" | "labels")
        One multiscale image layer (one per channel when there is a ``C`` axis) and one
        multiscale Labels layer per label image, with its colours and class names.
    """
    axes, levels = image["axes"], image["levels"]
    spatial = [s for a, s in zip(axes, image["scale"], strict=True) if a in "ZYX"]
    kwargs = {"name": name, "scale": spatial, "multiscale": len(levels) > 1}
    smallest = levels[-1]
    if "C" in axes:
        kwargs["channel_axis"] = axes.index("C")
        kwargs["name"] = [f"{name} [ch{i}]" for i in range(levels[0].shape[axes.index("C")])]
    else:
        kwargs["contrast_limits"] = sample_contrast_limits(smallest)
    layers = [(levels if len(levels) > 1 else levels[0], kwargs, "image")]
    for label_name, label in image["labels"].items():
        data = label["levels"] if len(label["levels"]) > 1 else label["levels"][0]
        colormap = {None: "transparent", **label["colors"]}
        values = sorted(label["classes"])
        layers.append(
            (
                data,
                {
                    "name": f"{name} {label_name}",
                    "scale": spatial,
                    "multiscale": len(label["levels"]) > 1,
                    "colormap": colormap,
                    "features": {"index": values, "class": [label["classes"][v] for v in values]},
                },
                "labels",
            )
        )
    return layers


def prediction_output_layers(group_path, arrays: dict, name: str) -> list[tuple]:
    """Layers of a plain zarr prediction output: ``labels`` as Labels, probabilities as images.

    Parameters
    ----------
    group_path : path
        The output (for the layer names).
    arrays : dict
        ``{"labels": array or None, "probabilities": array of shape (K, ...) or None}``.
    name : str

    Returns
    -------
    list of (data, kwargs, "labels" | "image")
    """
    layers = []
    if arrays.get("labels") is not None:
        layers.append((arrays["labels"], {"name": f"{name} labels"}, "labels"))
    probs = arrays.get("probabilities")
    if probs is not None:
        top = 255 if np.dtype(probs.dtype) == np.uint8 else 1.0
        for k in range(probs.shape[0]):
            layers.append(
                (
                    probs[k],
                    {
                        "name": f"{name} p(class {k})",
                        "colormap": "magma",
                        "contrast_limits": (0, top),
                        "opacity": 0.6,
                        "visible": k > 0,
                    },
                    "image",
                )
            )
    return layers


__all__ = [
    "LABEL_WORDS",
    "annotated_image_layers",
    "class_colormap",
    "instances_layer",
    "model_prediction_layers",
    "multiscale_layers",
    "prediction_output_layers",
    "prediction_layers",
    "sample_contrast_limits",
    "sample_layers",
    "stack_layer",
    "weight_map_layer",
]
