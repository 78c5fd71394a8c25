"""Train the default nuclei model on the real DSB2018 images (``dsb2018-train``).

    python scripts/train_default_model.py --data ../shared/data/dsb2018-train \\
        --out src/napari_segkit/sample_data/nuclei_dsb2018.safetensors

Everything that decides the result is in ``CONFIG`` below (and written into the model
file's ``training`` section with the validation ids, so the file says how it was made).
The validation split holds out 15 % of every image kind (fluorescence, colour tissue,
bright-field: :func:`napari_segkit.kaggle.split_by_kind`), seed 0; ``scripts/
evaluate_default_model.py`` scores on exactly these ids.

The model is a small original U-Net (width 16, depth 4: 1.9 M parameters, 7.5 MB)
trained on background / interior / boundary targets (touching nuclei are split by a
watershed from the interiors). It is colour-aware: it reads every image as RGB (a gray
image as three equal channels, ``color="rgb"``), so one model serves fluorescence,
stained tissue and bright-field. ``--color gray`` trains the alternative measured
against it (one luminance channel, bright backgrounds inverted when normalising); see
README "The bundled default model" for that comparison.

Training runs on the CPU here (2 cores: ``--minutes`` bounds it; ``--resume``
continues an interrupted run, with more ``--epochs`` if wanted) or on a GPU. ``--init
FILE`` starts a further stage from a finished file's weights with a new schedule (``--lr``,
``--seed``, ``--epochs``); the new file records the earlier stages (``earlier_stages``);
with ``--oversample-hard`` such a stage draws more patches from the training images the
``--init`` model does badly on (:func:`hard_example_copies`).
The bundled file was made in five stages: README "The bundled default model" has the commands.
``--width`` trains a wider (or narrower) network from scratch; with ``--init`` it widens
that file's network first (:func:`widened`: the wider network computes what the file's did,
and the new channels start learning from there); on a GPU, ``--num-workers``
feeds it (``--device cuda``: mixed precision). ``--plan-minutes`` fits the schedule to a
time budget on a machine of unknown speed (a short probe run times it first), and
``--no-tune`` leaves the post-processing to a later ``--tune-only`` run;
``scripts/gpu_offline/`` uses both to train on a lent GPU machine without network.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

CONFIG = {
    "arch": "unet_original",
    "arch_options": {"width": 16, "depth": 4},
    "target": "boundary",
    "boundary_width": 2,
    "color": "rgb",
    "normalization": {"mode": "percentile", "low": 1.0, "high": 99.8},
    "loss": "dice+ce",
    # further options of the loss (TrainConfig.loss_options), e.g. {"per_image": True}
    "loss_options": {},
    # U-Net border weights (Ronneberger et al.), used by the "dice+border_ce" loss only:
    # for this boundary target they weight the pixels between touching interiors
    "w0": 10.0,
    "sigma": 5.0,
    # random in-plane zoom of the training patches (log-uniform; (1, 1): off): nuclei seen
    # at other pixel sizes than DSB2018's, as another objective or camera gives them
    "zoom": [1.0, 1.0],
    # degradations of image quality (core.augment.Augmentation), as other microscopes give
    # their images: an in-plane Gaussian blur of sigma in [low, high] px on a fraction of
    # the patches, a random gamma (log-uniform in [low, high]), Gaussian noise of a
    # standard deviation drawn from [low, high] (normalised units); all off by default
    "blur_sigma": [0.0, 0.0],
    "blur_probability": 1.0,
    "gamma": [1.0, 1.0],
    "noise_std": [0.0, 0.0],
    # the epoch the file holds: "best" (validation mean Dice) or "last" (the schedule's end)
    "keep": "best",
    "epochs": 16,
    "steps_per_epoch": 500,
    "batch_size": 8,
    "patch_size": 128,
    "lr": 2e-3,
    "schedule": "onecycle",
    "patience": 16,
    "seed": 0,
    "val_fraction_per_kind": 0.15,
    # image kinds trained on (None: all); the validation split keeps every kind either way,
    # so a model trained on one kind is scored on all of them
    "train_kinds": None,
    # a stage started with --init may oversample the training images that model does badly
    # on: each image is repeated 1 + round(strength * (1 - its mean AP)) times (0: off)
    "oversample_hard": 0.0,
    # add a copy of each training image whose nuclei lie outside the training images'
    # interquartile diameter range, rescaled (image and instances, before the targets are
    # drawn) to the range's nearest edge: the sizes predict_objects(object_diameter="auto")
    # brings such images to, with the boundary rim drawn at that size
    "rescaled_copies": False,
    "split_seed": 0,
    # post-processing grid searched on the validation split after training (recorded in
    # the model file as training["postprocessing"]; the widgets and demo use it)
    "tune_thresholds": [0.5, 0.6, 0.7],
    "tune_seed_thresholds": [0.5, 0.6, 0.7, 0.8, 0.9],
    "tune_min_areas": [0, 15, 30],
}


def tune_and_record(path: Path, val_samples, config: dict) -> dict:
    """Search threshold / seed threshold / min area on the validation images (DSB2018 mean
    AP of the watershed's instances) and write the best into the model file."""
    from napari_segkit.kaggle import tune_postprocessing
    from napari_segkit.models import record_training

    result = tune_postprocessing(
        [path],
        [s.image for s in val_samples],
        [s.instances for s in val_samples],
        metric="map",
        thresholds=config["tune_thresholds"],
        seed_thresholds=config["tune_seed_thresholds"],
        min_areas=config["tune_min_areas"],
    )
    best = result["best"]
    postprocessing = {
        "threshold": best["threshold"],
        "seed_threshold": best["seed_threshold"],
        "min_size": best["min_area"],
        "tuned_on": "the validation split (validation_ids), metric: DSB2018 mean AP",
        "score": best["score"],
    }
    record_training(path, postprocessing=postprocessing)
    return postprocessing


def record_object_sizes(path: Path, train_samples) -> dict:
    """Write the training images' object diameters into the model file (what
    ``predict_objects(object_diameter=...)`` rescales to). ``train()`` records them itself
    for instance targets; this adds them to a file made before it did."""
    from napari_segkit.core.object_size import diameter_range
    from napari_segkit.models import record_training

    sizes = diameter_range([s.instances for s in train_samples])
    record_training(path, object_diameter=sizes)
    return sizes


#: the convolutions of a U-Net decoder level that read [skip, upsampled] concatenated
_CONCATENATED_INPUT = re.compile(r"^net\.up\.\d+\.block\.(body\.0|shortcut)$")


def _old_channels(old: int, new: int, concatenated: bool = False):
    """Where a layer's `old` channels sit among its `new` ones: the first ones, or the
    first ones of each half for an input that concatenates two equally wide maps."""
    import torch

    if old == new or not concatenated:
        return torch.arange(old)
    half, new_half = old // 2, new // 2
    return torch.cat([torch.arange(half), new_half + torch.arange(half)])


def hard_example_copies(scores: dict[str, float], strength: float) -> dict[str, int]:
    """How often each training image is repeated in a stage that oversamples hard ones.

    `scores` maps an image id to the mean AP the stage's starting model gets on it (its
    own training image: what it has not learnt yet); an image is repeated ``1 +
    round(strength * (1 - AP))`` times. Patches are drawn from the images uniformly, so
    the repetitions are the sampling weights.

    >>> hard_example_copies({"easy": 1.0, "half": 0.5, "hard": 0.1}, 3)
    {'easy': 1, 'half': 3, 'hard': 4}
    """
    if strength < 0:
        raise ValueError(f"the oversampling strength must be >= 0, got {strength}")
    return {i: 1 + round(strength * (1.0 - float(ap))) for i, ap in scores.items()}


def oversample_hard(init: Path, train_samples, strength: float) -> tuple[list, dict]:
    """`train_samples` with each repeated as :func:`hard_example_copies` says, scored with
    the instances the `init` file's post-processing gives; and the copies by id."""
    from napari_segkit.kaggle.evaluation import score_models
    from napari_segkit.models import read_model_info

    records = score_models([init], train_samples, **read_model_info(init).instance_options())
    copies = hard_example_copies({r.id: r.ap for r in records}, strength)
    return [s for s in train_samples for _ in range(copies[s.id])], copies


def rescaled_copies(train_samples) -> tuple[list, dict]:
    """Copies of the `train_samples` whose median nucleus diameter lies outside the
    interquartile range of all of theirs, magnified or shrunk to the range's nearest edge
    (as ``predict_objects(object_diameter="auto")`` rescales such an image), and the
    factors by copy id. The images come back as float32 (bilinear), the instances by
    nearest neighbour in their own dtype.

    The copies are made before the boundary targets are: a nucleus 6 px across has no
    interior under a 2 px rim at its own size, one magnified to 13 px has. (Random zoom
    resamples the targets after they are drawn, so it cannot teach this.)
    """
    from dataclasses import replace

    import numpy as np

    from napari_segkit.core.object_size import diameter_range, median_diameter, rescale_factor
    from napari_segkit.kaggle.datasets import rescaled_sample

    sizes = diameter_range([s.instances for s in train_samples])
    copies, factors = [], {}
    for sample in train_samples:
        diameter = median_diameter(sample.instances)
        factor = 1.0 if diameter is None else rescale_factor(diameter, sizes["low"], sizes["high"])
        if factor == 1.0:
            continue
        copy_id = f"{sample.id}@{factor:.2f}x"
        copy = rescaled_sample(sample, factor, image_dtype=np.float32)
        copies.append(replace(copy, id=copy_id))
        factors[copy_id] = round(factor, 3)
    return copies, factors


def widened(model_file, width: int, seed: int = 0):
    """`model_file`'s U-Net (``unet_original`` or ``resunet``) made `width` wide, computing
    the same function: a ModelFile to pass to ``train(init=...)``.

    Every level keeps its old channels first; the new ones (``width - old width`` per
    level, doubling per level) get the usual random initialisation, and the old channels'
    weights on them are zero, so the old outputs ignore them at first. Those zero weights
    get gradients at once, and the new channels' own weights from the second step on. A
    function-preserving widening in the spirit of Net2Net (Chen, Goodfellow & Shlens
    2016), with zeros instead of copied channels, which would need breaking out of
    symmetry. Written here because torch has no such tool; it knows only this
    repository's U-Net layout.
    """
    from dataclasses import replace

    import torch
    from torch import nn

    from napari_segkit.models import ModelFile, build_model

    info = model_file.info
    old_width = info.options.get("width")
    if info.arch not in ("unet_original", "resunet") or old_width is None:
        raise SystemExit(
            f"--width with --init widens an original or residual U-Net, not {info.arch}"
        )
    if width < old_width:
        raise SystemExit(f"--width {width} with --init: the file's network is {old_width} wide")
    options = {**info.options, "width": width}
    torch.manual_seed(seed)
    model = build_model(
        info.arch, info.in_channels, info.num_classes, pad_mode=info.pad_mode, **options
    )
    old_modules = dict(model_file.model.named_modules())
    with torch.no_grad():
        for name, new in model.named_modules():
            old = old_modules[name]
            if isinstance(new, nn.Conv2d | nn.ConvTranspose2d):
                # a transposed convolution's weight is (in, out, ...), a convolution's (out, in, ...)
                out_dim, in_dim = (1, 0) if isinstance(new, nn.ConvTranspose2d) else (0, 1)
                outs = _old_channels(old.weight.shape[out_dim], new.weight.shape[out_dim])
                ins = _old_channels(
                    old.weight.shape[in_dim],
                    new.weight.shape[in_dim],
                    bool(_CONCATENATED_INPUT.match(name)),
                )
                rows = torch.zeros_like(new.weight.index_select(out_dim, outs))
                rows.index_copy_(in_dim, ins, old.weight)
                new.weight.index_copy_(out_dim, outs, rows)
                if new.bias is not None:
                    new.bias[outs] = old.bias
            elif isinstance(new, nn.BatchNorm2d):
                outs = _old_channels(old.num_features, new.num_features)
                for attr in ("weight", "bias", "running_mean", "running_var"):
                    getattr(new, attr)[outs] = getattr(old, attr)
                new.num_batches_tracked.copy_(old.num_batches_tracked)
    model.eval()
    return ModelFile(model=model, info=replace(info, options=options), path=model_file.path)


def read_samples(data: Path) -> list:
    """The samples of `data`: the DSB2018 download (``stage1_train/`` inside, one mask file
    per nucleus) or its copy packed by ``scripts/pack_dsb2018.py`` (``images/`` +
    ``masks/``), which holds the same ids, pixels and instances. Sorted by id, as the
    download is read, so both give the same training order (patches are drawn by index)."""
    from napari_segkit.kaggle import load_dataset

    source = data / "stage1_train" if (data / "stage1_train").is_dir() else data
    samples = load_dataset(source)
    if any(s.instances is None for s in samples):
        raise SystemExit(f"'{source}' has no instance masks (a DSB2018 or packed folder has)")
    return sorted(samples, key=lambda s: s.id)


def load_split(data: Path, config: dict):
    """(train samples, val samples, {id: kind}) of the DSB2018 folder, split by kind."""
    from napari_segkit.kaggle import image_kind, split_by_kind

    samples = read_samples(data)
    kinds = {s.id: image_kind(s.image) for s in samples}
    _, val_ids = split_by_kind(
        [s.id for s in samples],
        [kinds[s.id] for s in samples],
        fraction=config["val_fraction_per_kind"],
        seed=config["split_seed"],
    )
    val_ids = set(val_ids)
    train = [s for s in samples if s.id not in val_ids]
    val = [s for s in samples if s.id in val_ids]
    return train, val, kinds


#: optimisation steps of the probe run that --plan-minutes times
PROBE_STEPS = 12


def probe_timing(run: dict, device: str) -> dict:
    """Seconds a step, to start, and to validate and save at an epoch's end, timed on one
    short epoch (``PROBE_STEPS`` steps) of the run about to start, written to a scratch
    file. The first step (worker start-up, kernel selection) counts as starting."""
    import tempfile

    from napari_segkit.training import train

    stamps = []
    begun = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        train(
            **run,
            out=Path(scratch) / "probe.safetensors",
            epochs=1,
            steps_per_epoch=PROBE_STEPS,
            progress=lambda report: stamps.append((time.monotonic(), report.end_of_epoch)),
        )
    steps = [t for t, end_of_epoch in stamps if not end_of_epoch]
    return {
        "device": device,
        "start_s": round(steps[0] - begun, 3),
        "step_s": round((steps[-1] - steps[0]) / max(len(steps) - 1, 1), 4),
        "epoch_end_s": round(stamps[-1][0] - steps[-1], 3),
    }


def plan_epochs(minutes: float, steps_per_epoch: int, timing: dict) -> int:
    """The most whole epochs (at least 1) that fit `minutes` at the probe's `timing`.

    >>> plan_epochs(10, 100, {"start_s": 30, "step_s": 0.5, "epoch_end_s": 20})
    8
    """
    epoch = steps_per_epoch * timing["step_s"] + timing["epoch_end_s"]
    return max(1, int((minutes * 60 - timing["start_s"]) // epoch))


def main(argv=None) -> int:
    from napari_segkit.config import KEEP_CHOICES  # light: no torch until training starts
    from napari_segkit.kaggle import KINDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/dsb2018-train"),
        help="the DSB2018 folder (stage1_train/ inside) or its copy by scripts/pack_dsb2018.py",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--color", choices=("gray", "rgb"), help="override CONFIG['color']")
    parser.add_argument("--epochs", type=int, help="override CONFIG['epochs']")
    parser.add_argument(
        "--init",
        type=Path,
        help="continue from this model file's weights (a second stage: a new schedule)",
    )
    parser.add_argument(
        "--loss",
        choices=("dice+ce", "dice+border_ce", "lovasz+border_ce"),
        help="override CONFIG['loss']",
    )
    parser.add_argument(
        "--lovasz-per-image",
        action="store_true",
        help="the Lovasz term per training patch, averaged, instead of over the batch "
        "(CONFIG['loss_options']['per_image'])",
    )
    parser.add_argument(
        "--loss-option",
        action="append",
        metavar="KEY=VALUE",
        help="a further option of the loss (CONFIG['loss_options']), e.g. ce_weight=0.5; "
        "repeatable, as segkit train's",
    )
    parser.add_argument(
        "--width",
        type=int,
        help="override CONFIG['arch_options']['width'] (with --init: that file's network "
        "widened, computing what it did)",
    )
    parser.add_argument("--steps-per-epoch", type=int, help="override CONFIG['steps_per_epoch']")
    parser.add_argument("--w0", type=float, help="override CONFIG['w0'] (border weight)")
    parser.add_argument("--lr", type=float, help="override CONFIG['lr']")
    parser.add_argument("--seed", type=int, help="override CONFIG['seed']")
    parser.add_argument("--patch-size", type=int, help="override CONFIG['patch_size']")
    parser.add_argument(
        "--boundary-width",
        type=int,
        help="override CONFIG['boundary_width'] (pixels of each nucleus' rim that are boundary)",
    )
    parser.add_argument("--batch-size", type=int, help="override CONFIG['batch_size']")
    for key in ("zoom", "blur_sigma", "gamma", "noise_std"):  # the augmentation's ranges
        parser.add_argument(
            "--" + key.replace("_", "-"),
            type=float,
            nargs=2,
            metavar=("LOW", "HIGH"),
            help=f"override CONFIG['{key}']",
        )
    parser.add_argument(
        "--blur-probability", type=float, metavar="P", help="override CONFIG['blur_probability']"
    )
    parser.add_argument(
        "--keep",
        choices=KEEP_CHOICES,
        help="the epoch the file holds (default: the best by validation mean Dice)",
    )
    parser.add_argument(
        "--train-kinds",
        nargs="+",
        choices=KINDS,
        help="train on these image kinds only (override CONFIG['train_kinds']; validation: all)",
    )
    parser.add_argument(
        "--oversample-hard",
        type=float,
        metavar="STRENGTH",
        help="with --init: repeat each training image 1 + round(STRENGTH * (1 - the --init "
        "model's mean AP on it)) times (override CONFIG['oversample_hard'])",
    )
    parser.add_argument(
        "--rescaled-copies",
        action="store_true",
        default=None,
        help="also train on copies of the images whose nuclei lie outside the training "
        "sizes' interquartile range, rescaled to its nearest edge (override "
        "CONFIG['rescaled_copies'])",
    )
    parser.add_argument("--minutes", type=float, help="stop after this long (keeps the best)")
    parser.add_argument(
        "--plan-minutes",
        type=float,
        help="choose --epochs so that the schedule ends within about this long, timed on a "
        f"probe run of {PROBE_STEPS} steps first (a machine of unknown speed, e.g. a GPU)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--num-workers", type=int, default=0, help="data-loading processes (a GPU wants several)"
    )
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--tune-only", action="store_true", help="only (re)tune the post-processing of --out"
    )
    parser.add_argument(
        "--record-object-sizes",
        action="store_true",
        help="only write the training images' object diameters into --out",
    )
    parser.add_argument(
        "--no-tune",
        action="store_true",
        help="skip tuning the post-processing after training (run --tune-only later, e.g. on "
        "another machine: a lent GPU's minutes are better spent training)",
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from napari_segkit.core.augment import Augmentation
    from napari_segkit.training import TrainingCancelled, train

    config = dict(CONFIG)
    if args.color:
        config["color"] = args.color
    if args.color == "gray":  # the alternative measured against: gray + auto inversion
        config["normalization"] = {**config["normalization"], "invert": "auto"}
    overridden_by_arguments = (
        "epochs",
        "steps_per_epoch",
        "loss",
        "w0",
        "lr",
        "seed",
        "patch_size",
        "boundary_width",
        "batch_size",
        "zoom",
        "blur_sigma",
        "blur_probability",
        "gamma",
        "noise_std",
        "keep",
        "train_kinds",
        "oversample_hard",
        "rescaled_copies",
    )
    for key in overridden_by_arguments:
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.width is not None:
        config["arch_options"] = {**config["arch_options"], "width": args.width}
    if args.lovasz_per_image or args.loss_option:
        from napari_segkit.config import parse_options
        from napari_segkit.losses.table import get_loss_spec

        flag = "--lovasz-per-image" if args.lovasz_per_image else "--loss-option"
        try:  # the loss table knows each loss's options: refused before the data are read
            options = parse_options(args.loss_option, "loss")
            if args.lovasz_per_image:
                options["per_image"] = True
            config["loss_options"] = {**config["loss_options"], **options}
            get_loss_spec(config["loss"]).check_options(config["loss_options"])
        except ValueError as error:
            parser.error(f"{flag}: {error}")
    try:  # refused before the data are read
        augmentation = Augmentation(
            zoom=tuple(config["zoom"]),
            blur_sigma=tuple(config["blur_sigma"]),
            blur_probability=config["blur_probability"],
            gamma=tuple(config["gamma"]),
            noise_std=tuple(config["noise_std"]),
        )
    except ValueError as error:
        parser.error(f"augmentation: {error}")
    earlier_stages = []
    if args.init:
        from napari_segkit.models import read_model_info

        base = read_model_info(args.init).training
        # the file keeps how every stage was made: the earlier stages' configs and lengths
        earlier_stages = [
            *base.get("earlier_stages", []),
            {
                "script_config": base.get("script_config"),
                "planned_epochs": base.get("config", {}).get("epochs"),
                "best_epoch": base.get("epochs"),
                "validation": base.get("validation"),
            },
        ]
    oversampling = config["oversample_hard"] and not (args.tune_only or args.record_object_sizes)
    if oversampling and not args.init:
        parser.error("--oversample-hard scores the --init model on the training images")
    init = args.init
    if args.init and args.width is not None:  # before reading the data: a refusal comes first
        from napari_segkit.models import load_model

        init = widened(load_model(args.init), args.width, seed=config["seed"])
        print(f"widened {args.init} to width {args.width}")
    if args.threads:
        torch.set_num_threads(args.threads)
    train_samples, val_samples, kinds = load_split(args.data, config)
    if config["train_kinds"]:
        train_samples = [s for s in train_samples if kinds[s.id] in config["train_kinds"]]
        if not train_samples:
            parser.error(f"no training images of kinds {config['train_kinds']}")
    print(f"{len(train_samples)} training and {len(val_samples)} validation images")
    if args.record_object_sizes:
        print(f"training object diameters: {record_object_sizes(args.out, train_samples)}")
        return 0
    if args.tune_only:
        print(f"tuned post-processing: {tune_and_record(args.out, val_samples, config)}")
        return 0
    drawn, copies = train_samples, None  # the images patches are drawn from
    if oversampling:
        n = len(train_samples)
        print(f"scoring {args.init} on the {n} training images (minutes on a CPU)", flush=True)
        drawn, copies = oversample_hard(args.init, train_samples, config["oversample_hard"])
        print(f"hard images oversampled: {n} images drawn from as {len(drawn)}")
    rescaled = None
    if config["rescaled_copies"] and not (args.tune_only or args.record_object_sizes):
        extra, rescaled = rescaled_copies(train_samples)
        drawn = [*drawn, *extra]
        print(f"{len(extra)} rescaled copies added: {len(drawn)} images drawn from")
    run = {  # train()'s arguments but the file, the length and the progress
        "images": [s.image for s in drawn],
        "labels": [s.instances for s in drawn],
        "validation": ([s.image for s in val_samples], [s.instances for s in val_samples]),
        "arch": config["arch"],
        "arch_options": config["arch_options"],
        "target": config["target"],
        "boundary_width": config["boundary_width"],
        "color": config["color"],
        "normalization": config["normalization"],
        "schedule": config["schedule"],
        "patience": config["patience"],
        "seed": config["seed"],
        "device": args.device,
        "num_workers": args.num_workers,
        "class_names": ["background", "nucleus", "boundary"],
        "init": init,
        "augmentation": augmentation,
        **{
            k: config[k]
            for k in (
                "loss",
                "loss_options",
                "batch_size",
                "patch_size",
                "lr",
                "w0",
                "sigma",
                "keep",
            )
        },
    }
    if args.plan_minutes:
        if args.resume:
            parser.error("--plan-minutes plans a new run's schedule: not with --resume")
        timing = probe_timing(run, args.device)
        config["epochs"] = plan_epochs(args.plan_minutes, config["steps_per_epoch"], timing)
        config["planned"] = {"minutes": args.plan_minutes, **timing}
        print(
            f"probe: {timing['step_s']:.3f} s a step, {timing['epoch_end_s']:.1f} s to validate "
            f"and save, {timing['start_s']:.1f} s to start: {config['epochs']} epochs of "
            f"{config['steps_per_epoch']} steps fit {args.plan_minutes} minutes",
            flush=True,
        )
    started = time.monotonic()
    limit = args.minutes * 60 if args.minutes else None

    def progress(report):
        if report.end_of_epoch:
            dice = " ".join(f"{d:.3f}" for d in report.val["dice"]) if report.val else "-"
            print(
                f"[{(time.monotonic() - started) / 60:6.1f} min] epoch {report.epoch + 1:3d}  "
                f"loss {report.loss:.4f}  val Dice [{dice}]{'  best' if report.best else ''}",
                flush=True,
            )

    try:
        train(
            **run,
            out=args.out,
            epochs=config["epochs"],
            steps_per_epoch=config["steps_per_epoch"],
            resume=args.resume,
            overwrite=args.overwrite,
            provenance={
                "dataset": f"DSB2018 stage1_train (dsb2018-train, {len(kinds)} samples)",
                "script": "scripts/train_default_model.py",
                "script_config": config,
                "validation_ids": sorted(s.id for s in val_samples),
                "validation_kinds": {s.id: kinds[s.id] for s in val_samples},
                **({"earlier_stages": earlier_stages} if earlier_stages else {}),
                **({"training_copies": copies} if copies else {}),
                **({"rescaled_copies": rescaled} if rescaled else {}),
            },
            progress=progress,
            cancel=(lambda: time.monotonic() - started > limit) if limit else None,
        )
    except TrainingCancelled as stop:
        print(f"time limit reached: {stop}")
    if not args.out.exists():
        print("no model was written", file=sys.stderr)
        return 1
    if copies or rescaled:  # train() measured repeated or rescaled images: the sizes are
        # the distinct images' at their own scale
        record_object_sizes(args.out, train_samples)
    if not args.no_tune:
        print(f"tuned post-processing: {tune_and_record(args.out, val_samples, config)}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
