"""Training step throughput: napari-segkit's fit loop vs a bare loop on in-memory tensors.

    python benchmarks/bench_train_throughput.py --steps 30

Same model (original U-Net, width 16, depth 4), batch 4 of 256 x 256, AdamW,
Dice + cross-entropy. The bare loop feeds one pre-built batch again and again (no
data pipeline at all); the fit loop samples random patches from 512 x 512 images,
augments them (flips, rotations, U-Net elastic deformation, intensity jitter),
computes U-Net border weight maps per patch ("dice+border_ce"), clips gradients and
steps the one-cycle schedule -- with the pipeline in the main process
(num_workers=0) and in one DataLoader worker process (num_workers=1). Prints
steps/s of each and the ratio fit / bare (goal >= 0.95: the pipeline hidden behind
compute). The first 3 steps of every run are not timed (warm-up).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from napari_segkit.config import TrainConfig
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.losses import get_loss
from napari_segkit.models import build_model
from napari_segkit.training import fit, prepare_training_set

WARMUP = 3


def model():
    torch.manual_seed(0)
    return build_model("unet_original", 1, 2, width=16, depth=4)


def bare_loop(steps: int) -> float:
    net = model()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    criterion = get_loss("dice+ce")
    x = torch.randn(4, 1, 256, 256)
    y = torch.randint(0, 2, (4, 256, 256))
    net.train()
    for i in range(steps + WARMUP):
        if i == WARMUP:
            start = time.perf_counter()
        loss = criterion(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def fit_loop(steps: int, num_workers: int) -> float:
    samples = [make_nuclei((512, 512), seed=s) for s in range(4)]
    data = prepare_training_set([s.image for s in samples], [s.semantic for s in samples])
    config = TrainConfig(
        loss="dice+border_ce",
        epochs=1,
        steps_per_epoch=steps + WARMUP,
        batch_size=4,
        patch_size=256,
        num_workers=num_workers,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for report in fit(model(), data, None, config, out=Path(tmp) / "m.safetensors"):
            if report.end_of_epoch:
                break
            if report.step == WARMUP:
                start = time.perf_counter()
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, {args.steps} timed steps each")
    bare = bare_loop(args.steps)
    print(f"bare loop (in-memory batch):       {bare:.3f} steps/s")
    for workers in (0, 1):
        rate = fit_loop(args.steps, workers)
        print(
            f"fit loop, num_workers={workers}:         {rate:.3f} steps/s   ratio fit/bare "
            f"{rate / bare:.3f}"
        )
    print(f"bare loop again (drift check):     {bare_loop(args.steps):.3f} steps/s")


if __name__ == "__main__":
    main()
