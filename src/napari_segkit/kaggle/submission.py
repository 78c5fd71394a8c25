"""Kaggle submissions: one CSV row of run-length-encoded pixels per image, class or object.

    make_submission(["fold0.safetensors", "fold1.safetensors"], "test_images/",
                    "submission.csv", tta="flips", threshold=0.5)

A submission is a CSV with one row per image (or per class, or per object, as the
competition wants) holding the Kaggle run-length string of the predicted mask
(:mod:`napari_segkit.core.rle`). The CSV is written under a temporary name and
renamed when complete, so an interrupted run never leaves a truncated file that
looks finished.
"""

from __future__ import annotations

import csv
import os
import string
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..core.instances import instances_from_prediction
from ..core.io import SLICE_SUFFIXES, natural_key
from ..core.rle import RLEError, rle_decode, rle_encode
from .datasets import read_csv_rows, read_image
from .ensemble import ensemble_at_object_size, load_models, postprocess

#: the fields an id rule may use
ID_RULE_FIELDS = ("id", "class_id", "class_name")


def check_id_rule(id_rule: str) -> str:
    """Refuse an id rule that uses anything but the documented fields.

    Parameters
    ----------
    id_rule : str
        A ``str.format`` template such as ``"{id}_{class_id}"``.

    Returns
    -------
    str
        `id_rule`, unchanged.

    Raises
    ------
    ValueError
        Unknown fields (``{foo}``), attribute or index access (``{id.__class__}``),
        format specs, or a malformed template.

    Examples
    --------
    >>> check_id_rule("{id}_{class_name}")
    '{id}_{class_name}'
    """
    try:
        parts = list(string.Formatter().parse(id_rule))
    except ValueError as err:
        raise ValueError(f"id rule {id_rule!r} is not a valid template: {err}") from None
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in ID_RULE_FIELDS or spec or conversion:
            raise ValueError(
                f"id rule {id_rule!r} uses {{{field_name}}}: only "
                f"{', '.join('{' + f + '}' for f in ID_RULE_FIELDS)} are allowed"
            )
    return id_rule


def submission_rows(
    labels: np.ndarray,
    image_id: str,
    *,
    layout: str = "image",
    id_rule: str = "{id}",
    class_names=None,
    order: str = "F",
    instances: np.ndarray | None = None,
) -> list[list[str]]:
    """Rows ``[id, rle]`` for one predicted label image.

    layout : {"image", "class", "object"}
        "image": one row, the whole foreground. "class": one row per foreground
        class (ids from `id_rule`, e.g. ``"{id}_{class_name}"``). "object": one row
        per connected component (DSB2018 style); an image without any gets one row
        with an empty mask.
    id_rule : str
        Python format string with ``{id}``, ``{class_id}``, ``{class_name}``.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        Predicted class ids.
    image_id : str
    class_names : list of str, optional
        For ``{class_name}``.
    order : {"F", "C"}
        RLE pixel order.
    instances : ndarray of int, shape (Y, X), optional
        For ``layout="object"``: the objects (e.g. from
        :func:`~napari_segkit.core.instances.instances_from_prediction`, which splits
        touching objects); default: connected components of the foreground.

    Returns
    -------
    list of [str, str]
    """
    from skimage.measure import label as components

    check_id_rule(id_rule)
    if layout == "image":
        return [
            [
                id_rule.format(id=image_id, class_id=1, class_name="foreground"),
                rle_encode(labels > 0, order=order),
            ]
        ]
    if layout == "class":
        k = max(int(labels.max(initial=0)), len(class_names or ()) - 1, 1)
        names = list(class_names or [str(c) for c in range(k + 1)])
        return [
            [
                id_rule.format(id=image_id, class_id=c, class_name=names[c]),
                rle_encode(labels == c, order=order),
            ]
            for c in range(1, k + 1)
        ]
    if layout == "object":
        objects = instances if instances is not None else components(labels > 0, connectivity=1)
        rows = [
            [
                id_rule.format(id=image_id, class_id=1, class_name="foreground"),
                rle_encode(objects == n, order=order),
            ]
            for n in range(1, int(objects.max()) + 1)
        ]
        return rows or [[id_rule.format(id=image_id, class_id=1, class_name="foreground"), ""]]
    raise ValueError(f"layout must be 'image', 'class' or 'object', got {layout!r}")


