"""Threshold and minimum-area search on labelled images (what ``segkit tune`` runs)."""

from __future__ import annotations

import itertools

import numpy as np

from ..config import TUNE_METRICS, TUNE_MIN_AREAS, TUNE_THRESHOLDS
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

    Parameters
    ----------
    models : path, ModelFile or list of them
        Several are averaged (fold ensemble).
    images : list of ndarray
        Each ``(Y, X)`` or ``(Y, X, C)``.
    labels : list of ndarray
        Ground truth, ``(Y, X)`` each.
    metric : {"dice", "map"}
    thresholds, min_areas : sequences
        The grid.
    tta : {None, "flips", "d4"}
    progress : callable, optional
        ``progress(done, total)`` after each image is predicted.
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


__all__ = ["METRICS", "tune_postprocessing"]
