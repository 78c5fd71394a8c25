"""Quality on real data: ISBI 2012 EM membranes (the U-Net paper's dataset).

    python benchmarks/bench_isbi2012.py --minutes 15            # napari-segkit's defaults
    python benchmarks/bench_isbi2012.py --baseline --minutes 10 # the plain SMP loop

Data: ``../shared/data/isbi2012/train`` (24 labelled 512 x 512 slices; 255 = cell
interior, 0 = membrane). Slices 0-19 train, 20-23 are held out (never seen in
training) and scored with:

- membrane Dice (membrane is the class of interest),
- pixel error (1 - pixel accuracy),
- adapted Rand error (scikit-image) between the connected components of the
  cell-interior class in the prediction and in the ground truth (membrane pixels of
  the ground truth are not scored, as in the challenge).

napari-segkit run: ``napari_segkit.train`` with what the toolkit chooses for
membrane-style data -- the original U-Net (width 16, depth 4, same padding),
Dice + cross-entropy weighted by U-Net border weight maps (w0 10, sigma 5: the
thin membranes between two cells weigh most), U-Net elastic deformation, flips,
rotations, intensity jitter, one-cycle schedule -- and tiled prediction with the
tile engine. Validation during training uses slice 19 of the training slices only;
the held-out slices are touched once, at the end.

Baseline (``--baseline``): the plain segmentation-models-pytorch loop the issue
names: U-Net resnet18 (random init: no downloads), BCE, flips, random 256 crops,
Adam 1e-3, batch 4, whole-slice prediction.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from skimage.measure import label as connected_components

from napari_segkit.core.io import read_stack
from napari_segkit.core.metrics import adapted_rand_error

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isbi2012" / "train"
N_TRAIN = 20


def load():
    """images (24, 512, 512) uint8; classes (24, 512, 512): 0 membrane, 1 cell interior."""
    images = np.asarray(read_stack(DATA / "images").data)
    classes = (np.asarray(read_stack(DATA / "labels").data) > 127).astype(np.uint8)
    return images, classes


def score(truth: np.ndarray, pred: np.ndarray) -> dict:
    """truth, pred: (N, Y, X) with 0 membrane, 1 cell interior."""
    membrane_t, membrane_p = truth == 0, pred == 0
    dice = 2 * (membrane_t & membrane_p).sum() / (membrane_t.sum() + membrane_p.sum())
    rand = [
        adapted_rand_error(
            connected_components(t == 1, connectivity=1),
            connected_components(p == 1, connectivity=1),
        )["error"]
        for t, p in zip(truth, pred, strict=False)
    ]
    return {
        "membrane_dice": float(dice),
        "pixel_error": float((truth != pred).mean()),
        "adapted_rand_error": float(np.mean(rand)),
    }


def run_segkit(images, classes, minutes: float, workdir: Path) -> np.ndarray:
    from napari_segkit import predict, train

    # 20 training slices: 19 train, slice 19 validates (checkpoint choice); 20-23 held out
    started = time.monotonic()
    steps_per_epoch, epochs = 50, max(1, int(minutes * 60 / 45))  # ~42 s per epoch here

    def progress(report):
        if report.val is not None:
            print(
                f"  epoch {report.epoch + 1:2d}  loss {report.loss:.4f}  val membrane Dice "
                f"{report.val['dice'][0]:.4f}  {time.monotonic() - started:6.0f} s",
                flush=True,
            )

    model_file = train(
        list(images[: N_TRAIN - 1]),
        list(classes[: N_TRAIN - 1]),
        validation=([images[N_TRAIN - 1]], [classes[N_TRAIN - 1]]),
        out=workdir / "isbi_segkit.safetensors",
        arch="unet_original",
        arch_options={"width": 16, "depth": 4},
        class_names=["membrane", "cell"],
        loss="dice+border_ce",
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=4,
        patch_size=256,
        lr=2e-3,
        patience=epochs,
        progress=progress,
        cancel=lambda: time.monotonic() - started > minutes * 60,
    )
    print(f"  trained {time.monotonic() - started:.0f} s")
    return np.stack(
        [predict(model_file, im, tile_size=256, overlap=0.25) for im in images[N_TRAIN:]]
    )


def run_baseline(images, classes, minutes: float) -> np.ndarray:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x_all = torch.from_numpy(images[:N_TRAIN].astype(np.float32) / 255.0)[:, None]
    # BCE on the membrane channel
    y_all = torch.from_numpy((classes[:N_TRAIN] == 0).astype(np.float32))[:, None]
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    started, steps = time.monotonic(), 0
    model.train()
    while time.monotonic() - started < minutes * 60:
        idx = rng.integers(0, N_TRAIN, 4)
        ys, xs = rng.integers(0, 512 - 256, (2, 4))
        x = torch.stack(
            [x_all[i, :, y : y + 256, s : s + 256] for i, y, s in zip(idx, ys, xs, strict=False)]
        )
        y = torch.stack(
            [
                y_all[i, :, y0 : y0 + 256, s : s + 256]
                for i, y0, s in zip(idx, ys, xs, strict=False)
            ]
        )
        if rng.random() < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        if rng.random() < 0.5:
            x, y = x.flip(-2), y.flip(-2)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    print(f"  baseline: {steps} steps in {time.monotonic() - started:.0f} s")
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(images[N_TRAIN:].astype(np.float32) / 255.0)[:, None]
        membrane = torch.cat([model(x[i : i + 1]) for i in range(len(x))])[:, 0] > 0
    return np.where(membrane.numpy(), 0, 1).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget")
    parser.add_argument("--baseline", action="store_true", help="run the plain SMP loop instead")
    parser.add_argument("--workdir", default="/tmp/segkit-isbi")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    images, classes = load()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.baseline:
        print(f"plain SMP loop (U-Net resnet18, BCE, flips, 256 crops, Adam), {args.minutes} min:")
        pred = run_baseline(images, classes, args.minutes)
    else:
        print(f"napari-segkit defaults for membranes, {args.minutes} min:")
        pred = run_segkit(images, classes, args.minutes, workdir)
    result = score(classes[N_TRAIN:], pred)
    print(
        f"held-out slices {N_TRAIN}-{len(images) - 1}: membrane Dice {result['membrane_dice']:.3f}  "
        f"pixel error {result['pixel_error']:.3f}  adapted Rand error "
        f"{result['adapted_rand_error']:.3f}"
    )


if __name__ == "__main__":
    main()
