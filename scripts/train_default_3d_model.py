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
    # "semantic": background / nucleus; "boundary": background / interior / boundary drawn
    # in 3D, so that a 3D watershed parts touching nuclei
    "target": "semantic",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--target", choices=("semantic", "boundary"), help="override CONFIG['target']"
    )
    args = parser.parse_args(argv)
    config = {**CONFIG, **({"target": args.target} if args.target else {})}

    from napari_segkit.core.metrics import segmentation_report
    from napari_segkit.core.synthetic import make_nuclei, sample_3d
    from napari_segkit.kaggle.metrics import average_precision
    from napari_segkit.tiling import predict_objects
    from napari_segkit.training import train

    boundary = config["target"] == "boundary"

    def stacks(seeds):
        samples = [make_nuclei(config["shape"], radius=config["radius"], seed=s) for s in seeds]
        return [s.image for s in samples], [
            s.instances if boundary else s.semantic for s in samples
        ]

    images, labels = stacks(config["train_seeds"])
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
        validation=stacks(config["val_seeds"]),
        out=args.out,
        arch=config["arch"],
        arch_options=config["arch_options"],
        target=config["target"],
        class_names=(
            ["background", "interior", "boundary"] if boundary else ["background", "nucleus"]
        ),
        spacing=(1.0, 1.0, 1.0),
        overwrite=args.overwrite,
        progress=progress,
        provenance={
            "dataset": "synthetic 3D nuclei (make_nuclei, the 3D sample's settings, seeds "
            f"{config['train_seeds'][0]}-{config['train_seeds'][-1]}; the sample is seed 1)",
            "script": "scripts/train_default_3d_model.py",
            "script_config": config,
        },
        **{k: config[k] for k in ("loss", "epochs", "steps_per_epoch", "batch_size")},
        **{k: config[k] for k in ("patch_size", "lr", "schedule", "seed")},
    )
    sample = sample_3d()
    found = predict_objects(model, sample.image)  # its classes, and its objects in 3D
    report = segmentation_report(sample.semantic > 0, found.labels > 0, 2)
    ap = average_precision(sample.instances, found.instances, semantic=False)
    ap50 = average_precision(sample.instances, found.instances, semantic=False, thresholds=[0.5])
    print(
        f"the 3D sample (seed 1, held out): nucleus Dice {report['dice'][1]:.4f}; "
        f"{found.instances.max()} objects for its {sample.instances.max()} nuclei, "
        f"mean AP {ap:.3f}, AP@0.5 {ap50:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