def list_images(images) -> list[tuple[str, Path]]:
    """``(id, path)`` for a folder of images (``<id>.png``; DSB2018 ``<id>/images/<id>.png``)
    or a list of paths; ids are file stems, in natural order.

    Parameters
    ----------
    images : path or list of paths

    Returns
    -------
    list of (str, Path)
    """
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: '{folder}'")
        paths = [
            p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(SLICE_SUFFIXES)
        ]
        paths += [
            p / "images" / f"{p.name}.png"
            for p in folder.iterdir()
            if (p / "images" / f"{p.name}.png").is_file()
        ]
    else:
        paths = [Path(p) for p in images]
    if not paths:
        raise FileNotFoundError(f"no images found in {images}")
    return sorted(((_image_id(p), p) for p in paths), key=lambda t: natural_key(t[0]))


def _image_id(path: Path) -> str:
    """The file name without its image suffix (``a.b.png`` -> ``a.b``, ``x.ome.tif`` -> ``x``)."""
    name = path.name
    for suffix in sorted((".ome.tif", ".ome.tiff", *SLICE_SUFFIXES), key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def make_submission(
    models,
    images,
    out: str | os.PathLike,
    *,
    columns=("ImageId", "EncodedPixels"),
    layout: str = "image",
    id_rule: str = "{id}",
    tta: str | None = None,
    threshold: float = 0.5,
    min_area: int = 0,
    seed_threshold: float = 0.7,
    order: str = "F",
    overwrite: bool = False,
    object_diameter: float | str | None = None,
    progress=None,
) -> Path:
    """Predict every image with the ensemble of `models` and write a submission CSV.

    Parameters
    ----------
    models : list of model paths or ModelFile (probabilities are averaged)
    images : folder or list of image paths (ids: file stems)
    out : path of the CSV (written atomically; refused if it exists unless `overwrite`)
    columns : the two header names
    layout, id_rule : see :func:`submission_rows`
    tta, threshold, min_area : see :func:`ensemble_probabilities`, :func:`postprocess`
    seed_threshold : float
        Watershed seeds of a boundary model with ``layout="object"`` (see
        :func:`~napari_segkit.core.instances.instances_from_prediction`).
    order : RLE pixel order ("F" column-major, Kaggle's default; "C" row-major)
    object_diameter : None, "auto" or float
        Predict each image at the object size the models were trained on
        (:func:`~napari_segkit.kaggle.ensemble.ensemble_at_object_size`); the minimum
        area follows the magnification.
    progress : callable(done, total), optional

    Returns
    -------
    Path of the CSV.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"'{out}' already exists; pass overwrite=True (--overwrite) to replace it"
        )
    if len(columns) != 2:
        raise ValueError(f"columns must be two names (id, run-length), got {columns}")
    check_id_rule(id_rule)  # before any model is loaded or image predicted
    loaded = load_models(models)
    items = list_images(images)
    class_names = loaded[0].info.class_names
    rows = []
    post = {"threshold": threshold, "seed_threshold": seed_threshold, "min_size": min_area}
    for done, (image_id, path) in enumerate(items, 1):
        probs, scale = ensemble_at_object_size(
            loaded, read_image(path), object_diameter=object_diameter, tta=tta, **post
        )
        area = round(min_area / scale**2)  # the objects were that much larger when predicted
        labels = postprocess(probs, threshold=threshold, min_area=area)
        objects = None
        if layout == "object" and probs.shape[0] >= 3:  # a boundary class: split touching ones
            objects = instances_from_prediction(
                probs, threshold=threshold, seed_threshold=seed_threshold, min_size=area
            )
            labels = (objects > 0).astype(np.uint8)
        rows += submission_rows(
            labels,
            image_id,
            layout=layout,
            id_rule=id_rule,
            class_names=class_names,
            order=order,
            instances=objects,
        )
        if progress is not None:
            progress(done, len(items))
    write_csv(out, [list(columns), *rows])
    return out


def write_csv(path: Path, rows: list[list[str]]) -> None:
    """Write rows to `path` atomically (temporary name, then rename).

    Parameters
    ----------
    path : Path
        Its folder is created if needed.
    rows : list of list of str
        The header first.

    Returns
    -------
    None
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(rows)


#: the sidecar of a CSV written from a labels layer: ``<csv>.segkit.json``
SIDECAR_SUFFIX = ".segkit.json"


def write_csv_sidecar(csv_path, shapes: dict, *, layout: str, layer: str, stack: bool) -> Path:
    """Record what a labels CSV cannot say beside it: image sizes, layout, layer name.

    Parameters
    ----------
    csv_path : path
        The CSV (``<csv>.segkit.json`` is written next to it, atomically).
    shapes : dict
        ``{image id: (height, width)}`` (ids as in the CSV, before any class suffix).
    layout : {"image", "class"}
        One row per image, or per class (ids ``<id>_<class>``).
    layer : str
        The labels layer's name.
    stack : bool
        The ids are the planes ``<layer>_<z>`` of a stack.

    Returns
    -------
    Path
        The sidecar.
    """
    import json

    path = Path(str(csv_path) + SIDECAR_SUFFIX)
    content = {
        "format": "napari-segkit-labels-csv",
        "layout": layout,
        "layer": layer,
        "stack": bool(stack),
        "shapes": {str(k): [int(v) for v in shape] for k, shape in shapes.items()},
    }
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(content, indent=1))
    return path


