"""The default model's tile size: speed and score on the validation split, speed and
peak memory on a large image.

    python benchmarks/bench_default_tile_size.py --tiles 192 512 1024 [--repeat 2]

The bundled model file's tile size (what ``predict`` uses unless told otherwise) is a
choice between speed and memory; the weights are the same for any tile. For each tile
size this prints, against the file's own (512):

- the 82 validation images of ``../shared/data/dsb2018-train`` predicted with
  ``score_models`` and the file's tuned post-processing: seconds (best of --repeat),
  and DSB2018 mean AP, fluorescence and all kinds -- a tile smaller than the image cuts
  it into overlapping tiles blended back together, which should change the score little;
- a 2048 x 2048 RGB image (a real DSB2018 image tiled, so the nuclei are real ones)
  predicted by ``predict`` in a fresh subprocess per tile size: seconds (best of
  --repeat in that process) and its peak resident memory (ru_maxrss, torch's own
  ~0.4 GB included).

Every figure of a tile size is a ratio to the file's tile size, measured in the same run.
Run it with nothing else busy: the seconds are wall time on this machine's CPUs.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dsb2018-train"

#: predicts the large image with one tile size; prints seconds and ru_maxrss (KiB)
CHILD = """
import resource, sys, time
import numpy as np
from napari_segkit.models import load_model
from napari_segkit.samples import DEFAULT_MODEL
from napari_segkit.tiling import predict
image, model = np.load(sys.argv[1]), load_model(DEFAULT_MODEL)
best = float("inf")
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    predict(model, image, axes="YXC", tile_size=int(sys.argv[2]))
    best = min(best, time.perf_counter() - t)
print(best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def large_image(side: int = 2048) -> np.ndarray:
    """A `side` x `side` RGB uint8 image: the first DSB2018 training image of at least
    512 x 512 pixels, its 512 x 512 corner repeated (mirrored, so no seams)."""
    from napari_segkit.kaggle.datasets import read_image

    for folder in sorted((DATA / "stage1_train").iterdir()):
        image = read_image(folder / "images" / f"{folder.name}.png")
        if min(image.shape[:2]) >= 512:
            corner = image[:512, :512, :3]
            block = np.concatenate([corner, corner[::-1]], axis=0)
            block = np.concatenate([block, block[:, ::-1]], axis=1)
            reps = -(-side // block.shape[0])
            return np.ascontiguousarray(np.tile(block, (reps, reps, 1))[:side, :side])
    raise SystemExit(f"no DSB2018 image of 512 x 512 or more under {DATA}")


def validation_scores(model, samples, tile: int, repeat: int) -> tuple[float, float, float]:
    """(best seconds, fluorescence mean AP, all kinds mean AP) of the split with `tile`."""
    from napari_segkit.kaggle.evaluation import score_models

    tiled = dataclasses.replace(model, info=dataclasses.replace(model.info, tile_size=[tile] * 2))
    options = model.info.instance_options()
    post = {k: options[k] for k in ("threshold", "seed_threshold", "min_size")}
    kinds = model.info.training["validation_kinds"]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        records = score_models([tiled], samples, **post)
        best = min(best, time.perf_counter() - started)
    fluorescence = [r.ap for r in records if kinds[r.id] == "fluorescence"]
    return best, float(np.mean(fluorescence)), float(np.mean([r.ap for r in records]))


def large_image_run(path: Path, tile: int, repeat: int) -> tuple[float, float]:
    """(best seconds, peak resident GB) of ``predict`` on the saved large image."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(tile), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, maxrss_kib = result.stdout.split()[-2:]
    return float(seconds), int(maxrss_kib) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=[192, 512, 1024])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/segkit-bench-tiles"))
    args = parser.parse_args()
    from napari_segkit.kaggle import read_dsb2018
    from napari_segkit.models import load_model
    from napari_segkit.samples import DEFAULT_MODEL

    if not (DATA / "stage1_train").is_dir():
        raise SystemExit(f"this benchmark reads the real validation images: {DATA} is missing")
    model = load_model(DEFAULT_MODEL)
    own = int(model.info.tile_size[0])
    tiles = sorted({*args.tiles, own})
    samples = read_dsb2018(DATA / "stage1_train", ids=model.info.training["validation_ids"])
    args.workdir.mkdir(parents=True, exist_ok=True)
    image_path = args.workdir / "large.npy"
    np.save(image_path, large_image())

    rows = {}
    for tile in tiles:
        rows[tile] = (
            *validation_scores(model, samples, tile, args.repeat),
            *large_image_run(image_path, tile, args.repeat),
        )
    seconds0, _, _, large0, peak0 = rows[own]
    print(
        f"default model, {len(samples)} validation images; 2048 x 2048 RGB image; "
        f"best of {args.repeat}; ratios to the file's tile size ({own})"
    )
    print("tile   split s  (ratio)  mAP fluorescence / all    2048 s  (ratio)  peak GB  (ratio)")
    for tile, (seconds, fluorescence, every, large, peak) in rows.items():
        print(
            f"{tile:>4}  {seconds:8.1f}  ({seconds / seconds0:5.2f})  {fluorescence:8.3f} / "
            f"{every:.3f}     {large:7.1f}  ({large / large0:5.2f})  {peak:7.2f}  "
            f"({peak / peak0:5.2f})"
        )


if __name__ == "__main__":
    main()
