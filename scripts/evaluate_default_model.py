"""Score the default nuclei model on its own DSB2018 validation split, per image kind.

    python scripts/evaluate_default_model.py --data ../shared/data/dsb2018-train \\
        --model src/napari_segkit/sample_data/nuclei_dsb2018.safetensors

Prints, per kind (fluorescence, tissue, brightfield) and over all validation images,
foreground Dice, mean AP over IoU 0.5:0.05:0.95 and AP@0.5 (the DSB2018 scores) of:

(a) a global Otsu threshold + connected components (on the luminance; the minority side
    of the threshold is the foreground, so bright-background images work too),
(b) the previous default model, trained on synthetic nuclei (gray input),
(c) the new default model, instances by connected components (its tuned threshold and
    minimum size, as (d) and (e)),
(d) the new default model, instances by watershed from its interior class,
(e) (d) with test-time augmentation (``--tta``: flips, the default, or d4: flips and
    rotations, 8 views),

plus any ``--compare`` models (e.g. the colour-model experiment) as (d), each with the
post-processing its own file records (the default's where it records none).
The validation ids are the ones the model file records (the training script's split).

``--scales 0.5 0.75 1.5 2`` adds, for the model and every ``--compare`` model, row (d) on
the validation images rescaled by each factor (images linearly, anti-aliased when
shrunk; true instances by nearest neighbour; the minimum object area scaled with the
area when shrunk): how the model copes with pixel sizes other than DSB2018's, as another
objective or camera gives them. With ``--object-diameter`` each factor also gets row
(f): the model through ``predict_objects(..., object_diameter="auto")``, which estimates
the nuclei's size from a first prediction and rescales images whose nuclei lie outside
the sizes the model was trained on (its minimum area follows that rescaling, not the
known factor).

``--degrade blur:1 blur:2 noise:0.05 gamma:2`` adds, for the model and every
``--compare`` model, row (d) on copies of the validation images whose quality is degraded
as other microscopes degrade it: an in-plane Gaussian blur of that sigma in pixels (a
wider point spread function, slight defocus), Gaussian noise of that fraction of the
image's 1st - 99.8th percentile range (fewer photons; the same noise for every model),
or a gamma (another camera response: above 1 dim nuclei get dimmer against bright ones).
Whether the models cope with images unlike DSB2018's own, which are mostly sharp and
clean.

``--whole-dataset`` also scores (a) on every image of the dataset (training images too:
Otsu learns nothing from them) and estimates, per kind, what (d) would score over the
whole dataset from its scores on the split
(:func:`~napari_segkit.kaggle.evaluation.regression_estimate`, with (a) as the baseline):
whether the split drew harder or easier images than the dataset holds, and what the
model's figures are once that is corrected for.

``--errors`` prints under every table what its objects not matched at IoU 0.5 are
(:func:`~napari_segkit.kaggle.evaluation.format_errors`): true nuclei missed, merged into
a neighbour, split or with outlines too far off, and predictions that are spurious,
mergers, fragments or off in outline -- where a candidate gains or loses against another.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np


def otsu_instances(image: np.ndarray) -> np.ndarray:
    """Baseline (a): global Otsu on the luminance, the smaller side as foreground."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    from napari_segkit.core.volume import convert_channels

    chw = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    # as float whatever the file's dtype: threshold_otsu bins integer images by value and
    # float ones over their range, so a gray PNG and the same image saved as RGB (whose
    # luminance is float) would get different thresholds
    gray = convert_channels(chw, "gray")[0].astype(np.float32)
    foreground = gray > threshold_otsu(gray)
    if foreground.mean() > 0.5:  # a bright background: the objects are the dark side
        foreground = ~foreground
    return ndi.label(foreground)[0]


def gray_samples(samples):
    """The samples with their images as luminance (what a gray-only model is given)."""
    from dataclasses import replace

    from napari_segkit.core.volume import convert_channels

    out = []
    for s in samples:
        chw = s.image[None] if s.image.ndim == 2 else np.moveaxis(s.image, -1, 0)
        out.append(replace(s, image=convert_channels(chw, "gray")[0]))
    return out


