"""The ``segkit`` command line: a thin shell over the library (never imports napari).

Each subcommand imports what it needs inside its handler, so ``segkit --help``
answers at once. Errors the user can fix are printed as one line and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from importlib import metadata
from pathlib import Path

#: what --dataset accepts (napari_segkit.kaggle.datasets.load_dataset recognises each)
DATASET_HELP = (
    "Kaggle RLE CSV, DSB2018 folder, folder of images/ + masks/ (instance masks), or image "
    "folder + --labels"
)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@contextlib.contextmanager
def progress_bar(desc: str, unit: str, *, quiet: bool = False, total: int | None = None):
    """A tqdm bar and the ``progress(done, total)`` callback the library calls.

    Yields ``(bar, callback)``; the bar is closed when the block ends, even on error.
    """
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, desc=desc, disable=quiet)

    def callback(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield bar, callback
    finally:
        bar.close()


def cmd_info(args: argparse.Namespace) -> int:
    """Print package versions and the devices torch can use."""
    import platform

    from . import __version__
    from .runtime import available_devices

    print(f"napari-segkit {__version__}")
    print(f"python        {platform.python_version()} ({platform.system()} {platform.machine()})")
    for dist in (
        "napari",
        "torch",
        "torchvision",
        "segmentation-models-pytorch",
        "zarr",
        "dask",
        "tifffile",
        "scikit-image",
        "numpy",
    ):
        print(f"{dist:<13} {_version(dist)}" if len(dist) <= 13 else f"{dist} {_version(dist)}")
    print("devices       " + ", ".join(available_devices()))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Write the synthetic samples (image, semantic and instance labels) to a folder."""
    from pathlib import Path

    from .core.io import write_labels, write_stack
    from .samples import SAMPLES, load_sample

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ext = ".zarr" if args.format == "zarr" else ".tif"
    for key in SAMPLES:
        sample = load_sample(key)
        write_stack(out / f"{key}{ext}", sample.image, overwrite=args.overwrite)
        write_labels(out / f"{key}_labels{ext}", sample.semantic, overwrite=args.overwrite)
        write_labels(out / f"{key}_instances{ext}", sample.instances, overwrite=args.overwrite)
        print(
            f"{key}: image {sample.image.shape} {sample.image.dtype}, "
            f"{int(sample.instances.max())} nuclei -> {out}/{key}*{ext}"
        )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Open a stack lazily and describe it (shape, dtype, axes, scale, lazy or not)."""
    from .core.io import read_stack

    stack = read_stack(args.path, array=args.array)
    kind = f"lazy dask array, chunks {stack.data.chunksize}" if stack.is_lazy else "in memory"
    print(
        f"{stack.path}: shape {tuple(stack.data.shape)} {stack.data.dtype}, axes {stack.axes}, "
        f"scale {tuple(round(s, 6) for s in stack.scale)}, {kind}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered architectures (name, family, description; options with -v)."""
    from .models import list_architectures

    for arch in list_architectures():
        print(f"{arch['name']:<15} {arch['family']:<7} {arch['description']}")
        if args.verbose:
            for key, value in arch["options"].items():
                print(f"{'':<23}{key} = {value!r}")
    return 0


def _check_predict_args(args: argparse.Namespace):
    """Model file, input, output and options of ``segkit predict``, checked without torch."""
    from pathlib import Path

    from .core.outputs import check_output_path, refuse_overlap
    from .models.info import read_model_info
    from .tiling.checks import check_device_name, check_options, tile_pair

    out = Path(args.output_path)
    to_zarr = out.name.lower().endswith(".zarr")
    if not to_zarr and not out.name.lower().endswith((".tif", ".tiff")):
        raise ValueError(f"OUTPUT must end in .zarr or .tif/.tiff, got '{out}'")
    if not to_zarr and args.output == "both":
        raise ValueError(
            "--output both needs a .zarr OUTPUT (labels and probabilities in one group)"
        )
    if not Path(args.input).exists():
        raise FileNotFoundError(f"No such file or folder: '{args.input}'")
    read_model_info(args.model)
    check_options(
        blend=args.blend,
        tta=args.tta,
        output=args.output,
        prob_dtype=args.prob_dtype,
        batch_size=args.batch_size,
        block_size=1,
        overlap=args.overlap,
    )
    check_device_name(args.device)
    if args.tile is not None:
        tile_pair(args.tile)
    if to_zarr:
        check_output_path(out, source=args.input, overwrite=args.overwrite)
    else:
        refuse_overlap(out, Path(args.input))
        if out.exists() and not args.overwrite:
            raise ValueError(f"'{out}' already exists; pass --overwrite to replace it")
    _check_object_options(args, to_zarr)
    return out


def _check_object_options(args: argparse.Namespace, to_zarr: bool) -> None:
    """``segkit predict --object-diameter / --instances``: in memory, a model that can."""
    from pathlib import Path

    from .core.outputs import refuse_overlap
    from .models.info import read_model_info

    if args.object_diameter is None and args.instances is None:
        return
    if to_zarr or args.cluster:
        raise ValueError(
            "--object-diameter and --instances predict in memory: give a .tif OUTPUT "
            "(and no --cluster)"
        )
    if args.object_diameter is not None:
        info = read_model_info(args.model)
        if info.trained_diameters() is None or info.spatial_dims != 2:
            raise ValueError(
                f"'{args.model}' does not record the object sizes it was trained on (2D "
                "models trained on instances do), so --object-diameter cannot rescale for it"
            )
    if args.instances is not None:
        objects = Path(args.instances)
        if not objects.name.lower().endswith((".tif", ".tiff")):
            raise ValueError(f"--instances must end in .tif/.tiff, got '{objects}'")
        refuse_overlap(objects, Path(args.input))
        if objects.exists() and not args.overwrite:
            raise ValueError(f"'{objects}' already exists; pass --overwrite to replace it")


#: post-processing of models whose file records none tuned (instances_from_prediction's)
POSTPROCESSING_DEFAULTS = {"threshold": 0.5, "seed_threshold": 0.7, "min_area": 0}


