"""Segmentation metrics from a confusion matrix accumulated chunk by chunk.

Every metric here derives from one K x K confusion matrix, which is summed block
by block over numpy, dask or zarr arrays, so volumes larger than memory are
evaluated with memory bounded by a few chunks. Conventions:

* rows are the truth, columns the prediction;
* pixels whose truth equals `ignore_index` are left out;
* a class absent from both truth and prediction has Dice and IoU ``nan`` and is
  left out of the means (``nanmean``).
"""

from __future__ import annotations

from itertools import product

import numpy as np


def iter_blocks(*arrays, block_shape=None):
    """Yield aligned blocks (as numpy arrays) of equally shaped arrays.

    The block grid is the first dask/zarr array's chunking (or `block_shape`;
    whole arrays when everything is in memory), so at most one block of each
    array is in memory at a time.

    Parameters
    ----------
    *arrays : arrays of one shape
        numpy, dask or zarr.
    block_shape : tuple of int, optional
        Block grid to use instead of the first chunked array's chunks.

    Yields
    ------
    tuple of ndarray
        The same block of every array, as numpy.
    """
    shape = tuple(arrays[0].shape)
    for a in arrays[1:]:
        if tuple(a.shape) != shape:
            raise ValueError(f"shapes differ: {shape} vs {tuple(a.shape)}")
    if block_shape is None:
        for a in arrays:
            chunks = getattr(a, "chunksize", None) or getattr(a, "chunks", None)
            if chunks is not None and not isinstance(chunks[0], tuple):
                block_shape = tuple(chunks)
                break
    if block_shape is None:
        yield tuple(np.asarray(a) for a in arrays)
        return
    ranges = [range(0, s, b) for s, b in zip(shape, block_shape, strict=False)]
    for starts in product(*ranges):
        index = tuple(slice(s, s + b) for s, b in zip(starts, block_shape, strict=False))
        yield tuple(np.asarray(a[index]) for a in arrays)


def confusion_matrix(
    truth, prediction, num_classes: int, *, ignore_index: int | None = None
) -> np.ndarray:
    """K x K confusion matrix (rows truth, columns prediction), accumulated block by block.

    Parameters
    ----------
    truth, prediction : ndarray, dask array or zarr array of int, same shape
        Class ids ``0 .. num_classes - 1`` (truth may also hold `ignore_index`).
    num_classes : int
    ignore_index : int, optional

    Returns
    -------
    ndarray of int64, shape (num_classes, num_classes)
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    cm = np.zeros((num_classes, num_classes), np.int64)
    for t, p in iter_blocks(truth, prediction):
        t, p = t.ravel().astype(np.int64), p.ravel().astype(np.int64)
        if ignore_index is not None:
            keep = t != ignore_index
            t, p = t[keep], p[keep]
        for name, a in (("truth", t), ("prediction", p)):
            if a.size and (a.min() < 0 or a.max() >= num_classes):
                raise ValueError(
                    f"{name} holds class id {int(a.max() if a.max() >= num_classes else a.min())}"
                    f", outside 0..{num_classes - 1} for num_classes={num_classes}"
                )
        cm += np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
            num_classes, num_classes
        )
    return cm


def _per_class(numerator, denominator) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def dice_per_class(cm: np.ndarray) -> np.ndarray:
    """Dice (F1) per class: ``2 TP / (2 TP + FP + FN)``; nan where the class is absent.

    Parameters
    ----------
    cm : ndarray of shape (K, K)
        Confusion matrix (rows: truth, columns: prediction).

    Returns
    -------
    ndarray of float64, shape (K,)

    Examples
    --------
    >>> dice_per_class(np.array([[3, 1], [0, 4]]))
    array([0.85714286, 0.88888889])
    """
    tp = np.diag(cm).astype(np.float64)
    return _per_class(2 * tp, cm.sum(0) + cm.sum(1))


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU (Jaccard) per class: ``TP / (TP + FP + FN)``; nan where the class is absent.

    Parameters
    ----------
    cm : ndarray of shape (K, K)
        Confusion matrix (rows: truth, columns: prediction).

    Returns
    -------
    ndarray of float64, shape (K,)

    Examples
    --------
    >>> iou_per_class(np.array([[3, 1], [0, 4]]))
    array([0.75, 0.8 ])
    """
    tp = np.diag(cm).astype(np.float64)
    return _per_class(tp, cm.sum(0) + cm.sum(1) - tp)