#: what ``score_models`` is given for a file that records no tuned post-processing
LIBRARY_POSTPROCESSING = {"threshold": 0.5, "seed_threshold": 0.7, "min_size": 0}


def recorded_postprocessing(info, fallback: dict = LIBRARY_POSTPROCESSING) -> dict:
    """The threshold, seed threshold and minimum size a model file's `info` records
    (``training["postprocessing"]``), `fallback`'s where it records none."""
    own = info.training.get("postprocessing", {})
    return {key: own.get(key, value) for key, value in fallback.items()}


def rescaled_samples(samples, factor: float):
    """The samples with image and true instances rescaled by `factor` (1: unchanged)."""
    from napari_segkit.kaggle.datasets import rescaled_sample

    if factor == 1.0:
        return list(samples)
    return [rescaled_sample(s, factor) for s in samples]


#: ``--degrade`` kinds -> what the value given with them is
DEGRADATIONS = {
    "blur": "sigma in pixels",
    "noise": "standard deviation / the 1st - 99.8th percentile range",
    "gamma": "exponent",
}


def parse_degradation(text: str) -> tuple[str, float]:
    """``"blur:1.5"`` -> ``("blur", 1.5)``; argparse's type for ``--degrade``."""
    kind, _, value = text.partition(":")
    if kind not in DEGRADATIONS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the kinds are {', '.join(DEGRADATIONS)} (e.g. blur:1.5)"
        )
    try:
        amount = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give {kind}'s {DEGRADATIONS[kind]} after the colon"
        ) from None
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: {kind}'s value must be > 0")
    return kind, amount


