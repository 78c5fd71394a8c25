"""Score instance segmentations image by image, and summarise the scores per image kind.

What ``segkit evaluate`` prints and what the README's default-model table is made of:
for every image, foreground Dice and the DSB2018 scores (mean AP over IoU
0.5:0.05:0.95 and AP@0.5) of predicted instances against true ones; then means per
kind (fluorescence, tissue, brightfield: :func:`~napari_segkit.kaggle.kinds.image_kind`)
and over all images. :func:`format_errors` adds what the objects not matched at IoU 0.5
are (:func:`~napari_segkit.kaggle.metrics.instance_errors`), summed per kind.

    records = score_models(["fold0.safetensors"], samples, tta="flips")
    print(format_table(summarise(records)))
    print(format_errors(records))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kinds import KINDS, image_kind
from .metrics import (
    DSB_THRESHOLDS,
    PREDICTED_OUTCOMES,
    TRUE_OUTCOMES,
    _average_precision,
    _count_errors,
    _iou,
    _overlaps,
    dice_score,
)


@dataclass
class ImageScore:
    """The scores of one image."""

    id: str
    kind: str
    dice: float
    ap: float
    ap50: float
    n_true: int
    n_pred: int
    #: :func:`~napari_segkit.kaggle.metrics.instance_errors` at IoU 0.5
    errors: dict | None = None


def sample_kind(image, truth) -> str:
    """The kind a scored sample is reported under.

    Parameters
    ----------
    image : ndarray, shape (Y, X), (Y, X, C) or (Z, Y, X)
    truth : ndarray of int, shape (Y, X) or (Z, Y, X)
        The sample's true instances.

    Returns
    -------
    str
        "stack" for 3D instance labels, else the 2D image's kind
        (:func:`~napari_segkit.kaggle.kinds.image_kind`).
    """
    return "stack" if np.ndim(truth) == 3 else image_kind(np.asarray(image))


def score_instances(image_id: str, kind: str, truth, predicted) -> ImageScore:
    """Score predicted instances of one image against the true ones.

    Parameters
    ----------
    image_id, kind : str
    truth, predicted : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels (0 background, one id per object).

    Returns
    -------
    ImageScore
        Foreground Dice, mean AP over IoU 0.5:0.95 and AP@0.5, object counts, and what
        the objects not matched at IoU 0.5 are.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    # one table of overlaps gives both scores, the object counts and the errors
    overlaps = _overlaps(truth, predicted)
    iou = _iou(*overlaps)
    return ImageScore(
        id=image_id,
        kind=kind,
        dice=dice_score(truth > 0, predicted > 0),
        ap=_average_precision(iou, DSB_THRESHOLDS),
        ap50=_average_precision(iou, [0.5]),
        n_true=iou.shape[0],
        n_pred=iou.shape[1],
        errors=_count_errors(*overlaps, iou_threshold=0.5),
    )


def score_models(
    models,
    samples,
    *,
    tta: str | None = None,
    threshold: float = 0.5,
    seed_threshold: float = 0.7,
    min_size: int = 0,
    watershed: bool = True,
    volumetric: bool = False,
    object_diameter: float | str | None = None,
    progress=None,
) -> list[ImageScore]:
    """Predict every sample with `models` (averaged) and score its instances.

    Parameters
    ----------
    models : path, ModelFile or list of them
        Several are averaged (a fold ensemble).
    samples : list of DatasetSample
        With ``instances`` (true objects), e.g. from :func:`~napari_segkit.kaggle.read_dsb2018`.
    tta : {None, "flips", "d4"}
    threshold, seed_threshold, min_size
        See :func:`~napari_segkit.core.instances.instances_from_prediction`.
    watershed : bool
        False: connected components even for a boundary model (its interior and
        boundary classes together are the foreground).
    volumetric : bool
        Stacks' objects in 3D (``instances_from_prediction``), as a 3D model's
        ``ModelInfo.instance_options`` say; 2D samples are unaffected.
    object_diameter : None, "auto" or float
        Predict each image at the object size the models were trained on
        (:func:`~napari_segkit.kaggle.ensemble.ensemble_at_object_size`); `min_size`
        follows the magnification.
    progress : callable, optional
        ``progress(done, total)`` after each image.

    Returns
    -------
    list of ImageScore
    """
    from ..core.instances import instances_from_prediction
    from .ensemble import ensemble_at_object_size, load_models

    loaded = load_models(models if isinstance(models, (list, tuple)) else [models])
    records = []
    for done, sample in enumerate(samples, 1):
        if sample.instances is None:
            raise ValueError(f"sample {sample.id!r} has no true instances to score against")
        post = {"threshold": threshold, "seed_threshold": seed_threshold}
        probs, scale = ensemble_at_object_size(
            loaded,
            sample.image,
            object_diameter=object_diameter,
            tta=tta,
            min_size=min_size,
            **post,
        )
        predicted = instances_from_prediction(
            probs,
            min_size=round(min_size / scale**2),
            watershed=watershed,
            volumetric=volumetric,
            **post,
        )
        kind = sample_kind(sample.image, sample.instances)
        records.append(score_instances(sample.id, kind, sample.instances, predicted))
        if progress is not None:
            progress(done, len(samples))
    return records


