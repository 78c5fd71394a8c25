"""Train the bundled 3D nuclei model on stacks from the synthetic 3D sample's generator.

    python scripts/train_default_3d_model.py \\
        --out src/napari_segkit/sample_data/nuclei_3d_unet.safetensors

The stacks come from :func:`napari_segkit.core.synthetic.make_nuclei` with the 3D
sample's settings (24 x 128 x 128, radii 6-10 voxels) and other seeds than the sample's
(the sample is seed 1; training uses seeds 100.., validation 200..), so the score the
demo prints on the sample is a held-out score. Everything that decides the result is in
``CONFIG`` and is recorded in the model file. Runs on the CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

CONFIG = {
    "arch": "unet3d",
    "arch_options": {"width": 8, "depth": 3},
    "shape": (24, 128, 128),
    "radius": (6.0, 10.0),
    "train_seeds": list(range(100, 108)),
    "val_seeds": [200, 201],
    "loss": "dice+ce",
    "epochs": 8,
    "steps_per_epoch": 60,
    "batch_size": 2,
    "patch_size": 48,
    "lr": 3e-3,
    "schedule": "onecycle",
    "seed": 0,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from napari_segkit.core.metrics import segmentation_report
    from napari_segkit.core.synthetic import make_nuclei, sample_3d
    from napari_segkit.tiling import predict
    from napari_segkit.training import train

    def stacks(seeds):
        samples = [make_nuclei(CONFIG["shape"], radius=CONFIG["radius"], seed=s) for s in seeds]
        return [s.image for s in samples], [s.semantic for s in samples]

    images, labels = stacks(CONFIG["train_seeds"])
    started = time.monotonic()

    def progress(report):
        if report.end_of_epoch:
            dice = " ".join(f"{d:.3f}" for d in report.val["dice"]) if report.val else "-"
            print(
                f"[{(time.monotonic() - started) / 60:5.1f} min] epoch {report.epoch + 1:2d} "
                f"loss {report.loss:.4f}  val Dice [{dice}]{'  best' if report.best else ''}",
                flush=True,
            )

    model = train(
        images,
        labels,
        validation=stacks(CONFIG["val_seeds"]),
        out=args.out,
        arch=CONFIG["arch"],
        arch_options=CONFIG["arch_options"],
        class_names=["background", "nucleus"],
        spacing=(1.0, 1.0, 1.0),
        overwrite=args.overwrite,
        progress=progress,
        provenance={
            "dataset": "synthetic 3D nuclei (make_nuclei, the 3D sample's settings, seeds "
            f"{CONFIG['train_seeds'][0]}-{CONFIG['train_seeds'][-1]}; the sample is seed 1)",
            "script": "scripts/train_default_3d_model.py",
            "script_config": CONFIG,
        },
        **{k: CONFIG[k] for k in ("loss", "epochs", "steps_per_epoch", "batch_size")},
        **{k: CONFIG[k] for k in ("patch_size", "lr", "schedule", "seed")},
    )
    sample = sample_3d()
    labels_3d = predict(model, sample.image)
    report = segmentation_report(sample.semantic, labels_3d, 2)
    print(f"the 3D sample (seed 1, held out): nucleus Dice {report['dice'][1]:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
