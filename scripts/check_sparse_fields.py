"""How the default model copes with nuclei sparse in a large field, with and without
re-normalising to them (``predict_objects(..., renormalize_sparse=...)``).

    python scripts/check_sparse_fields.py --data ../shared/data/dsb2018-train

The densest 96 x 96 crop of each of the first ``--images`` validation images of a kind
(fluorescence: bright nuclei on a dark background; tissue: dark nuclei on a bright
one) is predicted on its own, then put in the corner of fields of growing size (the
image's own background colour plus camera-like noise, sigma 1), so that its nuclei
cover an ever smaller share of the pixels. Prints, per kind and field, the median share,
the mean AP of the crops' nuclei with the plain percentile normalisation and with the
re-normalisation, how many crops were re-normalised, and the seconds per image.
``--all`` also predicts every image of the dataset and prints how many were
re-normalised (none should be: DSB2018's images hold a usual share of nuclei).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CROP = 96
KINDS = ("fluorescence", "tissue")


def densest_crop(instances: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """The (y, x) of the `size` window (on a 16-pixel grid) with the most foreground."""
    ny, nx = instances.shape
    starts = [
        (y, x)
        for y in range(0, max(ny - size, 0) + 1, 16)
        for x in range(0, max(nx - size, 0) + 1, 16)
    ]
    return max(starts, key=lambda p: (instances[p[0] : p[0] + size, p[1] : p[1] + size] > 0).sum())


def sparse_field(image: np.ndarray, instances: np.ndarray, size: int, seed: int = 0):
    """`image`'s (Y, X, 3) densest crop in the corner of a `size` x `size` field of its
    background colour plus noise (the crop alone for a `size` below it): (field, the
    crop's true instances)."""
    y, x = densest_crop(instances)
    crop, truth = image[y : y + CROP, x : x + CROP], instances[y : y + CROP, x : x + CROP]
    if size <= CROP:
        return crop, truth
    background = np.median(image[instances == 0], axis=0)
    noise = np.random.default_rng(seed).normal(0, 1, (size, size, 1))
    field = np.clip(np.rint(background + noise), 0, 255).astype(np.uint8)
    field[: crop.shape[0], : crop.shape[1]] = crop
    return field, truth


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018-train"))
    parser.add_argument("--model", help="model file (default: the bundled default)")
    parser.add_argument("--images", type=int, default=8, help="validation images per kind")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 512, 1024, 2048])
    parser.add_argument("--all", action="store_true", help="also count re-normalised images")
    args = parser.parse_args(argv)

    from napari_segkit import predict_objects
    from napari_segkit.kaggle import average_precision, load_dataset, read_dsb2018
    from napari_segkit.models import load_model
    from napari_segkit.samples import DEFAULT_MODEL

    model = load_model(args.model or DEFAULT_MODEL)
    kinds = model.info.training["validation_kinds"]
    root = args.data / "stage1_train" if (args.data / "stage1_train").is_dir() else args.data
    chosen = {
        kind: sorted(i for i, k in kinds.items() if k == kind)[: args.images] for kind in KINDS
    }
    ids = [i for kind in KINDS for i in chosen[kind]]
    if root.name == "stage1_train":
        read = read_dsb2018(root, ids=ids)
    else:  # a packed copy (scripts/pack_dsb2018.py)
        read = [s for s in load_dataset(root) if s.id in ids]
    by_id = {s.id: s for s in read}
    predict_objects(model, read[0].image)  # warm-up: the first call prepares the model
    print(f"model {Path(model.path).name}, the densest {CROP} x {CROP} crop of each image")
    for kind in KINDS:
        print(f"{kind} ({len(chosen[kind])} images)")
        print(
            f"{'field':>6} {'share':>8} {'AP plain':>9} {'AP renorm':>10} {'renormalised':>13}  seconds"
        )
        for size in args.sizes:
            shares, scores, renormalised, seconds = [], {False: [], True: []}, 0, [0.0, 0.0]
            for image_id in chosen[kind]:
                sample = by_id[image_id]
                image = sample.image if sample.image.ndim == 3 else np.dstack([sample.image] * 3)
                field, truth = sparse_field(image[..., :3], sample.instances, size)
                shares.append((truth > 0).sum() / field.shape[0] / field.shape[1])
                for n, renormalize in enumerate((False, True)):
                    start = time.perf_counter()
                    found = predict_objects(model, field, renormalize_sparse=renormalize)
                    seconds[n] += time.perf_counter() - start
                    shown = found.instances[: truth.shape[0], : truth.shape[1]]
                    scores[renormalize].append(average_precision(truth, shown))
                renormalised += found.renormalized
            k = len(chosen[kind])
            print(
                f"{size:>6} {np.median(shares):>8.4f} {np.mean(scores[False]):>9.3f} "
                f"{np.mean(scores[True]):>10.3f} {renormalised:>9} of {k}  "
                f"{seconds[0] / k:.1f} / {seconds[1] / k:.1f}"
            )
    if args.all:
        samples = load_dataset(root)
        renormalised = [s.id for s in samples if predict_objects(model, s.image).renormalized]
        print(f"re-normalised: {len(renormalised)} of {len(samples)} images {renormalised}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
