"""Competition metrics, per image, as Kaggle leaderboards compute them.

- :func:`dice_score` / :func:`iou_score`: one binary mask pair; an empty prediction
  of an empty truth scores 1 (the convention of Kaggle's "mean Dice" competitions).
- :func:`mean_dice`: their mean over images.
- :func:`average_precision`: the DSB2018 score of one image -- instances are matched
  at IoU thresholds 0.5, 0.55, ..., 0.95; at each, ``TP / (TP + FP + FN)``; the mean
  over thresholds. Semantic masks are split into connected components first.

The IoU of every (truth, prediction) instance pair comes from one joint histogram
(``np.bincount``), not a loop over pairs.
"""

from __future__ import annotations

import numpy as np

DSB_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


def _binary_pair(truth, pred) -> tuple[np.ndarray, np.ndarray]:
    truth, pred = np.asarray(truth) != 0, np.asarray(pred) != 0
    if truth.shape != pred.shape:
        raise ValueError(f"shapes differ: truth {truth.shape} vs prediction {pred.shape}")
    return truth, pred


def dice_score(truth, pred) -> float:
    """Dice of two binary masks (non-zero = foreground); 1.0 when both are empty.

    Parameters
    ----------
    truth, pred : arrays of one shape

    Returns
    -------
    float

    Examples
    --------
    >>> dice_score(np.array([1, 1, 0]), np.array([1, 0, 0]))
    0.6666666666666666
    """
    truth, pred = _binary_pair(truth, pred)
    total = truth.sum() + pred.sum()
    return 1.0 if total == 0 else float(2 * (truth & pred).sum() / total)


def iou_score(truth, pred) -> float:
    """Intersection over union of two binary masks; 1.0 when both are empty.

    Parameters
    ----------
    truth, pred : arrays of one shape

    Returns
    -------
    float

    Examples
    --------
    >>> iou_score(np.array([1, 1, 0]), np.array([1, 0, 0]))
    0.5
    """
    truth, pred = _binary_pair(truth, pred)
    union = (truth | pred).sum()
    return 1.0 if union == 0 else float((truth & pred).sum() / union)


def mean_dice(truths, preds) -> float:
    """Mean per-image Dice over paired lists of masks.

    Parameters
    ----------
    truths, preds : sequences of arrays
        Paired masks (each pair of one shape).

    Returns
    -------
    float
    """
    truths, preds = list(truths), list(preds)
    if len(truths) != len(preds) or not truths:
        raise ValueError(
            f"need equally many truths and predictions, got {len(truths)} and {len(preds)}"
        )
    return float(np.mean([dice_score(t, p) for t, p in zip(truths, preds, strict=False)]))


def to_instances(labels, *, semantic: bool | None = None) -> np.ndarray:
    """Instance ids: connected components of a binary/semantic mask, or ids as given.

    semantic : None guesses (a mask with values 0/1 only is semantic).

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
    semantic : bool, optional
        True: split the foreground into connected components; False: keep the ids;
        None: guess (values 0/1 only means semantic).

    Returns
    -------
    ndarray of int, shape (Y, X)
        0 background, 1..N instances.
    """
    from skimage.measure import label

    labels = np.asarray(labels)
    if semantic is None:
        semantic = labels.dtype == bool or labels.max(initial=0) <= 1
    return label(labels != 0, connectivity=1) if semantic else labels


def instance_iou(truth, pred) -> np.ndarray:
    """IoU matrix ``(n_truth, n_pred)`` between the instances of two label images.

    Parameters
    ----------
    truth, pred : ndarray of int, shape (Y, X)
        Instance labels (0 = background).

    Returns
    -------
    ndarray of float64, shape (n_truth, n_pred)
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"shapes differ: truth {truth.shape} vs prediction {pred.shape}")
    t_ids, t = np.unique(truth, return_inverse=True)
    p_ids, p = np.unique(pred, return_inverse=True)
    joint = np.bincount(
        t.ravel() * len(p_ids) + p.ravel(), minlength=len(t_ids) * len(p_ids)
    ).reshape(len(t_ids), len(p_ids))
    area_t, area_p = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    iou = joint / (area_t + area_p - joint)
    # drop background rows/columns (id 0)
    return iou[np.ix_(t_ids != 0, p_ids != 0)]


def average_precision(
    truth, pred, *, thresholds=DSB_THRESHOLDS, semantic: bool | None = None
) -> float:
    """The DSB2018 score of one image (see the module docstring).

    truth, pred : label images (instances), or binary masks (split into components).
    Both empty: 1.0; one empty: 0.0.

    Parameters
    ----------
    truth, pred : ndarray of int, shape (Y, X)
        Instance labels, or binary masks (split into connected components).
    thresholds : array of float
        IoU thresholds (DSB2018: 0.5 to 0.95 by 0.05).
    semantic : bool, optional
        As for :func:`to_instances`.

    Returns
    -------
    float
        Mean over thresholds of ``TP / (TP + FP + FN)``.
    """
    truth = to_instances(truth, semantic=semantic)
    pred = to_instances(pred, semantic=semantic)
    iou = instance_iou(truth, pred)
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return 1.0
    scores = []
    for t in thresholds:
        # with IoU > 0.5 a truth matches at most one prediction (and vice versa)
        tp = int((iou > t).sum())
        scores.append(tp / (n_true + n_pred - tp))
    return float(np.mean(scores))