def degraded_samples(samples, kind: str, amount: float, seed: int = 0) -> list:
    """The samples with their images degraded (float32, every channel alike); the true
    instances unchanged.

    Parameters
    ----------
    samples : list of DatasetSample
        Images ``(Y, X)`` or ``(Y, X, C)``.
    kind : {"blur", "noise", "gamma"}
    amount : float
        Blur: the Gaussian's sigma in pixels, in the plane. Noise: its standard deviation
        as a fraction of the image's 1st - 99.8th percentile range (the range the model
        normalises to), drawn from a generator seeded with `seed` and the image's
        position, so that every model sees the same noise. Gamma: the exponent, applied
        between the image's minimum and maximum.

    Returns
    -------
    list of DatasetSample
    """
    from dataclasses import replace

    from scipy import ndimage as ndi

    from napari_segkit.core.augment import gamma_between_extremes

    out = []
    for index, sample in enumerate(samples):
        image = sample.image.astype(np.float32)
        if kind == "blur":
            in_plane = (amount, amount) + (0.0,) * (image.ndim - 2)  # channels last: not
            image = ndi.gaussian_filter(image, in_plane)
        elif kind == "noise":
            low, high = np.percentile(image, (1.0, 99.8))
            rng = np.random.default_rng((seed, index))
            image = image + rng.normal(0, amount * max(high - low, 1e-6), image.shape)
        elif kind == "gamma":  # as the training augmentation bends a patch
            image = gamma_between_extremes(image, amount)
        else:
            raise ValueError(f"unknown degradation {kind!r}: one of {', '.join(DEGRADATIONS)}")
        out.append(replace(sample, image=image.astype(np.float32)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/dsb2018-train"),
        help="the DSB2018 folder (stage1_train/ inside) or its copy by scripts/pack_dsb2018.py",
    )
    parser.add_argument("--model", type=Path, required=True, help="the new default model")
    parser.add_argument(
        "--previous",
        type=Path,
        default=Path("src/napari_segkit/sample_data/nuclei_unet.safetensors"),
        help="the synthetic-trained model it replaces",
    )
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="more models")
    parser.add_argument("--seed-threshold", type=float, default=None)
    parser.add_argument(
        "--tta", choices=("flips", "d4"), default="flips", help="row (e)'s test-time views"
    )
    parser.add_argument("--skip", nargs="*", default=[], help="rows to leave out (a b c d e)")
    parser.add_argument(
        "--scales",
        type=float,
        nargs="*",
        default=[],
        help="also score (d) on the images rescaled by these factors",
    )
    parser.add_argument(
        "--object-diameter",
        action="store_true",
        help="also score row (f) at every --scales factor: predict_objects(object_diameter="
        "'auto'), which rescales images whose objects lie outside the trained sizes",
    )
    parser.add_argument(
        "--degrade",
        type=parse_degradation,
        nargs="*",
        default=[],
        metavar="KIND:VALUE",
        help="also score (d) on images degraded by each: blur:SIGMA, noise:FRACTION, "
        "gamma:EXPONENT",
    )
    parser.add_argument(
        "--errors",
        action="store_true",
        help="under every table, what its objects not matched at IoU 0.5 are (missed, "
        "merged, split, spurious, fragments, outlines off)",
    )
    parser.add_argument(
        "--whole-dataset",
        action="store_true",
        help="also score (a) on every image and estimate (d) over the whole dataset from it",
    )
    args = parser.parse_args(argv)

    from napari_segkit.kaggle.evaluation import (
        format_errors,
        format_table,
        score_models,
        summarise,
    )
    from napari_segkit.kaggle.kinds import image_kind
    from napari_segkit.models import read_model_info

    info = read_model_info(args.model)
    val_ids = info.training.get("validation_ids")
    if not val_ids:
        print(f"'{args.model}' records no validation ids", file=sys.stderr)
        return 2
    # every model with the post-processing its own file records (tuned on this split by the
    # training script), the default model's where it records none; read once per file
    default_post = recorded_postprocessing(info)
    recorded = {args.model: default_post}
    for path in args.compare:
        recorded[path] = recorded_postprocessing(read_model_info(path), fallback=default_post)
    seed = (
        args.seed_threshold if args.seed_threshold is not None else default_post["seed_threshold"]
    )
    post = {"threshold": default_post["threshold"], "min_size": default_post["min_size"]}
    # --whole-dataset reads every image once and takes the split's from them
    everything = read_samples(args.data) if args.whole_dataset else None
    samples = (
        read_samples(args.data, val_ids) if everything is None else select(everything, val_ids)
    )
    missing = set(val_ids) - {s.id for s in samples}
    if missing:
        print(f"'{args.data}' lacks {len(missing)} validation images", file=sys.stderr)
        return 2
    kinds = {s.id: image_kind(s.image) for s in samples}
    print(f"{len(samples)} validation images of {args.model} (seed threshold {seed}, {post})\n")

    def show(label, records, started):
        print(format_table(summarise(records), f"{label}  [{time.monotonic() - started:.0f} s]"))
        if args.errors:
            print(format_errors(records))
        print(flush=True)

    rows = {
        "a": ("(a) Otsu + connected components", None),
        "b": (
            "(b) previous default (synthetic nuclei)",
            {"models": [args.previous], "gray": True, "watershed": False},
        ),
        "c": ("(c) new default, connected components", {"watershed": False}),
        "d": ("(d) new default, watershed", {}),
        "e": (f"(e) new default, watershed + {args.tta} TTA", {"tta": args.tta}),
    }
    scored = {}  # row key -> its records
    for key, (label, options) in rows.items():
        if key in args.skip and not (key == "d" and args.whole_dataset):
            continue
        started = time.monotonic()
        if options is None:
            records = otsu_records(samples, kinds)
        else:
            options = dict(options)
            models = options.pop("models", [args.model])
            data = gray_samples(samples) if options.pop("gray", False) else samples
            tuned_post = post if models == [args.model] else {}
            records = scored_as_kinds(
                models, data, kinds, seed_threshold=seed, **tuned_post, **options
            )
        scored[key] = records
        if key not in args.skip:
            show(label, records, started)
    if args.whole_dataset:
        started = time.monotonic()
        kinds_all = {s.id: image_kind(s.image) for s in everything}
        split_otsu = {r.id: r for r in scored.get("a", [])}  # row (a): the split's, done
        rest = [s for s in everything if s.id not in split_otsu]
        otsu_all = [*split_otsu.values(), *otsu_records(rest, kinds_all)]
        print(format_estimates(whole_dataset_estimates(scored["d"], otsu_all)))
        print(f"[{time.monotonic() - started:.0f} s]\n", flush=True)
    for path in args.compare:
        settings = dict(recorded[path])
        if args.seed_threshold is not None:
            settings["seed_threshold"] = args.seed_threshold
        started = time.monotonic()
        records = score_models([path], samples, **settings)
        show(f"{path}, watershed {settings}", records, started)
    for factor in args.scales:
        scaled = rescaled_samples(samples, factor)
        for path in [args.model, *args.compare]:
            started = time.monotonic()
            own = recorded[path]
            min_size = int(round(own["min_size"] * min(factor * factor, 1.0)))
            records = scored_as_kinds(
                [path],
                scaled,
                kinds,
                threshold=own["threshold"],
                seed_threshold=own["seed_threshold"],
                min_size=min_size,
            )
            show(f"(d) at scale {factor:g}: {path} (min area {min_size})", records, started)
        if args.object_diameter:
            started = time.monotonic()
            records, rescaled = object_size_records(args.model, scaled, kinds)
            show(
                f"(f) at scale {factor:g}: {args.model}, object_diameter='auto' "
                f"({rescaled} of {len(scaled)} images rescaled)",
                records,
                started,
            )
    for kind, amount in args.degrade:
        degraded = degraded_samples(samples, kind, amount)
        for path in [args.model, *args.compare]:
            started = time.monotonic()
            records = scored_as_kinds([path], degraded, kinds, **recorded[path])
            show(f"(d) with {kind} {amount:g}: {path}", records, started)
    return 0


