"""Threshold, seed-threshold and minimum-area search on labelled images (``segkit tune``)."""

from __future__ import annotations

import itertools

import numpy as np

from ..config import TUNE_METRICS, TUNE_MIN_AREAS, TUNE_SEED_THRESHOLDS, TUNE_THRESHOLDS
from .ensemble import ensemble_probabilities, load_models, postprocess
from .metrics import average_precision, dice_score

#: per-image metrics the search can maximise (names: config.TUNE_METRICS)
METRICS = dict(zip(TUNE_METRICS, (dice_score, average_precision), strict=True))


def tune_postprocessing(
    models,
    images,
    labels,
    *,
    metric: str = "dice",
    thresholds=TUNE_THRESHOLDS,
    min_areas=TUNE_MIN_AREAS,
    seed_thresholds=TUNE_SEED_THRESHOLDS,
    tta: str | None = None,
    assignment=None,
    progress=None,
) -> dict:
    """Grid-search the post-processing that maximises `metric` (mean over images).

    Probabilities are predicted once per image; every grid point is then scored on
    all images. "dice": foreground Dice per image. "map": the DSB2018 mean average
    precision of instances -- for a boundary model (3 classes) the watershed's
    instances (:func:`~napari_segkit.core.instances.instances_from_prediction`), so
    the seed threshold is searched too; otherwise connected components. With
    instance labels as truth, objects are scored as they are; binary truth is split
    into connected components.

    Parameters
    ----------
    models : path, ModelFile or list of them
        Several are averaged (fold ensemble).
    images : list of ndarray
        Each ``(Y, X)`` or ``(Y, X, C)``.
    labels : list of ndarray
        Ground truth ``(Y, X)`` each: a mask, class ids, or (for "map") instance ids.
    metric : {"dice", "map"}
    thresholds, min_areas, seed_thresholds : sequences
        The grid (seed thresholds only for boundary models and "map").
    tta : {None, "flips", "d4"}
    assignment : list of list of int, optional
        Per image, the indices of the `models` that predict it (out-of-fold tuning:
        each fold's model on its own validation images). Default: all models.
    progress : callable, optional
        ``progress(done, total)`` after each image is predicted.

    Returns
    -------
    dict
        ``{"best": row, "table": rows, "metric": metric}``, each row ``{"threshold",
        "seed_threshold" (None without watershed), "min_area", "score"}``, best first.
    """
    from ..core.instances import instances_from_prediction

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    images, labels = list(images), list(labels)
    if len(images) != len(labels) or not images:
        raise ValueError(
            f"need equally many images and labels, got {len(images)} and {len(labels)}"
        )
    if assignment is not None and len(assignment) != len(images):
        raise ValueError(f"assignment has {len(assignment)} entries for {len(images)} images")
    loaded = load_models(models if isinstance(models, (list, tuple)) else [models])
    probs = []
    for i, image in enumerate(images):
        chosen = loaded if assignment is None else [loaded[j] for j in assignment[i]]
        probs.append(ensemble_probabilities(chosen, np.asarray(image), tta=tta))
        if progress is not None:
            progress(i + 1, len(images))
    watershed = metric == "map" and probs[0].shape[0] >= 3
    seeds = list(seed_thresholds) if watershed else [None]
    scores = {}  # (threshold, seed, min_area) -> per-image scores
    for p, truth in zip(probs, labels, strict=True):
        truth = np.asarray(truth)
        for threshold, seed in itertools.product(thresholds, seeds):
            if metric == "map":
                objects = (
                    instances_from_prediction(
                        p,
                        threshold=threshold,
                        seed_threshold=seed or 0.5,
                        volumetric=truth.ndim == 3,  # 3D instance labels: 3D objects
                    )
                    if watershed
                    else None
                )
            for min_area in min_areas:
                key = (float(threshold), seed, int(min_area))
                if metric == "dice":
                    pred = postprocess(p, threshold=threshold, min_area=min_area)
                    value = dice_score(truth > 0, pred > 0)
                elif watershed:
                    value = average_precision(truth, _drop_small(objects, min_area), semantic=None)
                else:
                    pred = postprocess(p, threshold=threshold, min_area=min_area)
                    value = average_precision(truth, pred > 0, semantic=None)
                scores.setdefault(key, []).append(value)
    table = [
        {
            "threshold": threshold,
            "seed_threshold": seed,
            "min_area": min_area,
            "score": float(np.mean(values)),
        }
        for (threshold, seed, min_area), values in scores.items()
    ]
    table.sort(key=lambda row: -row["score"])
    return {"best": table[0], "table": table, "metric": metric}


def _drop_small(objects: np.ndarray, min_area: int) -> np.ndarray:
    """Instance labels with objects of fewer than `min_area` pixels removed."""
    if min_area <= 1:
        return objects
    small = np.bincount(objects.ravel()) < min_area
    small[0] = False
    return np.where(small[objects], 0, objects)


__all__ = ["METRICS", "tune_postprocessing"]
