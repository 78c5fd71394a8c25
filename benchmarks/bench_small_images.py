"""Many small images: a loop of predict() calls vs one pure forward pass per image.

    python benchmarks/bench_small_images.py --images 100 --repeat 3

A Kaggle test folder is thousands of small images (DSB2018: 256 to 520 pixels a side).
With one loaded model, every predict() call should cost little more than the model's
own forward pass. The reference is the model file's network called directly on each
image, padded to its multiple, with the same normalisation -- the physical limit of
the work. Both run in this process, alternating, best of N; the ratio is printed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    from napari_segkit.core.synthetic import make_nuclei

    rng = np.random.default_rng(seed)
    sides = rng.integers(256, 521, size=(n, 2))
    return [make_nuclei((int(h), int(w)), seed=i).image for i, (h, w) in enumerate(sides)]


def pure_forward(model_file, batch: list[np.ndarray]) -> float:
    """The reference: normalise, one forward of the prepared network per image, argmax."""
    from napari_segkit.tiling.optimize import prepare_for_inference

    net = prepare_for_inference(
        model_file.model, in_channels=1, divisor=int(model_file.model.divisor)
    )
    started = time.perf_counter()
    with torch.inference_mode():
        for image in batch:
            lo, hi = np.percentile(image, (1, 99.8))
            x = torch.from_numpy(((image - lo) / max(hi - lo, 1e-8)).astype(np.float32))
            x = x[None, None].contiguous(memory_format=torch.channels_last)
            net(x).argmax(1)
    return time.perf_counter() - started


def with_predict(model_file, batch: list[np.ndarray]) -> float:
    from napari_segkit import predict

    started = time.perf_counter()
    for image in batch:
        predict(model_file, image, tile_size=1024)  # one tile per image, as the reference
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default=str(ROOT / "sample_data" / "nuclei_unet.safetensors"))
    args = parser.parse_args()

    from napari_segkit import load_model

    model_file = load_model(args.model)
    batch = images(args.images)
    pixels = sum(i.size for i in batch)
    with_predict(model_file, batch[:3])  # warm-up: preparation, allocator, threads
    pure_forward(model_file, batch[:3])
    best = {"predict": np.inf, "forward": np.inf}
    for _ in range(args.repeat):
        best["predict"] = min(best["predict"], with_predict(model_file, batch))
        best["forward"] = min(best["forward"], pure_forward(model_file, batch))
    ratio = best["predict"] / best["forward"]
    print(
        f"{args.images} images, {pixels / 1e6:.1f} Mpx: predict() loop {best['predict']:.2f} s, "
        f"pure forward {best['forward']:.2f} s, ratio {ratio:.3f} "
        f"(overhead {100 * (ratio - 1):.1f} %)"
    )


if __name__ == "__main__":
    main()