def pixel_accuracy(cm: np.ndarray) -> float:
    """Fraction of (non-ignored) pixels whose class is right.

    Parameters
    ----------
    cm : ndarray of shape (K, K)

    Returns
    -------
    float

    Examples
    --------
    >>> pixel_accuracy(np.array([[3, 1], [0, 4]]))
    0.875
    """
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def segmentation_report(
    truth, prediction, num_classes: int, *, class_names=None, ignore_index: int | None = None
) -> dict:
    """Per-class Dice and IoU, their means, pixel accuracy and the confusion matrix.

    Works on arrays larger than memory (dask / zarr), block by block.

    Returns
    -------
    dict
        ``{"classes": [names], "dice": [...], "iou": [...], "mean_dice": float,
        "mean_iou": float, "pixel_accuracy": float, "confusion_matrix": K x K list}``

    Parameters
    ----------
    truth, prediction : arrays of int of one shape
        Class ids (numpy, dask or zarr; any number of dimensions).
    num_classes : int
        K (ids must be below it).
    class_names : list of str, optional
        One per class (default ``class 0``, ``class 1``, ...).
    ignore_index : int, optional
        Truth value whose pixels are not counted.
    """
    cm = confusion_matrix(truth, prediction, num_classes, ignore_index=ignore_index)
    dice, iou = dice_per_class(cm), iou_per_class(cm)
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for num_classes={num_classes}")
    return {
        "classes": names,
        "dice": dice.tolist(),
        "iou": iou.tolist(),
        "mean_dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan"),
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": pixel_accuracy(cm),
        "confusion_matrix": cm.tolist(),
    }


def evaluation_table(report: dict) -> str:
    """A :func:`segmentation_report` as tab-separated text (pastes into a spreadsheet).

    Per-class Dice and IoU, their means, pixel accuracy, then the confusion matrix
    (rows: ground truth, columns: prediction).

    Parameters
    ----------
    report : dict
        From :func:`segmentation_report`.

    Returns
    -------
    str
        Tab-separated lines ending with a newline.
    """
    names = report["classes"]
    lines = ["class\tDice\tIoU"]
    lines += [
        f"{n}\t{d:.4f}\t{i:.4f}"
        for n, d, i in zip(names, report["dice"], report["iou"], strict=False)
    ]
    lines.append(f"mean\t{report['mean_dice']:.4f}\t{report['mean_iou']:.4f}")
    lines.append(f"pixel accuracy\t{report['pixel_accuracy']:.4f}")
    lines.append("")
    lines.append("truth \\ prediction\t" + "\t".join(names))
    lines += [
        f"{n}\t" + "\t".join(str(int(v)) for v in row)
        for n, row in zip(names, report["confusion_matrix"], strict=False)
    ]
    return "\n".join(lines)


def adapted_rand_error(truth, prediction, *, ignore_labels=(0,)) -> dict:
    """Adapted Rand error (scikit-image) between two instance segmentations.

    For membrane-style tasks (e.g. ISBI 2012): compare connected components of the
    cell-interior class. 0 is a perfect match.

    Parameters
    ----------
    truth, prediction : ndarray of int, same shape
        Instance (region) labels; `ignore_labels` in `truth` are not scored.

    Returns
    -------
    dict
        ``{"error": float, "precision": float, "recall": float}``
    """
    from skimage.metrics import adapted_rand_error as _are

    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"shapes differ: truth {truth.shape} vs prediction {prediction.shape}")
    error, precision, recall = _are(truth, prediction, ignore_labels=ignore_labels)
    return {"error": float(error), "precision": float(precision), "recall": float(recall)}
