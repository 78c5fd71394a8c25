"""Competition metrics, per image, as Kaggle leaderboards compute them.

- :func:`dice_score` / :func:`iou_score`: one binary mask pair; an empty prediction
  of an empty truth scores 1 (the convention of Kaggle's "mean Dice" competitions).
- :func:`mean_dice`: their mean over images.
- :func:`average_precision`: the DSB2018 score of one image -- instances are matched
  at IoU thresholds 0.5, 0.55, ..., 0.95; at each, ``TP / (TP + FP + FN)``; the mean
  over thresholds. Semantic masks are split into connected components first.
- :func:`instance_errors`: what the unmatched objects at one threshold are (missed,
  merged, split, spurious, fragments, outlines off): where that score is lost.

The overlap of every (truth, prediction) instance pair comes from one joint histogram
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


def _overlaps(truth, pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts shared by every (truth, prediction) instance pair, and the areas.

    Returns
    -------
    joint : ndarray of int64, shape (n_truth, n_pred)
        Pixels of true object i inside predicted object j (background dropped).
    area_true : ndarray of int64, shape (n_truth,)
    area_pred : ndarray of int64, shape (n_pred,)
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"shapes differ: truth {truth.shape} vs prediction {pred.shape}")
    t_ids, t = np.unique(truth, return_inverse=True)
    p_ids, p = np.unique(pred, return_inverse=True)
    joint = np.bincount(
        t.ravel() * len(p_ids) + p.ravel(), minlength=len(t_ids) * len(p_ids)
    ).reshape(len(t_ids), len(p_ids))
    # areas include the pixels shared with the other image's background (id 0)
    area_t, area_p = joint.sum(1), joint.sum(0)
    keep_t, keep_p = t_ids != 0, p_ids != 0
    return joint[np.ix_(keep_t, keep_p)], area_t[keep_t], area_p[keep_p]


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
    return _iou(*_overlaps(truth, pred))


def _iou(joint, area_t, area_p) -> np.ndarray:
    """The IoU matrix from :func:`_overlaps`' counts (every area is at least one pixel)."""
    return joint / (area_t[:, None] + area_p[None, :] - joint)


#: how :func:`instance_errors` names the objects of each side, matched ones first
TRUE_OUTCOMES = ("matched", "missed", "merged", "split", "outline")
PREDICTED_OUTCOMES = ("matched", "spurious", "merger", "fragment", "outline")


def instance_errors(truth, pred, *, iou_threshold: float = 0.5) -> dict:
    """What became of each object at one IoU threshold: where an image's AP is lost.

    At the threshold, true and predicted objects match one to one (IoU above it); the
    others are false negatives and false positives, and the AP counts them all alike.
    Here each is put in the first class that fits, by the shares of its pixels that the
    other side's objects hold:

    true objects not matched
        ``missed``: predictions hold less than a quarter of it. ``merged``: the
        prediction holding most of it also holds at least half of another true object
        (two nuclei became one). ``split``: two or more predictions each hold at least a
        quarter of it. ``outline``: it was found as one object, with an outline too far
        off to match (too small, too large or shifted).
    predictions not matched
        ``spurious``: less than a quarter of it lies on true objects. ``merger``: it holds
        at least half of two or more true objects. ``fragment``: another prediction also
        holds at least a quarter of the true object it overlaps most (one of several
        pieces). ``outline``: the rest -- its true object's only sizeable prediction,
        with an outline too far off to match.

    Parameters
    ----------
    truth, pred : ndarray of int, shape (Y, X)
        Instance labels (0 = background, one id per object).
    iou_threshold : float
        Matching threshold (0.5: DSB2018's lowest, where matches are unique).

    Returns
    -------
    dict
        ``{"true": {outcome: count}, "predicted": {outcome: count}}`` with the outcomes
        of :data:`TRUE_OUTCOMES` and :data:`PREDICTED_OUTCOMES`; each side's counts add
        up to its number of objects.
    """
    if iou_threshold < 0.5:
        raise ValueError(
            f"iou_threshold must be at least 0.5 (one-to-one matches), got {iou_threshold}"
        )
    return _count_errors(*_overlaps(truth, pred), iou_threshold)


def _count_errors(joint, area_t, area_p, iou_threshold: float) -> dict:
    """:func:`instance_errors` from :func:`_overlaps`' counts."""
    matched = _iou(joint, area_t, area_p) > iou_threshold
    held = joint / area_t[:, None]  # share of true object i in prediction j
    inside = joint / area_p[None, :]  # share of prediction j in true object i
    matched_t, matched_p = matched.any(1), matched.any(0)
    true = dict.fromkeys(TRUE_OUTCOMES, 0)
    true["matched"] = int(matched_t.sum())
    for i in np.flatnonzero(~matched_t):
        if held[i].sum() < 0.25:  # also when nothing was predicted
            true["missed"] += 1
            continue
        main = int(held[i].argmax())
        if (np.delete(held[:, main], i) >= 0.5).any():
            true["merged"] += 1
        elif (held[i] >= 0.25).sum() >= 2:
            true["split"] += 1
        else:
            true["outline"] += 1
    predicted = dict.fromkeys(PREDICTED_OUTCOMES, 0)
    predicted["matched"] = int(matched_p.sum())
    for j in np.flatnonzero(~matched_p):
        if inside[:, j].sum() < 0.25:  # also when the truth is empty
            predicted["spurious"] += 1
            continue
        main = int(inside[:, j].argmax())
        if (held[:, j] >= 0.5).sum() >= 2:
            predicted["merger"] += 1
        elif (np.delete(held[main], j) >= 0.25).any():
            predicted["fragment"] += 1
        else:
            predicted["outline"] += 1
    return {"true": true, "predicted": predicted}


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
    return _average_precision(instance_iou(truth, pred), thresholds)


def _average_precision(iou: np.ndarray, thresholds) -> float:
    """:func:`average_precision` from the IoU matrix of the two images' instances."""
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return 1.0
    scores = []
    for t in thresholds:
        # with IoU > 0.5 a truth matches at most one prediction (and vice versa)
        tp = int((iou > t).sum())
        scores.append(tp / (n_true + n_pred - tp))
    return float(np.mean(scores))
