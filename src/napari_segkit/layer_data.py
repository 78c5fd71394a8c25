"""napari layer-data tuples ``(data, kwargs, layer_type)`` from results -- without napari.

The widgets add these to the viewer (``napari.layers.Layer.create(*t)``); in the
napari console the same tuples work with ``viewer._add_layer_from_data(*t)`` or by
hand (``viewer.add_labels(data, **kwargs)``). Keeping them napari-free lets scripts
and tests build exactly what the widgets show.
"""

from __future__ import annotations

import numpy as np


def class_colormap(class_colors: list[str]) -> dict:
    """``{class id: "#rrggbb"}`` for a napari Labels layer; background stays transparent."""
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
    """
    from .core.weight_maps import unet_weight_map

    weights = unet_weight_map(
        np.asarray(labels), w0=w0, sigma=sigma, class_weights=class_weights, kind=kind
    )
    kwargs = {
        "name": f"{name} border weights (w0={w0:g}, sigma={sigma:g})",
        "colormap": "turbo",
        "contrast_limits": (0.0, float(max(weights.max(), 1.0))),
    }
    if scale is not None:
        kwargs["scale"] = tuple(scale)
    return weights, kwargs, "image"
