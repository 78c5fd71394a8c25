"""The default model on a 512 x 512 image on the CPU: the whole predict() vs one forward pass.

    python benchmarks/bench_default_model.py --repeat 5

Issue 16 asks the bundled default model to segment a 512 x 512 image in at most 0.5 s
on this machine's CPU, tiles and all. Measured here, alternating in one process
(best of N):

- ``forward``: the reference, the network alone on the whole image (one 1 x 1 x 512 x
  512 forward pass, no normalisation, no tiles, no blending) -- the work's floor;
- ``predict``: ``predict(model, image)`` with the model file's own tiles (the bundled
  file's are 512 pixels: one tile here) and everything around them (normalisation,
  blending, argmax);
- ``predict + instances``: plus the watershed that splits touching nuclei;
- ``objects, auto size``: ``predict_objects(model, image, object_diameter="auto")`` on
  the same image (its nuclei lie in the trained range: one prediction, the size estimate);
- ``objects, auto, small``: the same on the image shrunk to 256 x 256 (nuclei half as
  wide, below the trained range): a first prediction, then the image magnified to the
  trained size and predicted again -- what a user at another pixel size pays.

Printed: seconds and the ratio to the forward pass. The image is a real DSB2018 RGB
image (512 x 640 cropped to 512 x 512) when ``../shared/data`` is there, else synthetic.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "dsb2018-train" / "stage1_train"


def test_image() -> tuple[np.ndarray, str]:
    from napari_segkit.kaggle.datasets import read_image

    if REAL.is_dir():
        for folder in sorted(REAL.iterdir()):
            image = read_image(folder / "images" / f"{folder.name}.png")
            if min(image.shape[:2]) >= 512:
                return image[:512, :512], f"DSB2018 {folder.name[:8]} {image.shape}"
    from napari_segkit.core.synthetic import make_nuclei

    return make_nuclei((512, 512), seed=0).image, "synthetic nuclei"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", type=Path, help="default: the bundled default model")
    args = parser.parse_args()

    from napari_segkit import predict
    from napari_segkit.core.instances import instances_from_prediction
    from napari_segkit.models import load_model
    from napari_segkit.samples import default_model_path

    path = args.model or default_model_path()
    model_file = load_model(path)
    image, source = test_image()
    x = torch.zeros(1, model_file.info.in_channels, 512, 512)
    net = model_file.model.eval()

    def forward():
        with torch.inference_mode():
            net(x)

    def run_predict():
        predict(model_file, image)

    def with_instances():
        _, probs = predict(model_file, image, output="both")
        instances_from_prediction(probs)

    from skimage.transform import rescale

    from napari_segkit import predict_objects

    channel_axis = -1 if image.ndim == 3 else None
    small = rescale(image.astype(np.float32), 0.5, channel_axis=channel_axis, preserve_range=True)

    def objects_auto():
        return predict_objects(model_file, image, object_diameter="auto")

    def objects_auto_small():
        return predict_objects(model_file, small, object_diameter="auto")

    print(f"auto size: {objects_auto().describe()}; shrunk: {objects_auto_small().describe()}")
    runs = (
        ("forward", forward),
        ("predict", run_predict),
        ("predict + instances", with_instances),
        ("objects, auto size", objects_auto),
        ("objects, auto, small", objects_auto_small),
    )
    for _, fn in runs:  # warm-up (allocations, caches)
        fn()
    results = {name: best_of(fn, args.repeat) for name, fn in runs}
    size = path.stat().st_size / 2**20
    print(
        f"model {path.name} ({size:.1f} MB), image: {source}, torch threads "
        f"{torch.get_num_threads()}, best of {args.repeat}"
    )
    for name, seconds in results.items():
        print(f"{name:<22}{seconds:8.3f} s   x{seconds / results['forward']:.2f} forward")


if __name__ == "__main__":
    main()
