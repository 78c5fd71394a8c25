"""Tiled prediction: napari-segkit vs MONAI's sliding_window_inference, same model, same run.

    pip install monai        # benchmark environment only; not a dependency
    python benchmarks/bench_predict_vs_monai.py [--sizes 2048 4096] [--repeat 2]

Same model (SMP U-Net, resnet18 encoder, random weights, eval mode), same in-memory
image, tile 256, overlap 0.25, Gaussian blending, same batch size (4), both under
torch.inference_mode on the CPU. Prints the time ratio segkit / MONAI (best of
`repeat`, alternating the two) and the max abs difference of the class probabilities.
Also prints the non-model overhead of segkit: the share of its wall time spent
outside the model's forward calls (timed by hooks in the same run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_segkit.models import build_model
from napari_segkit.tiling import predict


def run_monai(model, image, tile, overlap, batch):
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(image)[None, None]
    with torch.inference_mode():
        out = sliding_window_inference(
            x,
            (tile, tile),
            batch,
            lambda t: torch.softmax(model(t), 1),
            overlap=overlap,
            mode="gaussian",
        )
    return out[0].numpy()


def run_segkit(model, image, tile, overlap, batch):
    return predict(
        model,
        image,
        tile_size=tile,
        overlap=overlap,
        blend="gaussian",
        batch_size=batch,
        device="cpu",
        output="probabilities",
        normalization=None,
        runtime="torch",  # this benchmark measures our PyTorch engine (see bench_cpu_runtime)
    )


class ModelTimer:
    """Sums the wall time spent inside the model's forward calls (hooks), during a run."""

    def __init__(self, model):
        self.total, self._start = 0.0, None
        model.register_forward_pre_hook(lambda *a: setattr(self, "_start", time.perf_counter()))
        model.register_forward_hook(lambda *a: self._stop())

    def _stop(self):
        self.total += time.perf_counter() - self._start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model("unet", 1, 2, encoder_name="resnet18").eval()
    timer = ModelTimer(model)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, tile {args.tile}, "
        f"overlap {args.overlap}, batch {args.batch_size}"
    )
    for size in args.sizes:
        image = np.random.default_rng(size).random((size, size), dtype=np.float32)
        times = {"segkit": [], "monai": []}
        overheads = []
        for _ in range(args.repeat):
            for name, fn in (("segkit", run_segkit), ("monai", run_monai)):
                timer.total = 0.0
                t = time.perf_counter()
                result = fn(model, image, args.tile, args.overlap, args.batch_size)
                times[name].append(time.perf_counter() - t)
                if name == "segkit":
                    ours = result
                    overheads.append(1 - timer.total / times[name][-1])
                else:
                    theirs = result
        best = {k: min(v) for k, v in times.items()}
        print(
            f"{size} x {size}: segkit {best['segkit']:.2f} s, MONAI {best['monai']:.2f} s, "
            f"ratio segkit/MONAI {best['segkit'] / best['monai']:.3f}, "
            f"max abs diff of probabilities {np.abs(ours - theirs).max():.2e}; "
            f"segkit non-model overhead {100 * min(overheads):.1f} % of wall time"
        )


if __name__ == "__main__":
    main()