def _add_postprocessing(parser: argparse.ArgumentParser) -> None:
    """``--threshold / --seed-threshold / --min-area`` (evaluate, submit)."""
    tuned = "default: the value tuned for the model and recorded in its file, else"
    parser.add_argument("--threshold", type=float, help=f"foreground probability ({tuned} 0.5)")
    parser.add_argument(
        "--seed-threshold",
        type=float,
        help=f"watershed seeds of a boundary model, see segkit tune ({tuned} 0.7)",
    )
    parser.add_argument(
        "--min-area", type=int, help=f"drop smaller objects, in pixels ({tuned} 0)"
    )


def _postprocessing(args: argparse.Namespace, model: str, info) -> dict:
    """``threshold``, ``seed_threshold`` and ``min_area``: as given, else as the file
    `model` (described by `info`) records them (tuned after training:
    ``ModelInfo.instance_options``), else :data:`POSTPROCESSING_DEFAULTS`; the choice is
    printed, since scores depend on it."""
    recorded = info.instance_options()
    recorded["min_area"] = recorded.pop("min_size", None)
    chosen, sources = {}, set()
    for key, default in POSTPROCESSING_DEFAULTS.items():
        given = getattr(args, key)
        if given is not None:
            chosen[key] = given
        elif recorded.get(key) is not None:
            chosen[key] = recorded[key]
            sources.add(f"recorded in {model}")
        else:
            chosen[key] = default
            sources.add("the defaults")
    shown = [k for k in chosen if k != "seed_threshold" or recorded["watershed"]]
    flags = " ".join(f"--{k.replace('_', '-')} {chosen[k]:g}" for k in shown)
    print(f"post-processing: {flags}" + (f" ({' and '.join(sorted(sources))})" if sources else ""))
    return chosen


def _add_object_diameter(parser: argparse.ArgumentParser, note: str = "") -> None:
    """``--object-diameter auto|PIXELS`` (predict, evaluate, submit)."""
    parser.add_argument(
        "--object-diameter",
        type=_object_diameter,
        metavar="auto|PIXELS",
        help="the objects' diameter in the images (pixels), or 'auto' to estimate it from "
        "a first prediction: an image whose objects lie outside the sizes the model was "
        "trained on is rescaled to them, predicted, and the result resized back (models "
        f"that record their training object sizes) {note}".strip(),
    )


def _object_diameter(value: str):
    """``--object-diameter``: "auto" or a positive number of pixels."""
    if value == "auto":
        return value
    try:
        diameter = float(value)
    except ValueError:
        diameter = 0.0
    if not diameter > 0:
        raise argparse.ArgumentTypeError(f"'auto' or a positive number of pixels, not {value!r}")
    return diameter


def _engine_options(args: argparse.Namespace) -> dict:
    """``segkit predict``'s options for how the network runs, as predict() takes them."""
    return {
        "axes": args.axes,
        "tile_size": args.tile,
        "overlap": args.overlap,
        "blend": args.blend,
        "batch_size": args.batch_size,
        "device": args.device,
        "tta": args.tta,
        "compile": args.compile,
        "runtime": args.runtime,
    }


def _predict_objects(args: argparse.Namespace, image, out, progress) -> None:
    """``segkit predict`` with --object-diameter / --instances: predict_objects, then
    the TIFF(s)."""
    from .core.io import write_labels, write_stack
    from .tiling import predict_objects
    from .tiling.sink import encode_probabilities

    found = predict_objects(
        args.model,
        image,
        object_diameter=args.object_diameter,
        progress=progress,
        **_engine_options(args),
    )
    if args.output == "labels":
        write_labels(out, found.labels, overwrite=args.overwrite)
    else:
        write_stack(
            out,
            encode_probabilities(found.probabilities, args.prob_dtype),
            overwrite=args.overwrite,
        )
    print(f"{found.describe()}")
    print(f"wrote {out} ({args.output}, shape {found.labels.shape})")
    if args.instances:
        write_labels(args.instances, found.instances, overwrite=args.overwrite)
        print(f"wrote {args.instances} (instances, shape {found.instances.shape})")