def scored_as_kinds(models, samples, kinds: dict, **settings) -> list:
    """``score_models(models, samples, **settings)``'s records, each image's kind taken
    from `kinds` (the original image's: a gray, rescaled or degraded copy of it may look
    like another kind)."""
    from napari_segkit.kaggle.evaluation import score_models

    records = score_models(models, samples, **settings)
    for r in records:
        r.kind = kinds[r.id]
    return records


def read_samples(data: Path, ids: list[str] | None = None) -> list:
    """The samples of the DSB2018 download (``stage1_train/`` inside: with `ids`, only
    theirs are read) or of its copy packed by scripts/pack_dsb2018.py (one file per image:
    read whole in seconds, then `ids`' kept); all when `ids` is None."""
    from napari_segkit.kaggle import load_dataset, read_dsb2018

    if (data / "stage1_train").is_dir():
        return read_dsb2018(data / "stage1_train", ids=ids)
    return select(load_dataset(data), ids)


def select(samples, ids: list[str] | None) -> list:
    """The samples of `ids`, in their order (ids absent from `samples` are skipped); all
    of them when `ids` is None."""
    if ids is None:
        return list(samples)
    by_id = {s.id: s for s in samples}
    return [by_id[i] for i in ids if i in by_id]


def otsu_records(samples, kinds: dict) -> list:
    """Row (a)'s scores: Otsu + connected components on every sample."""
    from napari_segkit.kaggle.evaluation import score_instances

    return [
        score_instances(s.id, kinds[s.id], s.instances, otsu_instances(s.image)) for s in samples
    ]


def _mean_score(records, metric: str) -> float:
    return float(np.mean([getattr(r, metric) for r in records]))


