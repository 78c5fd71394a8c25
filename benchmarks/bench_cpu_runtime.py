"""The CPU runtime: onnxruntime vs our PyTorch path vs MONAI, same models, same run.

    python benchmarks/bench_cpu_runtime.py [--size 2048] [--repeat 2]

Two models: SMP's U-Net with a resnet18 encoder (random weights, 1 channel, 2 classes)
and the bundled default model (``nuclei_dsb2018.safetensors``, RGB, 3 classes). One
in-memory image of `size` x `size`, tile 256, overlap 0.25, Gaussian blending, batch 4,
no normalisation (the same input for all three), on the CPU:

* ``segkit torch``: ``predict(..., runtime="torch")`` (batch norm folded, channels-last);
* ``segkit onnxruntime``: ``predict(..., runtime="onnxruntime")``, the model converted
  once beforehand (the conversion time is printed separately: "auto" pays it once per
  loaded model, and only for images of at least 2048 x 2048 pixels);
* ``MONAI``: ``sliding_window_inference`` on the PyTorch model.

Prints best-of-`repeat` times (the three alternate within each repeat), the ratios, and
the largest difference of the class probabilities between onnxruntime and PyTorch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_segkit.models import build_model, load_model
from napari_segkit.samples import DEFAULT_MODEL
from napari_segkit.tiling import predict


def run_segkit(model, image, runtime, args):
    return predict(
        model,
        image,
        tile_size=args.tile,
        overlap=args.overlap,
        blend="gaussian",
        batch_size=args.batch_size,
        device="cpu",
        output="probabilities",
        normalization=None,
        tta=None,
        runtime=runtime,
    )


def run_monai(module, image, args):
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0)))[None]
    with torch.inference_mode():
        out = sliding_window_inference(
            x,
            (args.tile, args.tile),
            args.batch_size,
            lambda t: torch.softmax(module(t), 1),
            overlap=args.overlap,
            mode="gaussian",
        )
    return out[0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    smp_unet = build_model("unet", 1, 2, encoder_name="resnet18").eval()
    smp_unet.in_channels, smp_unet.num_classes = 1, 2
    default = load_model(DEFAULT_MODEL)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, image {args.size}^2, "
        f"tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}"
    )
    rng = np.random.default_rng(0)
    for label, model, channels in (
        ("SMP U-Net resnet18", smp_unet, 1),
        ("bundled default model", default, 3),
    ):
        image = rng.random((args.size, args.size, channels), dtype=np.float32)
        module = model.model if hasattr(model, "model") else model
        small = image[:256, :256]
        t = time.perf_counter()
        run_segkit(model, small, "onnxruntime", args)  # converts once (cached per model)
        conversion = time.perf_counter() - t
        times = {"torch": [], "onnxruntime": [], "monai": []}
        results = {}
        for _ in range(args.repeat):
            for name in times:
                t = time.perf_counter()
                if name == "monai":
                    results[name] = run_monai(module, image, args)
                else:
                    results[name] = run_segkit(model, image, name, args)
                times[name].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items()}
        diff = np.abs(results["onnxruntime"] - results["torch"]).max()
        print(
            f"{label}: torch {best['torch']:.2f} s, onnxruntime {best['onnxruntime']:.2f} s, "
            f"MONAI {best['monai']:.2f} s; ratios onnxruntime/torch "
            f"{best['onnxruntime'] / best['torch']:.3f}, onnxruntime/MONAI "
            f"{best['onnxruntime'] / best['monai']:.3f}, torch/MONAI "
            f"{best['torch'] / best['monai']:.3f}; max |onnxruntime - torch| {diff:.1e}; "
            f"one-time conversion {conversion:.1f} s"
        )


if __name__ == "__main__":
    main()