def _print_profile(times: dict) -> None:
    """The stage times of a prediction, and which stage bounds it."""
    print(
        f"profile: read {times['read_s']:.2f} s, compute {times['compute_s']:.2f} s, "
        f"write {times['write_s']:.2f} s (overlapped) in {times['wall_s']:.2f} s wall; "
        f"{times['megapixels']:.1f} Mpx at {times['mpx_per_s']:.1f} Mpx/s; "
        f"bound by {times['bound_by']}"
    )


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict INPUT with MODEL tile by tile; write zarr (resumable) or TIFF."""

    out = _check_predict_args(args)  # everything that needs no torch, before torch loads
    from .core.io import read_stack, write_labels, write_stack
    from .tiling import predict

    to_zarr = out.name.lower().endswith(".zarr")
    image = (
        args.input
        if args.array is None and not args.level
        else read_stack(args.input, array=args.array, level=args.level)
    )
    if args.object_diameter is not None or args.instances is not None:
        with progress_bar("predict", "block", quiet=args.quiet) as (_, progress):
            _predict_objects(args, image, out, progress)
        return 0
    client = _dask_client(args.cluster) if args.cluster else None
    closing = contextlib.closing(client) if client is not None else contextlib.nullcontext()
    with closing, progress_bar("predict", "block", quiet=args.quiet) as (_, progress):
        result = predict(
            args.model,
            image,
            **_engine_options(args),
            output=args.output,
            prob_dtype=args.prob_dtype,
            out=out if to_zarr else None,
            overwrite=args.overwrite,
            resume=True if args.resume else None,
            ome_version=args.ome_version,
            shards=args.shards,
            profile=_print_profile if args.profile else None,
            progress=progress,
            client=client,
            resample=args.resample,
            spacing=tuple(float(v) for v in args.spacing.split(",")) if args.spacing else None,
        )
    if not to_zarr:
        write = write_labels if args.output == "labels" else write_stack
        write(out, result, overwrite=args.overwrite)
    shape = (result[0] if isinstance(result, tuple) else result).shape
    print(f"wrote {out} ({args.output}, shape {tuple(shape)})")
    return 0


def _read_all(paths: list[str]) -> list:
    from .core.io import read_stack

    return [read_stack(p).data for p in paths]


def _samples(args) -> tuple[list, list, list, list]:
    """Images, labels, instances (None where unknown) and ids from --images/--labels files
    or a --dataset layout (Kaggle CSV, DSB2018, instance folders, paired folders)."""
    if args.dataset:
        if args.images:
            raise ValueError("give --dataset or --images/--labels, not both")
        from .kaggle.datasets import load_dataset

        samples = load_dataset(args.dataset, args.labels[0] if args.labels else None)
        return (
            [s.image for s in samples],
            [s.labels for s in samples],
            [s.instances for s in samples],
            [s.id for s in samples],
        )
    if not args.images or not args.labels:
        raise ValueError("give --images and --labels (or --dataset)")
    images, labels = _read_all(args.images), _read_all(args.labels)
    return images, labels, [None] * len(labels), [Path(p).stem for p in args.images]


def _objects_in_label_files(labels: list, classes: int | None = None) -> tuple[list, list]:
    """``--labels`` files that hold one id per object (2D or 3D instance labels): their
    objects are the truth of the object scores, their union (foreground, 1) that of the
    per-class ones. Class maps stay as they are, with no objects (None).

    A file is taken for instance labels when it looks like them (``instance_like``: many
    ids, each one blob) or when it holds ids beyond the model's `classes`, which no class
    map for that model can."""
    import numpy as np

    from .core.guards import instance_like

    maps, objects = [], []
    for label in labels:
        label = np.asarray(label)
        beyond = classes is not None and label.max(initial=0) >= classes
        if beyond or instance_like(label) is not None:
            maps.append((label > 0).astype(np.uint8))
            objects.append(label)
        else:
            maps.append(label)
            objects.append(None)
    return maps, objects


def _images_and_labels(args) -> tuple[list, list, list]:
    """Images, labels (a layout's instances instead when training boundary targets), ids."""
    images, labels, instances, ids = _samples(args)
    if getattr(args, "target", "semantic") == "boundary":
        labels = [o if o is not None else lab for lab, o in zip(labels, instances, strict=True)]
    return images, labels, ids


def cmd_export(args: argparse.Namespace) -> int:
    """Export MODEL to OUT (bioimage.io package, ONNX or TorchScript)."""
    from .models.info import read_model_info

    read_model_info(args.model)  # a bad model file fails before torch loads
    from .core.io import read_stack
    from .exchange import export_model

    options = {}
    if args.name:
        options["name"] = args.name
    if args.description:
        options["description"] = args.description
    if args.author:
        options["authors"] = args.author
    if args.cite:
        options["cite"] = [_citation(c) for c in args.cite]
    if args.test_image:
        data = read_stack(args.test_image).data
        plane = data.ndim == 4 or (data.ndim == 3 and data.shape[-1] > 4)  # a stack
        options["test_image"] = data[data.shape[0] // 2] if plane else data
    if options or args.license != "CC-BY-4.0":
        options["license"] = args.license
    out = export_model(args.model, args.out, format=args.format, **options)
    print(f"wrote {out}")
    return 0


def _citation(text: str) -> dict:
    """``"Ronneberger 2015=10.1007/..."`` -> ``{"text": ..., "doi": ...}`` (or ``"url"``)."""
    label, sep, ref = text.rpartition("=")
    if not sep or not label or not ref:
        raise ValueError(f"--cite {text!r}: expected TEXT=DOI or TEXT=URL")
    return {"text": label, "url" if ref.startswith(("http://", "https://")) else "doi": ref}


def _stack_spacing(args) -> tuple | None:
    """The voxel spacing (z, y, x) of the first --images file, for a 3D architecture (read
    from its metadata: OME-TIFF, ImageJ TIFF, NIfTI, DICOM); --spacing overrides it."""
    if getattr(args, "spacing", None):
        return tuple(float(v) for v in args.spacing.split(","))
    from .models.registry import get_architecture

    if get_architecture(args.arch).spatial_dims != 3 or not args.images:
        return None
    from .core.io import read_stack

    scale = read_stack(args.images[0]).spatial_scale
    return tuple(float(s) for s in scale) if len(scale) == 3 else None


def _augmentation(args: argparse.Namespace):
    """The :class:`~napari_segkit.core.augment.Augmentation` that ``segkit train``'s zoom
    and image-quality flags ask for, or None (``train``'s default) when none is given.

    Parameters
    ----------
    args : argparse.Namespace
        ``zoom``, ``blur_sigma``, ``gamma``, ``noise_std`` (None or a (low, high) pair)
        and ``blur_probability`` (None or a float).

    Returns
    -------
    Augmentation or None
    """
    ranges = {
        "zoom": args.zoom,
        "blur_sigma": args.blur_sigma,
        "gamma": args.gamma,
        "noise_std": args.noise_std,
    }
    given = {key: tuple(value) for key, value in ranges.items() if value is not None}
    if args.blur_probability is not None:
        if "blur_sigma" not in given:
            raise ValueError("--blur-probability needs --blur-sigma (the blur's range)")
        given["blur_probability"] = args.blur_probability
    if not given:
        return None
    from .core.augment import Augmentation

    return Augmentation(**given)  # its checks name the flag's field if a value is impossible


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model from image and label files; keep the best checkpoint."""
    import time

    from .config import CLASS_WEIGHT_METHODS, DEFAULT_NORMALIZATION, parse_options
    from .core.outputs import check_model_output

    arch_options = parse_options(args.arch_option) or None
    loss_options = parse_options(args.loss_option, "loss")
    augmentation = _augmentation(args)  # refused before the images are read
    images, labels, ids = _images_and_labels(args)
    if args.folds:
        if args.resume or args.init or args.val_images:
            raise ValueError("--folds trains from scratch: no --resume, --init or --val-images")
        if Path(args.out).suffix:
            raise ValueError(f"with --folds, --out is a folder (got '{args.out}')")
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for fold in range(args.folds):
            check_model_output(
                Path(args.out) / f"fold{fold}.safetensors", overwrite=args.overwrite
            )
    else:
        check_model_output(args.out, init=args.init, overwrite=args.overwrite, resume=args.resume)
    from .training import TrainingCancelled, train, train_kfold  # torch loads after the checks

    started = time.monotonic()
    limit = args.time_limit * 60 if args.time_limit else None

    def progress(report):
        if not report.end_of_epoch:
            bar.update(report.step - bar.n)
            bar.set_postfix(loss=f"{report.loss:.4f}")
            return
        dice = " ".join(f"{d:.3f}" for d in report.val["dice"]) if report.val else "-"
        bar.write(
            f"epoch {report.epoch + 1:3d}  loss {report.loss:.4f}  val Dice per class "
            f"[{dice}]{'  (best, saved)' if report.best else ''}"
        )

    validation = None
    if args.val_images or args.val_labels:
        if not (args.val_images and args.val_labels):
            raise ValueError("--val-images and --val-labels go together")
        validation = (_read_all(args.val_images), _read_all(args.val_labels))
    class_weights = args.class_weights
    if class_weights and class_weights not in CLASS_WEIGHT_METHODS:
        class_weights = [float(w) for w in class_weights.split(",")]
    normalization = dict(DEFAULT_NORMALIZATION)
    if args.invert == "auto":
        normalization["invert"] = "auto"
    options = {
        "arch": args.arch,
        "arch_options": arch_options,
        "loss": args.loss,
        "loss_options": loss_options,
        "sparse": args.sparse,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size,
        "patch_size": args.patch_size,
        "lr": args.lr,
        "schedule": args.schedule,
        "keep": args.keep,
        "class_weights": class_weights,
        "w0": args.w0,
        "sigma": args.sigma,
        "class_names": args.class_names.split(",") if args.class_names else None,
        "num_workers": args.num_workers,
        "device": args.device,
        "seed": args.seed,
        "target": args.target,
        "boundary_width": args.boundary_width,
        "color": args.color,
        "normalization": normalization,
        "cancel": (lambda: time.monotonic() - started > limit) if limit else None,
    }
    if augmentation is not None:
        options["augmentation"] = augmentation
    spacing = _stack_spacing(args)
    if spacing is not None:
        options["spacing"] = spacing
    total = args.epochs * args.steps_per_epoch * (args.folds or 1)
    try:
        with progress_bar("train", "step", quiet=args.quiet, total=total) as (bar, _):
            if args.folds:
                offset = {"fold": -1, "steps": 0}

                def fold_progress(report):  # one bar over all folds
                    if report.step == 1 and not report.end_of_epoch:
                        offset["fold"] += 1
                        offset["steps"] = bar.n
                        bar.write(f"fold {offset['fold'] + 1} of {args.folds}")
                    if not report.end_of_epoch:
                        bar.update(offset["steps"] + report.step - bar.n)
                        return
                    progress(report)

                result = train_kfold(
                    images,
                    labels,
                    out_dir=args.out,
                    k=args.folds,
                    image_ids=ids,
                    progress=fold_progress,
                    **options,
                )
            else:
                model_file = train(
                    images,
                    labels,
                    out=args.out,
                    val_fraction=args.val_fraction,
                    validation=validation,
                    init=args.init,
                    resume=args.resume,
                    overwrite=args.overwrite,
                    progress=progress,
                    **options,
                )
    except TrainingCancelled:
        if args.folds or not Path(args.out).exists():
            print(
                f"time limit of {args.time_limit} min reached"
                + ("" if args.folds else " before the first epoch ended: no model was written"),
                file=sys.stderr,
            )
            return 1
        print(f"time limit of {args.time_limit} min reached; the best checkpoint is in {args.out}")
        return 0
    if args.folds:
        dice = " ".join(
            f"{m:.3f}+-{sd:.3f}"
            for m, sd in zip(result["mean_dice"], result["std_dice"], strict=True)
        )
        print(f"{args.folds}-fold validation Dice per class (mean +- sd over folds): {dice}")
        print(f"wrote {', '.join(result['models'])}")
        return 0
    print(f"wrote {args.out} ({model_file.info.arch}, {model_file.info.num_classes} classes)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score MODEL(s) or a submission CSV on labelled images: per-class Dice / IoU, and for
    instance truth the DSB2018 scores per image kind."""
    import numpy as np

    from .core.metrics import segmentation_report
    from .kaggle.evaluation import (
        format_errors,
        format_table,
        sample_kind,
        score_instances,
        summarise,
    )
    from .models.info import read_model_info

    if bool(args.model) == bool(args.submission):
        raise ValueError("give model file(s) or --submission CSV (one of the two)")
    images, labels, instances, ids = _samples(args)
    first = read_model_info(args.model[0]) if args.model else None  # the header only
    if not args.dataset:
        classes = max(first.num_classes, 2) if first else None
        labels, instances = _objects_in_label_files(labels, classes)
    if args.errors and all(o is None for o in instances):
        raise ValueError(
            "--errors counts objects, so it needs true instances: a --dataset with one id "
            "per object (DSB2018, a Kaggle RLE CSV, images/ + masks/) or --labels files "
            "holding one id per object, not class maps"
        )
    if args.submission:
        return _evaluate_submission(args, images, instances, ids)
    from .core.instances import boundary_target, instances_from_prediction
    from .kaggle.ensemble import ensemble_at_object_size, load_models, postprocess

    models = load_models(args.model)
    info = models[0].info
    k = max(info.num_classes, 2)
    chosen = _postprocessing(args, args.model[0], first)
    boundary = info.splits_touching
    if k > 2 and not boundary and not args.dataset and any(o is not None for o in instances):
        raise ValueError(
            f"the --labels hold one id per object (instance labels), and '{models[0].path}' "
            f"predicts {k} classes: objects can only be scored for a model with one "
            "foreground class (or a boundary model); give class maps as --labels"
        )
    post = {"threshold": chosen["threshold"], "seed_threshold": chosen["seed_threshold"]}
    truth, pred, records = [], [], []
    with progress_bar("evaluate", "image", quiet=args.quiet, total=len(images)) as (bar, _):
        for image, label, objects, image_id in zip(images, labels, instances, ids, strict=True):
            probs, scale = ensemble_at_object_size(
                models,
                image,
                object_diameter=args.object_diameter,
                tta=args.tta,
                min_size=chosen["min_area"],
                **post,
            )
            if boundary:  # semantic scores against the boundary targets it was trained on
                label = boundary_target(
                    np.asarray(objects if objects is not None else label),
                    volumetric=info.spatial_dims == 3,
                )
            truth.append(np.asarray(label).ravel())
            pred.append(postprocess(probs, threshold=chosen["threshold"]).ravel())
            if objects is not None:
                predicted = instances_from_prediction(  # 3D truth: 3D objects, any model
                    probs,
                    min_size=round(chosen["min_area"] / scale**2),
                    watershed=boundary,
                    volumetric=np.ndim(objects) == 3,
                    **post,
                )
                kind = sample_kind(image, objects)
                records.append(score_instances(image_id, kind, objects, predicted))
            bar.update(1)
    report = segmentation_report(
        np.concatenate(truth), np.concatenate(pred), k, class_names=info.class_names[:k] or None
    )
    _print_per_class(report)
    print(f"{'mean':<16}{report['mean_dice']:>8.4f}{report['mean_iou']:>8.4f}")
    print(f"pixel accuracy {report['pixel_accuracy']:.4f}")
    if records:
        how = "watershed" if boundary else "connected components"
        print(format_table(summarise(records), f"instances ({how}), DSB2018 scores:"))
        if args.errors:
            print(format_errors(records))
    return 0


def _evaluate_submission(args, images, instances, ids) -> int:
    """Score a submission CSV's objects against the true instances, per image kind."""
    import numpy as np

    from .kaggle.evaluation import (
        format_errors,
        format_table,
        sample_kind,
        score_instances,
        summarise,
    )
    from .kaggle.submission import read_submission

    if any(o is None for o in instances):
        raise ValueError("scoring a submission needs true instances (e.g. a DSB2018 --dataset)")
    shapes = {i: np.shape(o) for i, o in zip(ids, instances, strict=True)}
    submitted = read_submission(args.submission, shapes, instances=True)
    missing = sorted(set(ids) - set(submitted))
    if missing:
        raise ValueError(
            f"'{args.submission}' has no row for {len(missing)} of the {len(ids)} images "
            f"(e.g. {missing[0]!r})"
        )
    records = [
        score_instances(i, sample_kind(im, o), o, submitted[i])
        for im, o, i in zip(images, instances, ids, strict=True)
    ]
    extra = sorted(set(submitted) - set(ids))
    note = f" ({len(extra)} ids not in the dataset ignored)" if extra else ""
    print(format_table(summarise(records), f"submission {args.submission}{note}:"))
    if args.errors:
        print(format_errors(records))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Segment the bundled sample with the bundled model; write zarr + PNG; print scores."""
    from .demo import run_demo

    if args.image and not Path(args.image).is_file():
        raise FileNotFoundError(f"No such image: '{args.image}'")
    with progress_bar(f"segment {args.sample}", "block", quiet=args.quiet) as (_, progress):
        result = run_demo(
            args.out,
            sample=args.sample,
            model=args.model,
            tile_size=args.tile,
            image=args.image,
            progress=progress,
        )
    report = result["report"]
    print(f"labels   {result['labels']}")
    print(f"overlay  {result['overlay']}")
    _print_per_class(report, note="   (against the sample's ground truth)")
    if "objects" in result:
        scores = ""
        if "mean_ap" in result:
            scores = f": mean AP {result['mean_ap']:.3f}, AP@0.5 {result['ap50']:.3f}"
        print(f"objects  {result['objects']} (touching nuclei split){scores}")
    if "image" in result:
        real = result["image"]
        print(f"image    {args.image}: {real['describe']}")
        print(f"         {real['overlay']}, {real['instances']}")
    return 0


def _print_per_class(report: dict, note: str = "") -> None:
    """Per-class Dice / IoU rows of a segmentation_report, as an aligned table."""
    print(f"{'class':<16}{'Dice':>8}{'IoU':>8}{note}")
    for name, d, i in zip(report["classes"], report["dice"], report["iou"], strict=False):
        print(f"{name:<16}{d:>8.4f}{i:>8.4f}")


def cmd_submit(args: argparse.Namespace) -> int:
    """Predict a folder of images with one or more models; write a Kaggle submission CSV."""
    from .kaggle import make_submission
    from .models.info import read_model_info

    columns = tuple(c.strip() for c in args.columns.split(","))
    chosen = _postprocessing(args, args.models[0], read_model_info(args.models[0]))
    with progress_bar("submit", "image", quiet=args.quiet) as (_, progress):
        out = make_submission(
            args.models,
            args.images,
            args.out,
            columns=columns,
            layout=args.layout,
            id_rule=args.id_rule,
            tta=args.tta,
            **chosen,
            order=args.order,
            overwrite=args.overwrite,
            object_diameter=args.object_diameter,
            progress=progress,
        )
    with open(out) as f:
        n_rows = sum(1 for _ in f) - 1
    print(f"wrote {out} ({n_rows} rows, {len(args.models)} model(s))")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Search the post-processing that maximises the metric; print the table."""
    from .kaggle import tune_postprocessing

    args.model = [*args.models, *(args.model or [])]  # as evaluate takes them, or --model
    if not args.model:
        raise ValueError("give the model file(s) to tune for: segkit tune MODEL ... or --model")
    if args.record:
        _check_recordable(args.model)  # before the search, not after it
    images, labels, instances, ids = _samples(args)
    if args.metric == "map":  # score objects: the layout's instances where it has them
        labels = [o if o is not None else lab for lab, o in zip(labels, instances, strict=True)]
    assignment = None
    if args.out_of_fold:
        images, labels, assignment = _out_of_fold(args.model, images, labels, ids)
    with progress_bar("predict", "image", quiet=args.quiet, total=len(images)) as (_, progress):
        result = tune_postprocessing(
            args.model,
            images,
            labels,
            metric=args.metric,
            tta=args.tta,
            thresholds=args.thresholds,
            min_areas=args.min_areas,
            seed_thresholds=args.seed_thresholds,
            assignment=assignment,
            progress=progress,
        )
    seeds = result["best"]["seed_threshold"] is not None
    print(
        f"{'threshold':>10}{'seed':>8}{'min area':>10}{args.metric:>10}"
        if seeds
        else f"{'threshold':>10}{'min area':>10}{args.metric:>10}"
    )
    for row in result["table"][: args.top]:
        seed = f"{row['seed_threshold']:>8.2f}" if seeds else ""
        print(f"{row['threshold']:>10.2f}{seed}{row['min_area']:>10d}{row['score']:>10.4f}")
    best = result["best"]
    flags = f"--threshold {best['threshold']:g} --min-area {best['min_area']}"
    if seeds:
        flags += f" --seed-threshold {best['seed_threshold']:g}"
    print(f"best: {flags} ({args.metric} {best['score']:.4f})")
    if args.record:
        _record_postprocessing(args, best, len(images))
    return 0


def _check_recordable(paths: list[str]) -> None:
    """``tune --record``: napari-segkit model files in folders we may write to."""
    import os

    from .models.imports import exchange_kind
    from .models.info import read_model_info

    for path in paths:
        if kind := exchange_kind(path):
            raise ValueError(
                f"--record writes into napari-segkit .safetensors files; '{path}' is an "
                f"exchanged model ({kind})"
            )
        read_model_info(path)  # a model file, checked
        if not os.access(Path(path).resolve().parent, os.W_OK):
            raise ValueError(f"--record cannot write next to '{path}' (folder not writable)")


def _record_postprocessing(args: argparse.Namespace, best: dict, n_images: int) -> None:
    """Write `best` into each model file as ``training["postprocessing"]``."""
    from .models import record_training

    tuned = {"threshold": best["threshold"], "min_size": best["min_area"]}
    if best["seed_threshold"] is not None:
        tuned["seed_threshold"] = best["seed_threshold"]
    how = [f"segkit tune on {n_images} images", f"metric: {args.metric}"]
    if args.tta:
        how.append(f"tta: {args.tta}")
    if args.out_of_fold:
        how.append("out of fold")
    tuned |= {"tuned_on": ", ".join(how), "score": best["score"]}
    for path in args.model:
        record_training(path, postprocessing=tuned)
        print(f"recorded in {path}")


def _out_of_fold(model_paths, images, labels, ids):
    """Keep the images some fold model held out; per image, the indices of those models."""
    from .models import read_model_info

    held_out = []
    for path in model_paths:
        names = read_model_info(path).training.get("validation_ids")
        if names is None:
            raise ValueError(
                f"'{path}' does not record its validation images (train it with "
                "segkit train --folds)"
            )
        held_out.append(set(names))
    kept = [
        (image, label, [j for j, names in enumerate(held_out) if image_id in names])
        for image, label, image_id in zip(images, labels, ids, strict=True)
    ]
    kept = [item for item in kept if item[2]]
    if not kept:
        raise ValueError("no image of the data was held out by any of the fold models")
    return [k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept]


def _local_workers(address: str) -> int | None:
    """N for ``--cluster local:N`` (``local`` alone: 2), None for a scheduler address.

    Only ``local`` and ``local:...`` count: ``localhost:8786`` is a scheduler's address."""
    if address != "local" and not address.startswith("local:"):
        return None
    n = address.partition(":")[2] or "2"
    if not n.isdigit() or int(n) < 1:
        raise ValueError(f"--cluster local:N needs a number of workers N >= 1, got {address!r}")
    return int(n)


def _dask_client(address: str):
    """A dask.distributed client: ``local:N`` starts N local worker processes."""
    n_local = _local_workers(address)  # checked first: a typo is answered without dask
    try:
        from dask.distributed import Client, LocalCluster
    except ModuleNotFoundError:
        raise ValueError(
            "--cluster needs dask.distributed: pip install 'napari-segkit[distributed]'"
        ) from None
    except ImportError as err:  # installed, but from another release than dask
        from importlib.metadata import version

        raise ValueError(
            f"--cluster: distributed {version('distributed')} is installed but cannot be "
            f"imported with dask {version('dask')} ({err}); install the matching release: "
            "pip install 'napari-segkit[distributed]'"
        ) from None

    if n_local is not None:
        cluster = LocalCluster(n_workers=n_local, threads_per_worker=1, processes=True)
        return Client(cluster)
    return Client(address)


def _device_help(config, default: str) -> str:
    return f"{' | '.join(config.DEVICE_CHOICES)} or e.g. cuda:1 (default {default})"


def build_parser() -> argparse.ArgumentParser:
    # choice lists and defaults come from the library's torch- and numpy-free config,
    # so --help lists exactly what the library accepts and answers at once
    from . import config
    from .core.ome_zarr import OME_VERSIONS
    from .losses.table import loss_names
    from .samples import SAMPLES

    pred, trn = config.PredictDefaults, config.TrainConfig  # class attributes hold the defaults
    tta_modes = [m for m in config.TTA_MODES if m]

    parser = argparse.ArgumentParser(
        prog="segkit",
        description="CNN semantic segmentation of microscopy and medical images.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version('napari-segkit')}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("info", help="print versions and available devices (cuda / mps / cpu)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("sample", help="write the synthetic nuclei samples with ground truth")
    p.add_argument("out", help="output folder")
    p.add_argument("--format", choices=("tif", "zarr"), default="tif")  # CLI-only choice
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("inspect", help="open an image/stack lazily and describe it")
    p.add_argument("path", help="TIFF, zarr, NIfTI, DICOM, or folder of slices")
    p.add_argument("--array", help="array path inside a zarr group")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser(
        "predict", help="segment an image/stack tile by tile (zarr to zarr, resumable)"
    )
    p.add_argument(
        "model",
        help="model file (.safetensors), a bioimage.io package (.zip, folder or rdf.yaml), "
        "or an .onnx / TorchScript export",
    )
    p.add_argument("input", help="TIFF, zarr, NIfTI, DICOM, or folder of slices")
    p.add_argument(
        "output_path",
        metavar="output",
        help="OUTPUT.zarr or OUTPUT.ome.zarr (resumable; the latter multiscale) or OUTPUT.tif",
    )
    p.add_argument("--tile", type=int, help="tile side in pixels (default: the model's)")
    p.add_argument("--overlap", type=float, help="tile overlap fraction (default: the model's)")
    p.add_argument("--blend", choices=config.BLEND_MODES, default=pred.blend)
    p.add_argument("--tta", choices=tta_modes, help="test-time augmentation")
    p.add_argument("--device", default=pred.device, help=_device_help(config, pred.device))
    p.add_argument(
        "--batch-size",
        type=int,
        help="tiles per forward pass (default: 4 on a CPU, from free memory on a GPU)",
    )
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the model (falls back if it fails)"
    )
    p.add_argument(
        "--runtime",
        choices=("auto", "torch", "onnxruntime"),
        default=pred.runtime,
        help="CPU runtime: onnxruntime (converted once, checked to 1e-4), torch, or auto "
        "(onnxruntime for large images when installed)",
    )
    p.add_argument("--output", choices=config.OUTPUTS, default=pred.output)
    p.add_argument("--prob-dtype", choices=config.PROB_DTYPES, default=pred.prob_dtype)
    p.add_argument(
        "--spacing",
        metavar="Z,Y,X",
        help="3D models: the input's voxel spacing (default: from its metadata)",
    )
    p.add_argument(
        "--resample",
        action="store_true",
        help="3D models: predict at the model's voxel spacing and map the result back",
    )
    _add_object_diameter(p, "(.tif OUTPUT)")
    p.add_argument(
        "--instances",
        metavar="INSTANCES.tif",
        help="also write one id per object (watershed / connected components, as the model "
        "file says) to this TIFF (.tif OUTPUT)",
    )
    p.add_argument("--array", help="array path inside a zarr group input")
    p.add_argument(
        "--level", type=int, default=0, help="OME-Zarr input: resolution level (0 = full)"
    )
    p.add_argument(
        "--ome-version",
        choices=OME_VERSIONS,
        default=OME_VERSIONS[0],
        help="OUTPUT.ome.zarr: OME-Zarr 0.5 (zarr v3) or 0.4 (zarr v2, older readers)",
    )
    p.add_argument(
        "--shards", action="store_true", help="OUTPUT.ome.zarr 0.5: one shard file per block"
    )
    p.add_argument("--axes", help="input axes, e.g. ZYX or CYX (default: inferred)")
    p.add_argument(
        "--cluster",
        "--scheduler",  # the old name, kept working
        dest="cluster",
        metavar="ADDRESS",
        help="run blocks on a dask.distributed cluster: its scheduler address, "
        "or local:N for N local worker processes",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="only continue an interrupted zarr output (an error if there is none to "
        "continue); without it an unfinished output with the same settings is continued too",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print the time spent reading, computing and writing, and megapixels per second",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("train", help="train a model from image and label files")
    p.add_argument("--images", nargs="+", help="image files/stacks/folders")
    p.add_argument("--labels", nargs="+", help="label files (pixel values = class ids)")
    p.add_argument(
        "--dataset",
        help=f"a dataset layout instead: {DATASET_HELP} FOLDER (CamVid style)",
    )
    p.add_argument("--out", required=True, help="model file to write (.safetensors)")
    p.add_argument("--arch", default=config.DEFAULT_ARCH, help="architecture (see segkit models)")
    p.add_argument(
        "--spacing",
        metavar="Z,Y,X",
        help="3D architectures: the stacks' voxel spacing, recorded in the model (default: "
        "the first image's metadata)",
    )
    p.add_argument(
        "--arch-option",
        action="append",
        metavar="KEY=VALUE",
        help="architecture option, repeatable (e.g. width=16 depth=4; segkit models -v)",
    )
    p.add_argument("--init", help="fine-tune this model file instead of starting from scratch")
    p.add_argument("--loss", default=trn.loss, choices=loss_names())
    p.add_argument(
        "--loss-option",
        action="append",
        metavar="KEY=VALUE",
        help="option of the loss, repeatable (e.g. per_image=true for the Lovasz losses, "
        "ce_weight=0.5)",
    )
    p.add_argument(
        "--class-weights",
        help=f"{' | '.join(config.CLASS_WEIGHT_METHODS)} (from the labels) | w0,w1,...",
    )
    p.add_argument("--w0", type=float, default=trn.w0, help="border weight (border losses)")
    p.add_argument("--sigma", type=float, default=trn.sigma, help="border width in pixels")
    p.add_argument(
        "--schedule",
        choices=config.SCHEDULES,
        default=trn.schedule,
        help="learning-rate schedule",
    )
    p.add_argument(
        "--target",
        choices=config.TARGETS,
        default=config.TARGETS[0],
        help="boundary: labels are instances, trained as background / interior / boundary "
        "so touching objects can be split",
    )
    p.add_argument("--boundary-width", type=int, default=1, help="boundary thickness (pixels)")
    p.add_argument(
        "--color",
        choices=config.COLOR_MODES,
        default=config.COLOR_MODES[0],
        help="how images' channels become the model's: as-is (counts must match), gray "
        "(1-channel model; RGB(A) read as luminance), rgb (3-channel; gray read as 3 copies)",
    )
    p.add_argument(
        "--invert",
        choices=("never", "auto"),
        default="never",
        help="auto: invert bright-background images (bright-field, stained tissue) when "
        "normalising, so they look like fluorescence; recorded in the model file",
    )
    p.add_argument(
        "--folds",
        type=int,
        help="k-fold cross-validation: train K models; --out is then a folder receiving "
        "fold0.safetensors ... (each records its validation images)",
    )
    # the augmentation's random ranges, each a LOW HIGH pair (core.augment.Augmentation)
    ranges = {
        "--zoom": "random zoom of the training patches, log-uniform in [LOW, HIGH] (e.g. 0.67 "
        "1.5): objects seen at other pixel sizes, for images from other microscopes",
        "--blur-sigma": "blur training patches in the plane, the Gaussian's sigma uniform in "
        "[LOW, HIGH] pixels (e.g. 0.5 2): for blurrier images than the training ones",
        "--gamma": "random gamma of the training patches, log-uniform in [LOW, HIGH] (e.g. 0.7 "
        "1.4)",
        "--noise-std": "add Gaussian noise to the training patches, its standard deviation "
        "uniform in [LOW, HIGH] of the normalised range (e.g. 0 0.05): for noisier images",
    }
    for flag, text in ranges.items():
        p.add_argument(flag, type=float, nargs=2, metavar=("LOW", "HIGH"), help=text)
    p.add_argument(
        "--blur-probability",
        type=float,
        metavar="P",
        help="the share of the patches --blur-sigma blurs (default: all)",
    )
    p.add_argument("--class-names", help="comma-separated, one per class")
    p.add_argument("--sparse", action="store_true", help="label 0 = unlabeled, classes 1..K")
    p.add_argument("--epochs", type=int, default=trn.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=trn.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=trn.batch_size)
    p.add_argument("--patch-size", type=int, default=trn.patch_size)
    p.add_argument("--lr", type=float, default=trn.lr)
    p.add_argument("--val-fraction", type=float, default=trn.val_fraction)
    p.add_argument(
        "--keep",
        choices=config.KEEP_CHOICES,
        default=trn.keep,
        help="the epoch --out holds: the best by validation mean Dice, or the last",
    )
    p.add_argument("--val-images", nargs="+", help="explicit validation images")
    p.add_argument("--val-labels", nargs="+", help="explicit validation labels")
    p.add_argument(
        "--num-workers",
        type=int,
        default=trn.num_workers,
        help="DataLoader worker processes for patch sampling/augmentation",
    )
    p.add_argument("--device", default=trn.device, help=_device_help(config, trn.device))
    p.add_argument("--seed", type=int, default=trn.seed)
    p.add_argument(
        "--time-limit", type=float, help="stop after this many minutes (keeps the best)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run of --out (same settings and data; more --epochs "
        "allowed)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="score a model (or fold ensemble, or a submission CSV) on labelled images",
    )
    p.add_argument("model", nargs="*", help="model file(s); several are averaged")
    p.add_argument("--images", nargs="+")
    p.add_argument("--labels", nargs="+")
    p.add_argument("--dataset", help=DATASET_HELP)
    p.add_argument(
        "--submission",
        help="score this submission CSV (one row per object) instead of predicting",
    )
    p.add_argument("--tta", choices=tta_modes)
    _add_postprocessing(p)
    _add_object_diameter(p)
    p.add_argument(
        "--errors",
        action="store_true",
        help="also count what the objects not matched at IoU 0.5 are (missed, merged, "
        "split, spurious, fragments, outlines off), per image kind",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "demo",
        help="segment the bundled sample with the bundled model "
        "(zarr labels, overlay PNG, Dice vs ground truth)",
    )
    p.add_argument("--out", default="segkit-demo", help="output folder (default ./segkit-demo)")
    p.add_argument("--sample", choices=SAMPLES, default=SAMPLES[0])
    p.add_argument("--model", help="model file (default: the bundled one)")
    p.add_argument("--tile", type=int, default=128, help="tile side (default 128)")
    p.add_argument(
        "--image",
        help="also segment this real 2D image (PNG/TIFF, gray or colour): overlay PNG and "
        "instance labels TIFF in --out",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "submit",
        help="Kaggle submission CSV from a folder of images "
        "(fold/TTA ensembles, threshold, minimum area)",
    )
    p.add_argument("models", nargs="+", help="model file(s); several are averaged")
    p.add_argument("images", help="folder of images (<id>.png or DSB2018 <id>/images/<id>.png)")
    p.add_argument("--out", required=True, help="submission CSV to write")
    p.add_argument("--columns", default="ImageId,EncodedPixels", help="the two header names")
    p.add_argument(
        "--layout",
        choices=config.SUBMISSION_LAYOUTS,
        default=config.SUBMISSION_LAYOUTS[0],
        help="one row per image, per class, or per object (DSB2018)",
    )
    p.add_argument(
        "--id-rule",
        default="{id}",
        help="row id format: {id}, {class_id}, {class_name} (e.g. {id}_{class_id})",
    )
    p.add_argument("--tta", choices=tta_modes)
    _add_postprocessing(p)
    p.add_argument(
        "--order",
        choices=config.RLE_ORDERS,
        default=config.RLE_ORDERS[0],
        help="RLE pixel order: F column-major (Kaggle's default), C row-major",
    )
    _add_object_diameter(p)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("tune", help="search threshold and minimum area on labelled images")
    p.add_argument("models", nargs="*", help="model file(s); several are averaged")
    p.add_argument("--model", nargs="+", help="the same, as an option")
    p.add_argument("--images", nargs="+")
    p.add_argument("--labels", nargs="+")
    p.add_argument("--dataset", help=DATASET_HELP)
    p.add_argument(
        "--metric",
        choices=config.TUNE_METRICS,
        default=config.TUNE_METRICS[0],
        help="mean per-image Dice, or DSB2018 mean average precision",
    )
    p.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=list(config.TUNE_THRESHOLDS),
    )
    p.add_argument("--min-areas", type=int, nargs="+", default=list(config.TUNE_MIN_AREAS))
    p.add_argument(
        "--seed-thresholds",
        type=float,
        nargs="+",
        default=list(config.TUNE_SEED_THRESHOLDS),
        help="watershed seed thresholds (boundary models, --metric map)",
    )
    p.add_argument(
        "--out-of-fold",
        action="store_true",
        help="each image is predicted only by the fold model(s) that held it out "
        "(segkit train --folds records which); images no fold held out are skipped",
    )
    p.add_argument("--tta", choices=tta_modes)
    p.add_argument(
        "--record",
        action="store_true",
        help="write the best values into the model file(s): predict, evaluate, submit and "
        "the widgets then use them",
    )
    p.add_argument("--top", type=int, default=10, help="rows of the table to print")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "export",
        help="export a model as a bioimage.io package (.zip), ONNX (.onnx) or TorchScript (.pt)",
    )
    p.add_argument("model", help="model file (.safetensors)")
    p.add_argument("out", help="OUT.zip (bioimage.io), OUT.onnx or OUT.pt (TorchScript)")
    p.add_argument(
        "--format", choices=("bioimageio", "onnx", "torchscript"), help="default: from OUT"
    )
    p.add_argument("--name", help="bioimage.io: the model's name")
    p.add_argument("--description", help="bioimage.io: one paragraph on what it segments")
    p.add_argument(
        "--author",
        action="append",
        help="bioimage.io: an author (repeat for several; default: the model file's, else you)",
    )
    p.add_argument("--license", default="CC-BY-4.0", help="bioimage.io: SPDX licence id")
    p.add_argument(
        "--cite",
        action="append",
        metavar="TEXT=DOI_OR_URL",
        help="bioimage.io: a citation (default: the architecture's paper and napari-segkit)",
    )
    p.add_argument(
        "--test-image",
        help="bioimage.io: image the test tensors and cover come from (default: synthetic)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("models", help="list the model architectures")
    p.add_argument("-v", "--verbose", action="store_true", help="also list each one's options")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, ImportError) as err:
        print(f"segkit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
