"""Competition plumbing: fold/TTA ensembles, post-processing, submissions, threshold tuning.

    models = [load_model(p) for p in ("fold0.safetensors", "fold1.safetensors")]
    make_submission(models, "test_images/", "submission.csv", tta="flips", threshold=0.5)

A submission is a CSV with one row per image (or per class, or per object, as the
competition wants) holding the Kaggle run-length string of the predicted mask
(:mod:`napari_segkit.core.rle`). The CSV is written under a temporary name and
renamed when complete, so an interrupted run never leaves a truncated file that
looks finished.
"""

from __future__ import annotations

import csv
import itertools
import os
import uuid
from pathlib import Path

import numpy as np

from .core.competition_metrics import average_precision, dice_score
from .core.datasets import read_image
from .core.io import SLICE_SUFFIXES, natural_key
from .core.rle import rle_decode, rle_encode

METRICS = {"dice": dice_score, "map": average_precision}


def load_models(models) -> list:
    """Model files (paths or ModelFile objects) -> ModelFile list, checked to agree."""
    from .models import ModelFile, load_model

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
    models, image, *, tta: str | None = None, tile_size=None, overlap=None, device: str = "auto"
) -> np.ndarray:
    """Class probabilities ``(K, Y, X)`` averaged over `models` (e.g. the k folds).

    `image` is ``(Y, X)`` or ``(Y, X, C)``; each model predicts it tile by tile with
    its own normalisation, optionally with test-time augmentation ("flips", "d4").
    """
    from .tiling import predict

    total = None
    for model in models:
        p = predict(
            model,
            image,
            output="probabilities",
            tta=tta,
            tile_size=tile_size,
            overlap=overlap,
            device=device,
        ).astype(np.float32)
        total = p if total is None else total + p
    return total / len(models)


def postprocess(
    probabilities: np.ndarray, *, threshold: float = 0.5, min_area: int = 0
) -> np.ndarray:
    """Probabilities ``(K, Y, X)`` -> class labels ``(Y, X)`` (uint8/uint16).

    Binary models (K = 1 sigmoid, or K = 2): foreground where p(foreground) >=
    `threshold`. More classes: the arg-max class, kept where its probability is >=
    `threshold` (else background). Then connected components (per class) smaller
    than `min_area` pixels become background.
    """
    from skimage.measure import label as components

    p = np.asarray(probabilities, np.float32)
    if p.ndim != 3:
        raise ValueError(f"probabilities must be (K, Y, X), got shape {p.shape}")
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


def submission_rows(
    labels: np.ndarray,
    image_id: str,
    *,
    layout: str = "image",
    id_rule: str = "{id}",
    class_names=None,
    order: str = "F",
) -> list[list[str]]:
    """Rows ``[id, rle]`` for one predicted label image.

    layout : {"image", "class", "object"}
        "image": one row, the whole foreground. "class": one row per foreground
        class (ids from `id_rule`, e.g. ``"{id}_{class_name}"``). "object": one row
        per connected component (DSB2018 style); an image without any gets one row
        with an empty mask.
    id_rule : str
        Python format string with ``{id}``, ``{class_id}``, ``{class_name}``.
    """
    from skimage.measure import label as components

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
        objects = components(labels > 0, connectivity=1)
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
    or a list of paths; ids are file stems, in natural order."""
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
    order: str = "F",
    overwrite: bool = False,
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
    order : RLE pixel order ("F" column-major, Kaggle's default; "C" row-major)
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
    loaded = load_models(models)
    items = list_images(images)
    class_names = loaded[0].info.class_names
    rows = []
    for done, (image_id, path) in enumerate(items, 1):
        probs = ensemble_probabilities(loaded, read_image(path), tta=tta)
        labels = postprocess(probs, threshold=threshold, min_area=min_area)
        rows += submission_rows(
            labels, image_id, layout=layout, id_rule=id_rule, class_names=class_names, order=order
        )
        if progress is not None:
            progress(done, len(items))
    write_csv(out, [list(columns), *rows])
    return out


def write_csv(path: Path, rows: list[list[str]]) -> None:
    """Write rows to `path` atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_submission(path: str | os.PathLike, shapes: dict, *, order: str = "F") -> dict:
    """A submission CSV back to masks: ``{id: uint8 (Y, X)}`` (rows of one id are merged).

    `shapes` maps each id to its ``(height, width)``.
    """
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        masks = {}
        for row in reader:
            if not row:
                continue
            image_id, rle = row[0], row[1] if len(row) > 1 else ""
            if image_id not in shapes:
                raise KeyError(f"'{path}' has id {image_id!r} with no known shape")
            mask = rle_decode(rle, shapes[image_id], order=order)
            masks[image_id] = masks[image_id] | mask if image_id in masks else mask
    return masks


def tune_postprocessing(
    models,
    images,
    labels,
    *,
    metric: str = "dice",
    thresholds=(0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7),
    min_areas=(0, 10, 25, 50, 100),
    tta: str | None = None,
    progress=None,
) -> dict:
    """Grid-search the threshold and minimum object area that maximise `metric`.

    Probabilities are predicted once per image; every (threshold, min_area) pair
    is then scored on all images (mean of the per-image metric, foreground vs
    background: "dice" per image, or "map", the DSB2018 mean average precision).

    Returns
    -------
    dict
        ``{"best": {"threshold", "min_area", "score"}, "table": [...same, per pair...]}``,
        the table sorted best first.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    images, labels = list(images), list(labels)
    if len(images) != len(labels) or not images:
        raise ValueError(
            f"need equally many images and labels, got {len(images)} and {len(labels)}"
        )
    loaded = load_models(models)
    score = METRICS[metric]
    probs = []
    for done, image in enumerate(images, 1):
        probs.append(ensemble_probabilities(loaded, np.asarray(image), tta=tta))
        if progress is not None:
            progress(done, len(images))
    table = []
    for threshold, min_area in itertools.product(thresholds, min_areas):
        scores = [
            score(
                np.asarray(truth) > 0, postprocess(p, threshold=threshold, min_area=min_area) > 0
            )
            for p, truth in zip(probs, labels, strict=False)
        ]
        table.append(
            {
                "threshold": float(threshold),
                "min_area": int(min_area),
                "score": float(np.mean(scores)),
            }
        )
    table.sort(key=lambda row: -row["score"])
    return {"best": table[0], "table": table, "metric": metric}
