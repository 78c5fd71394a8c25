"""3D tiled prediction: napari-segkit vs MONAI's sliding_window_inference, and 3D vs
plane-by-plane Dice on the bundled 3D sample, all in one run.

    python benchmarks/bench_predict_3d.py [--size 128] [--roi 64] [--repeat 2]

Timing: the same 3D U-Net (``unet3d``, width 16, depth 3, random weights, eval mode), the
same in-memory volume (`size`^3, float32), roi `roi`^3, overlap 0.25, Gaussian blending,
batch 2, on the CPU; best of `repeat`, the two alternating. Prints the ratio segkit /
MONAI and the largest difference of the class probabilities.

Quality: nucleus Dice of the bundled 3D model (3D tiles) and of the 2D models (plane by
plane) on the 3D sample (24 x 128 x 128, held out from the 3D model's training).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_segkit.core.metrics import segmentation_report
from napari_segkit.core.synthetic import sample_3d
from napari_segkit.models import build_model, load_model
from napari_segkit.samples import DEFAULT_3D_MODEL, DEFAULT_MODEL, SYNTHETIC_MODEL
from napari_segkit.tiling import predict


def run_segkit(model, volume, roi, batch):
    return predict(
        model,
        volume,
        tile_size=roi,
        overlap=0.25,
        blend="gaussian",
        batch_size=batch,
        device="cpu",
        output="probabilities",
        normalization=None,
    )


def run_monai(model, volume, roi, batch):
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(volume)[None, None]
    with torch.inference_mode():
        out = sliding_window_inference(
            x,
            (roi,) * 3,
            batch,
            lambda t: torch.softmax(model(t), 1),
            overlap=0.25,
            mode="gaussian",
        )
    return out[0].numpy()


def compare_with_monai(model, volume, args) -> None:
    """Time both tilers on the same model and volume, alternating; print the ratio."""
    times = {"segkit": [], "monai": []}
    for _ in range(args.repeat):
        for name, fn in (("segkit", run_segkit), ("monai", run_monai)):
            t = time.perf_counter()
            result = fn(model, volume, args.roi, args.batch_size)
            times[name].append(time.perf_counter() - t)
            if name == "segkit":
                ours = result
            else:
                theirs = result
    best = {k: min(v) for k, v in times.items()}
    print(
        f"segkit {best['segkit']:.2f} s, MONAI {best['monai']:.2f} s, ratio segkit/MONAI "
        f"{best['segkit'] / best['monai']:.3f}, max abs diff {np.abs(ours - theirs).max():.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--roi", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model("unet3d", 1, 2, width=16, depth=3).eval()
    volume = np.random.default_rng(0).random((args.size,) * 3, dtype=np.float32)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, volume {args.size}^3, "
        f"roi {args.roi}^3, overlap 0.25, gaussian, batch {args.batch_size}"
    )
    try:
        import monai  # noqa: F401 -- only the timing comparison needs it
    except ImportError:
        print("MONAI is not installed (pip install monai): the timing comparison is skipped")
    else:
        compare_with_monai(model, volume, args)
    sample = sample_3d()
    for label, path in (
        ("3D model, 3D tiles", DEFAULT_3D_MODEL),
        ("2D synthetic model, plane by plane", SYNTHETIC_MODEL),
        ("2D DSB2018 model, plane by plane", DEFAULT_MODEL),
    ):
        model_file = load_model(path)
        labels = predict(model_file, sample.image)
        report = segmentation_report(sample.semantic > 0, labels > 0, 2)
        print(f"{label}: nucleus Dice {report['dice'][1]:.4f}")


if __name__ == "__main__":
    main()
