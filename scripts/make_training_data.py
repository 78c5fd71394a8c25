"""Write the synthetic training set the bundled default model is trained on.

    python scripts/make_training_data.py /tmp/nuclei-train

16 images of 256 x 256 synthetic nuclei (seeds 100-115, so none is the demo sample,
seed 0) with varied crowding and noise, and their semantic labels (0 background,
1 nucleus) as ``image_NN.tif`` / ``labels_NN.tif``. Deterministic.
"""

import argparse
from pathlib import Path

import tifffile

from napari_segkit.core.synthetic import make_nuclei


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", type=int, default=16, help="number of images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        sample = make_nuclei(
            (256, 256),
            radius=(5.0, 12.0),
            touching_fraction=0.2 + 0.4 * (i % 3) / 2,
            noise=0.6 + 0.4 * (i % 4) / 3,
            seed=100 + i,
        )
        tifffile.imwrite(args.out / f"image_{i:02d}.tif", sample.image, compression="zlib")
        tifffile.imwrite(args.out / f"labels_{i:02d}.tif", sample.semantic, compression="zlib")
    print(f"wrote {args.n} image/label pairs to {args.out}")


if __name__ == "__main__":
    main()