def _by_kind(records: list[ImageScore]) -> list[tuple[str, list[ImageScore]]]:
    """The records of each kind, in :data:`~napari_segkit.kaggle.kinds.KINDS` order, then
    other kinds (e.g. "stack" for 3D images) by name, then all of them under "all"."""
    kinds = list(KINDS) + sorted({r.kind for r in records} - set(KINDS))
    return [(k, [r for r in records if r.kind == k]) for k in kinds] + [("all", list(records))]


def summarise(records: list[ImageScore]) -> dict:
    """Mean scores per image kind and over all images.

    Parameters
    ----------
    records : list of ImageScore

    Returns
    -------
    dict
        ``{kind or "all": {"n": images, "dice": mean, "ap": mean, "ap50": mean}}``, kinds in
        :data:`~napari_segkit.kaggle.kinds.KINDS` order (absent kinds left out), "all" last.
    """
    table = {}
    for name, rows in _by_kind(records):
        if rows:
            table[name] = {
                "n": len(rows),
                "dice": float(np.mean([r.dice for r in rows])),
                "ap": float(np.mean([r.ap for r in rows])),
                "ap50": float(np.mean([r.ap50 for r in rows])),
            }
    return table


def format_table(summary: dict, title: str = "") -> str:
    """A :func:`summarise` result as aligned text rows (kind, images, Dice, mAP, AP@0.5).

    Parameters
    ----------
    summary : dict
        From :func:`summarise`.
    title : str
        Printed above the rows.

    Returns
    -------
    str
    """
    lines = [title] if title else []
    lines.append(f"{'kind':<14}{'images':>7}{'Dice':>8}{'mAP':>8}{'AP@0.5':>8}")
    for kind, row in summary.items():
        lines.append(
            f"{kind:<14}{row['n']:>7d}{row['dice']:>8.3f}{row['ap']:>8.3f}{row['ap50']:>8.3f}"
        )
    return "\n".join(lines)


def format_errors(records: list[ImageScore]) -> str:
    """What the objects are that did not match at IoU 0.5, summed per image kind.

    One row per kind and one for all images: the true objects (how many, how many
    matched, then the unmatched by :data:`~napari_segkit.kaggle.metrics.TRUE_OUTCOMES`)
    and the predicted ones (by :data:`~napari_segkit.kaggle.metrics.PREDICTED_OUTCOMES`).

    Parameters
    ----------
    records : list of ImageScore
        From :func:`score_instances` / :func:`score_models`.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        A record made without error counts (``ImageScore.errors`` None).
    """
    uncounted = [r.id for r in records if r.errors is None]
    if uncounted:
        raise ValueError(
            f"{len(uncounted)} of {len(records)} scores carry no error counts (e.g. image "
            f"{uncounted[0]!r}): make them with score_instances"
        )
    true_cols, pred_cols = TRUE_OUTCOMES[1:], PREDICTED_OUTCOMES[1:]
    lines = [
        f"{'at IoU 0.5':<14}{'true objects':<50}{'predicted objects'}",
        f"{'kind':<14}{'all':>6}{'found':>7}"
        + "".join(f"{c:>9}" for c in true_cols)
        + f"{'all':>9}{'found':>7}"
        + "".join(f"{c:>9}" for c in pred_cols),
    ]
    for kind, rows in _by_kind(records):
        if not rows:
            continue
        true = {c: sum(r.errors["true"][c] for r in rows) for c in TRUE_OUTCOMES}
        pred = {c: sum(r.errors["predicted"][c] for r in rows) for c in PREDICTED_OUTCOMES}
        lines.append(
            f"{kind:<14}{sum(true.values()):>6d}{true['matched']:>7d}"
            + "".join(f"{true[c]:>9d}" for c in true_cols)
            + f"{sum(pred.values()):>9d}{pred['matched']:>7d}"
            + "".join(f"{pred[c]:>9d}" for c in pred_cols)
        )
    return "\n".join(lines)