def read_labels_csv(csv_path) -> tuple[str, np.ndarray] | None:
    """A labels CSV written with a sidecar, back to its labels; None without a sidecar.

    Parameters
    ----------
    csv_path : path

    Returns
    -------
    (layer name, ndarray of uint8/uint16, (Y, X) or (Z, Y, X)) or None
        Class ids for the "class" layout, a 0/1 mask for the "image" layout.
    """
    import json

    sidecar = Path(str(csv_path) + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return None
    meta = json.loads(sidecar.read_text())
    shapes = {k: tuple(v) for k, v in meta["shapes"].items()}
    planes = {}
    if meta["layout"] == "class":  # rows "<id>_<class>": one mask per class
        planes = {k: np.zeros(shape, np.uint16) for k, shape in shapes.items()}
        for line, row in enumerate(read_csv_rows(csv_path)[1:], 2):
            base, _, c = row[0].rpartition("_") if row else ("", "", "")
            if base not in shapes or not c.isdigit():
                raise ValueError(f"'{csv_path}', line {line}: id {row[:1]} is not <image>_<class>")
            mask = rle_decode(row[1] if len(row) > 1 else "", shapes[base])
            planes[base][mask > 0] = int(c)
    else:
        masks = read_submission(csv_path, shapes)
        planes = {k: masks.get(k, np.zeros(shape, np.uint8)) for k, shape in shapes.items()}
    ids = list(shapes)
    data = np.stack([planes[i] for i in ids]) if meta.get("stack") else planes[ids[0]]
    if data.max(initial=0) < 256:
        data = data.astype(np.uint8)
    return meta.get("layer", Path(csv_path).stem), data


def read_submission(
    path: str | os.PathLike, shapes: dict, *, order: str = "F", instances: bool = False
) -> dict:
    """A submission CSV back to masks, or to instance labels (one object per row).

    Parameters
    ----------
    path : path
        A submission CSV (header, then ``id, rle`` rows).
    shapes : dict
        ``{id: (height, width)}``.
    order : {"F", "C"}
    instances : bool
        False: the rows of an id are merged into one mask. True: each row is an object
        (DSB2018's layout) numbered 1, 2, ... in row order; objects that overlap are
        refused, as the competition refused them.

    Returns
    -------
    dict
        ``{id: ndarray, shape (height, width)}``: uint8 masks, or int32 instance labels.

    Raises
    ------
    ValueError
        An id without a known shape, a bad run-length string, or (instances) two
        objects sharing pixels.
    """
    masks = {}
    for line, row in enumerate(read_csv_rows(path)[1:], 2):
        if not row:
            continue
        image_id, rle = row[0], row[1] if len(row) > 1 else ""
        if image_id not in shapes:
            raise ValueError(f"'{path}', line {line}: id {image_id!r} has no known shape")
        try:
            mask = rle_decode(rle, shapes[image_id], order=order)
        except RLEError as err:
            raise RLEError(f"'{path}', line {line} (id {image_id}): {err}") from None
        if not instances:
            masks[image_id] = masks[image_id] | mask if image_id in masks else mask
            continue
        labels = masks.setdefault(image_id, np.zeros(shapes[image_id], np.int32))
        if not mask.any():
            continue  # an image without objects: one row with an empty run-length string
        if (labels[mask > 0] > 0).any():
            raise ValueError(
                f"'{path}', line {line} (id {image_id}): this object overlaps an earlier one"
            )
        labels[mask > 0] = labels.max() + 1
    return masks


__all__ = [
    "ID_RULE_FIELDS",
    "check_id_rule",
    "list_images",
    "make_submission",
    "read_submission",
    "submission_rows",
    "write_csv",
]
