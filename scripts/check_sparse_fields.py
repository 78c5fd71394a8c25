"""How the default model copes with nuclei sparse in a large field, with and without
re-normalising to them (``predict_objects(..., renormalize_sparse=...)``).

    python scripts/check_sparse_fields.py --data ../shared/data/dsb2018-train

A 64 x 64 crop of a real validation image (the densest of its first fluorescence
image: 6 nuclei) is put in the corner of dark fields of growing size (the image's own
background colour plus camera-like noise, sigma 1), so the nuclei cover an ever smaller
share of the pixels. Prints, per field, that share, the mean AP of the crop's nuclei
with the plain percentile normalisation and with the re-normalisation, and the seconds
each took. ``--all`` also predicts every image of the dataset and prints how many were
re-normalised (none should be: DSB2018's images hold a usual share of nuclei).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CROP = 64


def densest_crop(instances: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """The (y, x) of the `size` window (on a 16-pixel grid) with the most foreground."""
    ny, nx = instances.shape
    starts = [(y, x) for y in range(0, ny - size + 1, 16) for x in range(0, nx - size + 1, 16)]
    return max(starts, key=lambda p: (instances[p[0] : p[0] + size, p[1] : p[1] + size] > 0).sum())


def sparse_field(image: np.ndarray, instances: np.ndarray, size: int, seed: int = 0):
    """`image`'s densest crop in the corner of a `size` x `size` field of its background
    colour plus noise: (field, the crop's true instances)."""
    y, x = densest_crop(instances)
    background = np.median(image[instances == 0], axis=0)
    noise = np.random.default_rng(seed).normal(0, 1, (size, size, 1))
    field = np.clip(background + noise, 0, 255).astype(np.uint8)
    field[:CROP, :CROP] = image[y : y + CROP, x : x + CROP]
    return field, instances[y : y + CROP, x : x + CROP]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018-train"))
    parser.add_argument("--model", help="model file (default: the bundled default)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512, 1024, 2048])
    parser.add_argument("--all", action="store_true", help="also count re-normalised images")
    args = parser.parse_args(argv)

    from napari_segkit import predict_objects
    from napari_segkit.kaggle import average_precision, load_dataset, read_dsb2018
    from napari_segkit.models import load_model
    from napari_segkit.samples import DEFAULT_MODEL

    model = load_model(args.model or DEFAULT_MODEL)
    kinds = model.info.training["validation_kinds"]
    first = min(i for i, k in kinds.items() if k == "fluorescence")
    root = args.data / "stage1_train" if (args.data / "stage1_train").is_dir() else args.data
    if root.name == "stage1_train":
        (sample,) = read_dsb2018(root, ids=[first])
    else:  # a packed copy (scripts/pack_dsb2018.py)
        (sample,) = [s for s in load_dataset(root) if s.id == first]
    print(f"crop of {first[:8]}: {CROP} x {CROP}, model {Path(model.path).name}")
    predict_objects(model, sample.image)  # warm-up: the first call prepares the model
    print(f"{'field':>6} {'share':>8} {'objects':>8} {'AP plain':>9} {'AP renorm':>10}  seconds")
    for size in args.sizes:
        field, truth = sparse_field(sample.image, sample.instances, size)
        scores, seconds = [], []
        for renormalize in (False, True):
            start = time.perf_counter()
            found = predict_objects(model, field, renormalize_sparse=renormalize)
            seconds.append(time.perf_counter() - start)
            scores.append(average_precision(truth, found.instances[:CROP, :CROP]))
        share = (truth > 0).sum() / size**2
        mark = " (re-normalised)" if found.renormalized else ""
        print(
            f"{size:>6} {share:>8.4f} {len(np.unique(truth)) - 1:>8} {scores[0]:>9.3f} "
            f"{scores[1]:>10.3f}  {seconds[0]:.1f} / {seconds[1]:.1f}{mark}"
        )
    if args.all:
        samples = load_dataset(root)
        renormalised = [s.id for s in samples if predict_objects(model, s.image).renormalized]
        print(f"re-normalised: {len(renormalised)} of {len(samples)} images {renormalised}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
