"""Guard rails: signs that data is not what a step expects, as sentences (or None).

Each check returns a message naming what looks wrong and what to do, or None when
nothing does; the library warns or refuses with it, and the widgets show it. numpy /
scipy only.

- :func:`instance_like`: a "class" label image that is really instance labels (one id
  per object): training on it builds a model with one class per object.
- :func:`unusual_prediction`: a prediction whose class fractions lie far outside the
  training data's (a model applied to images unlike its training images).
"""

from __future__ import annotations

import numpy as np

#: more distinct ids than this, each a single blob, reads as instance labels
INSTANCE_IDS = 16


def instance_like(labels, n_classes: int | None = None) -> str | None:
    """Why `labels` look like instance labels rather than class ids, or None.

    Parameters
    ----------
    labels : array of int, shape (Y, X) or (Z, Y, X)
    n_classes : int, optional
        Classes the user named (class names, or a model's classes): more distinct ids
        than that is suspicious by itself.

    Returns
    -------
    str or None
        The message: ids found, and the remedy (target "boundary", or paint class ids).

    Examples
    --------
    >>> objects = np.zeros((40, 200), np.int32)
    >>> for i in range(20):
    ...     objects[10:20, 10 * i : 10 * i + 5] = i + 1
    >>> instance_like(objects) is not None
    True
    >>> instance_like((objects > 0).astype(np.uint8)) is None
    True
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    too_many = n_classes is not None and len(ids) > max(n_classes, 2)
    if len(ids) <= INSTANCE_IDS and not too_many:
        return None
    # instance ids each cover one blob; a class id usually covers several
    boxes = ndi.find_objects(labels.astype(np.int64, copy=False))
    sample = ids[np.linspace(0, len(ids) - 1, min(len(ids), 50)).astype(int)]
    single = sum(
        ndi.label(labels[boxes[i - 1]] == i)[1] == 1 for i in sample if boxes[i - 1] is not None
    )
    if not too_many and single < 0.8 * len(sample):
        return None
    named = f" for {n_classes} named classes" if n_classes is not None else ""
    return (
        f"the labels hold {len(ids)} different ids{named}, "
        f"{'mostly' if single < len(sample) else 'each'} one connected object: they look like "
        "instance labels (one id per object), which would train one class per object. Train "
        "with target 'boundary' (learns to split touching objects), or paint class ids "
        "(1 = first class, ...)"
    )


def unusual_prediction(labels, class_fractions, class_names=None, factor: float = 3.0):
    """Why a prediction looks unlike the model's training data, or None.

    Parameters
    ----------
    labels : array of int
        Predicted class ids.
    class_fractions : sequence of float
        Each class's share of the training pixels (a model file's
        ``training["class_fractions"]``).
    class_names : list of str, optional
    factor : float
        A foreground class covering more than `factor` times its training share (and
        over half of the image) is reported.

    Returns
    -------
    str or None

    Examples
    --------
    >>> unusual_prediction(np.ones((10, 10), int), [0.8, 0.2], ["background", "nucleus"])[:41]
    "100% of the pixels were labelled 'nucleus"
    >>> unusual_prediction(np.zeros((10, 10), int), [0.8, 0.2]) is None
    True
    """
    labels = np.asarray(labels)
    fractions = np.asarray(class_fractions, float)
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=len(fractions))
    share = counts[: len(fractions)] / max(labels.size, 1)
    for c in range(1, len(fractions)):
        if share[c] > 0.5 and share[c] > factor * fractions[c]:
            name = class_names[c] if class_names and c < len(class_names) else f"class {c}"
            return (
                f"{share[c]:.0%} of the pixels were labelled '{name}' (training images: "
                f"{fractions[c]:.0%}): this image may be unlike the model's training images "
                "(another modality, scale or contrast); check the result, or fine-tune on it"
            )
    return None


__all__ = ["INSTANCE_IDS", "instance_like", "unusual_prediction"]