def regression_estimate(scores, baseline, baseline_mean: float, population: int) -> dict:
    """Estimate a method's mean score over a whole dataset from a random sample of it,
    using a baseline that was scored on every image (the regression estimator of survey
    sampling; Cochran, *Sampling Techniques*, 3rd ed., section 7.1).

    A model can only be scored on the images it never trained on (its validation
    split), but a training-free baseline such as Otsu can be scored on all of them. Where
    the two scores go together, the split's baseline mean against the dataset's says
    whether the split drew easy or hard images, and by how much to correct:
    ``mean(scores) + slope * (baseline_mean - mean(baseline))``, ``slope`` fitted over
    the split by least squares. Written here because scipy and scikit-learn fit the
    slope but do not give the finite-population estimate and its standard error.

    Parameters
    ----------
    scores, baseline : sequences of float, length n
        Per image of the sample: the method's score and the baseline's.
    baseline_mean : float
        The baseline's mean score over every image of the dataset (sample included).
    population : int
        How many images the dataset holds (>= n).

    Returns
    -------
    dict
        ``estimate`` (the estimated mean over the dataset), ``se`` (its standard error:
        the residuals' with the finite-population correction, plus the fitted slope's
        over the distance it extrapolates; nan when n < 2), ``sample_mean`` (the
        plain mean of `scores`), ``slope`` and ``r`` (the correlation of the two scores;
        slope 0 and r nan when fewer than 3 images or a constant baseline leave no
        slope to fit: the estimate is then the plain mean).

    Examples
    --------
    >>> r = regression_estimate([0.5, 0.6, 0.7], [0.3, 0.4, 0.5], 0.5, 10)
    >>> round(r["estimate"], 6), round(r["se"], 6)
    (0.7, 0.0)
    """
    y = np.asarray(scores, dtype=np.float64)
    x = np.asarray(baseline, dtype=np.float64)
    n = len(y)
    if n == 0 or len(x) != n:
        raise ValueError(f"need as many baseline scores as scores (>= 1), got {len(x)} and {n}")
    if population < n:
        raise ValueError(f"the dataset ({population} images) is smaller than its sample ({n})")
    fpc = 1.0 - n / population  # sampling without replacement: a census has no error
    shift = baseline_mean - x.mean()  # how much harder or easier the sample is
    if n < 3 or np.ptp(x) == 0:  # no slope to fit: the plain mean
        slope, r = 0.0, float("nan")
        variance = y.var(ddof=1) * fpc / n if n >= 2 else float("nan")
    else:
        spread = ((x - x.mean()) ** 2).sum()
        slope = float(((x - x.mean()) * (y - y.mean())).sum() / spread)
        r = float(np.corrcoef(x, y)[0, 1]) if np.ptp(y) > 0 else float("nan")
        residuals = (y - y.mean()) - slope * (x - x.mean())
        # the residuals' share, plus the slope's own error times how far it extrapolates:
        # negligible for a typical random sample, not for one far from the dataset's mean
        variance = (residuals**2).sum() / (n - 2) * (fpc / n + shift**2 / spread)
    return {
        "estimate": float(y.mean() + slope * shift),
        "se": float(np.sqrt(variance)),
        "sample_mean": float(y.mean()),
        "slope": slope,
        "r": r,
    }


__all__ = [
    "ImageScore",
    "format_errors",
    "format_table",
    "regression_estimate",
    "sample_kind",
    "score_instances",
    "score_models",
    "summarise",
]