def whole_dataset_estimates(split_records, baseline_records) -> dict:
    """Per kind and over all kinds, for mAP ("ap") and AP@0.5 ("ap50"): the baseline's mean
    on the split and on the whole dataset, the model's mean on the split and its
    regression estimate over the whole dataset.

    Parameters
    ----------
    split_records : list of ImageScore
        The model's scores on the validation split.
    baseline_records : list of ImageScore
        The baseline's scores on every image of the dataset (the split's among them).

    Returns
    -------
    dict
        ``{metric: {kind or "all": {"split", "population", "baseline_split",
        "baseline_all", "model_split", "estimate", "se", "r"}}}``. "all" combines the
        kinds' estimates weighted by their share of the dataset (the split is drawn per
        kind, so each kind is a stratum of its own); its "r" is nan, and so are its
        estimate and se when a kind of the dataset has no image in the split.
    """
    from napari_segkit.kaggle.evaluation import regression_estimate
    from napari_segkit.kaggle.kinds import KINDS

    baseline = {r.id: r for r in baseline_records}
    missing = [r.id for r in split_records if r.id not in baseline]
    if missing:
        raise ValueError(
            f"the baseline has no score for {len(missing)} of the split's images, e.g. {missing[0]!r}"
        )
    out = {}
    for metric in ("ap", "ap50"):
        mean = partial(_mean_score, metric=metric)
        rows = {}
        for kind in KINDS:
            split = [r for r in split_records if r.kind == kind]
            everyone = [r for r in baseline_records if r.kind == kind]
            if not split:
                continue
            fit = regression_estimate(
                [getattr(r, metric) for r in split],
                [getattr(baseline[r.id], metric) for r in split],
                mean(everyone),
                len(everyone),
            )
            rows[kind] = {
                "split": len(split),
                "population": len(everyone),
                "baseline_split": mean(baseline[r.id] for r in split),
                "baseline_all": mean(everyone),
                "model_split": fit["sample_mean"],
                "estimate": fit["estimate"],
                "se": fit["se"],
                "r": fit["r"],
            }
        shares = {kind: row["population"] / len(baseline_records) for kind, row in rows.items()}
        if sum(row["population"] for row in rows.values()) < len(baseline_records):
            shares = dict.fromkeys(shares, float("nan"))  # a kind with no split image: unknown
        rows["all"] = {
            "split": len(split_records),
            "population": len(baseline_records),
            "baseline_split": mean(baseline[r.id] for r in split_records),
            "baseline_all": mean(baseline_records),
            "model_split": mean(split_records),
            "estimate": sum(shares[k] * row["estimate"] for k, row in rows.items()),
            "se": float(np.sqrt(sum((shares[k] * row["se"]) ** 2 for k, row in rows.items()))),
            "r": float("nan"),
        }
        out[metric] = rows
    return out


def format_estimates(estimates: dict) -> str:
    """:func:`whole_dataset_estimates` as text, one block per metric."""
    lines = ["(d) over the whole dataset, estimated from the split with (a) as the baseline"]
    for metric, name in (("ap", "mAP"), ("ap50", "AP@0.5")):
        lines.append(
            f"{name:<14}{'images':>9}{'(a) split':>11}{'(a) all':>9}"
            f"{'(d) split':>11}{'(d) estimate':>17}{'r':>6}"
        )
        for kind, row in estimates[metric].items():
            images = f"{row['split']}/{row['population']}"
            lines.append(
                f"{kind:<14}{images:>9}{row['baseline_split']:>11.3f}{row['baseline_all']:>9.3f}"
                f"{row['model_split']:>11.3f}{row['estimate']:>9.3f} +- {row['se']:.3f}"
                f"{row['r']:>6.2f}"
            )
    return "\n".join(lines)


def object_size_records(model, samples, kinds: dict) -> tuple[list, int]:
    """DSB2018 scores of ``predict_objects(model, image, object_diameter="auto")`` -- the
    image rescaled when its objects' estimated size lies outside the trained range -- and
    how many images it magnified or shrank."""
    from napari_segkit.kaggle.evaluation import score_instances
    from napari_segkit.models import load_model
    from napari_segkit.tiling import predict_objects

    model = load_model(model)
    records, rescaled = [], 0
    for s in samples:
        result = predict_objects(model, s.image, object_diameter="auto")
        rescaled += result.scale != 1.0
        records.append(score_instances(s.id, kinds[s.id], s.instances, result.instances))
    return records, rescaled


if __name__ == "__main__":
    sys.exit(main())
