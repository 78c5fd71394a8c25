"""The fit loop: a generator of reports that the CLI, the widget and tests drive.

``fit`` yields a :class:`TrainReport` after every optimisation step and after each
epoch's validation; the caller decides how to show them (tqdm, a plot) and may stop
at any time through `cancel`. The best model (by validation mean Dice, else the
latest) is saved atomically to `out`; a resume state (weights, optimiser,
scheduler, step) is saved beside it after each epoch, so an interrupted run
continues where it stopped; it is removed when training ends normally.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import (
    CLASS_WEIGHT_METHODS,
    DEFAULT_ARCH,
    DEFAULT_ARCH_OPTIONS,
    KEEP_CHOICES,
    SCHEDULES,
    TARGETS,
    TrainConfig,
)
from ..core.atomic import atomic_path
from ..core.locks import output_lock
from ..core.metrics import segmentation_report
from ..core.outputs import check_model_output
from ..jobs import TrainingCancelled, is_cancelled
from ..losses.table import get_loss, get_loss_spec
from ..runtime import import_torch_compiler_safely, resolve_device
from .data import IGNORE_INDEX, PatchDataset, TrainingSet


@dataclass
class TrainReport:
    """One optimisation step, or the end of an epoch (``end_of_epoch``).

    At the end of an epoch `val` holds the validation report (per-class Dice/IoU; None
    without validation data) and `best` says whether this epoch scored best so far (with
    ``keep="best"`` the epochs saved; ``keep="last"`` saves every epoch).
    """

    epoch: int
    step: int
    total_steps: int
    loss: float
    lr: float
    val: dict | None = None
    best: bool = False
    end_of_epoch: bool = False


#: loss constructor options that training sets itself -> the setting that decides them
_LOSS_SETTINGS = {
    "ignore_index": "training itself (the unlabelled pixels)",
    "class_weights": "the class_weights setting",
    "squared": "the squared_dice setting",
}


def check_config(config: TrainConfig) -> None:
    """Raise ValueError for settings that would only fail later, mid-training.

    Parameters
    ----------
    config : TrainConfig

    Returns
    -------
    None

    Raises
    ------
    ValueError
        Unknown loss, schedule or `keep`, loss options the loss does not take, bad
        class-weight method, counts below 1, lr <= 0.
    """
    spec = get_loss_spec(config.loss)  # ValueError listing the losses
    if not isinstance(config.loss_options, dict) or not all(
        isinstance(k, str) for k in config.loss_options
    ):
        raise ValueError(f"loss_options must be a dict of names, got {config.loss_options!r}")
    if own := sorted(set(config.loss_options) & set(_LOSS_SETTINGS)):
        raise ValueError(
            "loss_options cannot set "
            + "; ".join(f"{k}: it is set by {_LOSS_SETTINGS[k]}" for k in own)
        )
    spec.check_options(config.loss_options, reserved=_LOSS_SETTINGS)
    if config.loss_options and spec.class_weights != "required":
        # the values too, built as training will build them (class weights come later,
        # from the data)
        get_loss(config.loss, **config.loss_options)
    if config.schedule not in SCHEDULES:
        raise ValueError(
            f"Unknown schedule {config.schedule!r}. Available: {', '.join(SCHEDULES)}"
        )
    if isinstance(config.class_weights, str) and config.class_weights not in CLASS_WEIGHT_METHODS:
        raise ValueError(
            f"class_weights must be a list of floats or one of {', '.join(CLASS_WEIGHT_METHODS)}, "
            f"got {config.class_weights!r}"
        )
    for name in ("epochs", "steps_per_epoch", "batch_size", "patch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.lr <= 0:
        raise ValueError(f"lr must be > 0, got {config.lr}")
    if config.keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_CHOICES)}, got {config.keep!r}")


def resolve_class_weights(config: TrainConfig, train: TrainingSet) -> TrainConfig:
    """Turn ``class_weights="inverse"|"median"`` (or weighted_ce without weights) into numbers.

    The weights are computed from the training targets (unlabeled pixels not counted),
    so the saved model records the exact weights it was trained with.

    Parameters
    ----------
    config : TrainConfig
    train : TrainingSet

    Returns
    -------
    TrainConfig
        A copy whose ``class_weights`` is None or a list of K floats.
    """
    from dataclasses import replace

    from ..core.weight_maps import compute_class_weights

    method = config.class_weights
    if method is None and get_loss_spec(config.loss).class_weights == "required":
        method = CLASS_WEIGHT_METHODS[0]
    if not isinstance(method, str):
        if method is not None and len(method) != train.num_classes:
            raise ValueError(f"{len(method)} class weights for {train.num_classes} classes")
        return config
    weights = compute_class_weights(
        list(train.targets), train.num_classes, method=method, ignore_index=IGNORE_INDEX
    )
    return replace(config, class_weights=[round(float(w), 6) for w in weights])


def _loss(config: TrainConfig):
    """The configured loss, given the options its table entry says it takes."""
    spec = get_loss_spec(config.loss)
    options = {**config.loss_options, "ignore_index": IGNORE_INDEX}
    if spec.squared_dice:
        options["squared"] = config.squared_dice
    if spec.class_weights != "never" and config.class_weights is not None:
        options["class_weights"] = config.class_weights
    return get_loss(config.loss, **options)


def _scheduler(optimizer, config: TrainConfig, total: int):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if total < 4:  # too few steps to warm up and decay: a constant rate
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    # warm-up over the first 10 % of the steps (at least 1.5 steps: OneCycleLR divides by
    # the warm-up length), then cosine decay (Smith's one-cycle policy)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.lr,
        total_steps=total,
        pct_start=max(0.1, 1.5 / total),
        anneal_strategy="cos",
    )


#: settings that do not change what a run computes, so a resume may change them
_RESUMABLE_CHANGES = ("epochs", "device", "num_workers", "patience", "keep")


class ResumeError(ValueError):
    """A resume state cannot be used: unreadable, or made by a different run."""


def run_identity(model, config: TrainConfig, train: TrainingSet, val) -> dict:
    """What identifies a training run: its settings, its network and its data.

    Stored in the resume state; a resume with anything else is refused.

    Parameters
    ----------
    model : SegmentationModel
    config : TrainConfig
    train, val : TrainingSet (val may be None)

    Returns
    -------
    dict
        ``{"settings": {...}, "model": {...}, "data": "<hash>"}`` (JSON-able).
    """
    import hashlib

    settings = {k: v for k, v in _jsonable_config(config).items() if k not in _RESUMABLE_CHANGES}
    if not settings["loss_options"]:  # the default: runs from before the setting stay resumable
        del settings["loss_options"]
    h = hashlib.sha256()
    for part in (train, val):
        for image, target in zip(
            part.images if part else [], part.targets if part else [], strict=True
        ):
            h.update(repr((image.shape, target.shape)).encode())
            h.update(np.ascontiguousarray(target).tobytes())
            h.update(np.ascontiguousarray(image.ravel()[::7]).tobytes())
        h.update(b"|")
    network = {
        "arch": getattr(model, "arch", type(model).__name__),
        "options": json.loads(json.dumps(getattr(model, "options", {}), default=str)),
        "in_channels": getattr(model, "in_channels", None),
        "num_classes": getattr(model, "num_classes", None),
    }
    return {"settings": settings, "model": network, "data": h.hexdigest()[:32]}


def _differences(stored: dict, current: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}" if key != "data" else "the training data")
    return out


def _load_state(path: Path, device) -> dict:
    """The resume state, read without unpickling code; ResumeError when unusable."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch's own notes on odd pickles: our error says it
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 -- torch raises many types for bad files
        raise ResumeError(
            f"cannot read the resume state '{path}' ({type(err).__name__}: {str(err)[:200]}); "
            "it is truncated, foreign or pickled code (never executed). Delete it to train "
            "from scratch."
        ) from None
    needed = ("model", "optimizer", "scheduler", "epoch", "best_score", "stale", "run")
    if not isinstance(state, dict) or any(k not in state for k in needed):
        raise ResumeError(
            f"'{path}' is not a resume state of this napari-segkit (missing fields); delete it "
            "to train from scratch"
        )
    return state


def fit(
    model,
    train: TrainingSet,
    val: TrainingSet | None,
    config: TrainConfig,
    *,
    out: str | os.PathLike,
    save_kwargs: dict | None = None,
    cancel=None,
    resume: bool = False,
):
    """Train `model` in place; yield :class:`TrainReport` objects.

    Parameters
    ----------
    model : SegmentationModel
    train, val : TrainingSet
        Validation may be None (then the latest model is kept).
    config : TrainConfig
    out : path
        Model file for the best model; the resume state goes to ``out + ".state.pt"``.
    save_kwargs : dict
        Extra :func:`~napari_segkit.models.save_model` arguments (class names, ...).
    cancel : threading.Event or callable
        Checked before every step; raises :class:`TrainingCancelled`.
    resume : bool
        Continue from the resume state beside `out` if there is one.

    Yields
    ------
    TrainReport
        After every step, and at the end of every epoch (``end_of_epoch``).
    """
    check_config(config)
    out = Path(out)
    with output_lock(out):  # one training run per model file at a time
        _remove_stale_partials(out)
        return (yield from _fit(model, train, val, config, out, save_kwargs, cancel, resume))


def _target_of(save_kwargs) -> str:
    """The training target ("semantic" or "boundary") recorded for the model file."""
    return ((save_kwargs or {}).get("training") or {}).get("target", "semantic")


def _remove_stale_partials(out: Path) -> None:
    """Temporary files a killed save left beside `out` (the lock says no save is running)."""
    for name in (out.name, out.name + ".state.pt"):
        for leftover in out.parent.glob(f".{name}.*.partial"):
            leftover.unlink(missing_ok=True)


def _fit(model, train, val, config, out: Path, save_kwargs, cancel, resume):
    from ..models import save_model

    import_torch_compiler_safely()  # inside napari (console or widget): see its docstring
    config = resolve_class_weights(config, train)
    state_path = out.with_name(out.name + ".state.pt")
    device = resolve_device(config.device)
    model.to(device)
    torch.manual_seed(config.seed)
    criterion = _loss(config).to(device)
    needs_weight_map = get_loss_spec(config.loss).weight_map
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    total = config.epochs * config.steps_per_epoch
    scheduler = _scheduler(optimizer, config, total)
    dataset = PatchDataset(
        train,
        patch_size=config.patch_size,
        length=config.steps_per_epoch * config.batch_size,
        augmentation=config.augmentation,
        seed=config.seed,
        border_weights=(
            {
                "w0": config.w0,
                "sigma": config.sigma,
                "spacing": (save_kwargs or {}).get("spacing"),
                # touching objects share one foreground region in a boundary target: the
                # border term must separate their interiors instead
                "objects": "interior" if _target_of(save_kwargs) == "boundary" else "foreground",
            }
            if needs_weight_map
            else None
        ),
    )
    start_epoch, best_score, stale = 0, -np.inf, 0
    run = run_identity(model, config, train, val)
    if resume and state_path.exists():
        state = _load_state(state_path, device)
        if differ := _differences(state["run"], run):
            raise ResumeError(
                f"cannot resume '{out}': this run differs from the interrupted one in "
                f"{'; '.join(differ)}. Resume with the same settings and data, or start "
                "again without resume (and with overwrite)."
            )
        if config.epochs < state["epoch"]:
            raise ResumeError(
                f"cannot resume '{out}' with epochs={config.epochs}: the run has already "
                f"finished {state['epoch']} epochs"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("total_steps") == total:
            scheduler.load_state_dict(state["scheduler"])
        else:  # more epochs than planned (deliberate): re-plan the schedule from here
            _fast_forward(scheduler, state["epoch"] * config.steps_per_epoch)
        start_epoch, best_score, stale = (
            state["epoch"],
            float(state["best_score"]),
            int(state["stale"]),
        )
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    for epoch in range(start_epoch, config.epochs):
        dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=config.batch_size,
            num_workers=config.num_workers,
            persistent_workers=False,
        )
        model.train()
        epoch_losses = []
        for i, (image, target, weights) in enumerate(loader):
            if is_cancelled(cancel):
                kept = (
                    f"the best model so far is in '{out}'"
                    if out.exists()
                    else "no epoch had finished, so no model was saved"
                )
                raise TrainingCancelled(
                    f"training cancelled at epoch {epoch + 1}, step {i + 1}; {kept}"
                )
            image, target, weights = image.to(device), target.to(device), weights.to(device)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(image)
            logits = logits.float()
            if needs_weight_map:
                loss = criterion(logits, target, weights)
            else:
                loss = criterion(logits, target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step = epoch * config.steps_per_epoch + i + 1
            epoch_losses.append(float(loss.detach()))
            yield TrainReport(epoch, step, total, epoch_losses[-1], scheduler.get_last_lr()[0])
        report = validate(model, val, device) if val is not None else None
        score = report["mean_dice"] if report is not None else float(epoch)
        best = bool(score > best_score)
        if best:
            best_score, stale = score, 0
        else:
            stale += 1
        if best or config.keep == "last":
            info = dict(save_kwargs or {})
            info["training"] = {
                **info.get("training", {}),
                "epochs": epoch + 1,
                "config": _jsonable_config(config),
                "validation": report,
            }
            save_model(out, model, **info)
        _save_state(
            state_path, model, optimizer, scheduler, epoch + 1, best_score, stale, run, total
        )
        # the epoch's report carries the mean training loss of its steps
        yield TrainReport(
            epoch,
            (epoch + 1) * config.steps_per_epoch,
            total,
            float(np.mean(epoch_losses)),
            scheduler.get_last_lr()[0],
            val=report,
            best=best,
            end_of_epoch=True,
        )
        if stale >= config.patience:
            break
    # finished (or stopped early): nothing left to resume; the model file is the result
    state_path.unlink(missing_ok=True)


def validate(model, val: TrainingSet, device) -> dict:
    """Per-class Dice/IoU and cross-entropy of `model` on the validation planes.

    The planes are predicted with the tile engine, as users will predict. Returns
    :func:`~napari_segkit.core.metrics.segmentation_report`'s dict plus ``"loss"``,
    the mean cross-entropy of the predicted probabilities over labelled pixels.

    Parameters
    ----------
    model : torch.nn.Module
    val : TrainingSet
    device : torch.device or str

    Returns
    -------
    dict
    """
    from ..tiling import predict

    model.eval()
    k = val.num_classes
    cm_truth, cm_pred, nll, counted = [], [], 0.0, 0
    for image, target in zip(val.images, val.targets, strict=False):
        labels, probs = predict(
            model,
            image,
            axes="CYX" if image.ndim == 3 else "CZYX",
            device=str(device),
            normalization=None,
            tile_size=256,
            overlap=0.25,
            optimize=False,
            output="both",
        )
        cm_truth.append(target.ravel())
        cm_pred.append(labels.ravel())
        valid = target != IGNORE_INDEX
        t = np.where(valid, target, 0)
        if probs.shape[0] == 1:  # binary (sigmoid): p(class 1) only
            p_true = np.where(t == 1, probs[0], 1 - probs[0])
        else:
            p_true = np.take_along_axis(probs, t[None].astype(np.intp), 0)[0]
        nll += float(-np.log(np.clip(p_true[valid], 1e-7, 1.0)).sum())
        counted += int(valid.sum())
    truth, pred = np.concatenate(cm_truth), np.concatenate(cm_pred)
    report = segmentation_report(truth, pred, max(k, 2), ignore_index=IGNORE_INDEX)
    report["loss"] = nll / max(counted, 1)
    return report


def _jsonable_config(config: TrainConfig) -> dict:
    d = asdict(config)
    d["augmentation"] = asdict(config.augmentation)
    return d


def _save_state(
    path: Path, model, optimizer, scheduler, epoch, best_score, stale, run, total
) -> None:
    """Atomic: a crash mid-write never leaves a truncated state under the final name."""
    with atomic_path(path) as tmp:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_score": float(best_score),
                "stale": stale,
                "run": run,
                "total_steps": total,
            },
            tmp,
        )


def _fast_forward(scheduler, steps: int) -> None:
    """Advance a fresh scheduler by `steps` without optimiser steps (a re-planned resume)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(steps):
            scheduler.step()


def split_validation(data: TrainingSet, fraction: float, seed: int = 0):
    """Split planes into (train, validation).

    Several planes: a random `fraction` of them is held out. A single plane (one 2D
    image, as when annotating one image in napari): a strip of `fraction` of it along its
    longer side is held out instead, so training still reports validation scores on
    pixels it never sees. None for validation
    when `fraction` is 0 or the image is too small to cut (under 32 pixels of strip).

    Parameters
    ----------
    data : TrainingSet
    fraction : float
        Share of the planes (or of the single plane) held out; at least one plane when > 0.
    seed : int

    Returns
    -------
    (TrainingSet, TrainingSet or None)
    """
    n = len(data.images)
    n_val = int(round(n * fraction))
    if fraction <= 0:
        return data, None
    if n == 1:
        return _split_single_plane(data, fraction)
    if n_val == 0:
        return data, None
    order = np.random.default_rng(seed).permutation(n)
    return data.subset(sorted(order[n_val:])), data.subset(sorted(order[:n_val]))


def _split_single_plane(data: TrainingSet, fraction: float):
    """(top / left part, bottom / right strip) of the one plane, or (data, None) if too small."""
    image, target = data.images[0], data.targets[0]
    axis = int(np.argmax(target.shape))  # the longest side (ties: rows)
    length = target.shape[axis]
    strip = int(round(length * fraction))
    if strip < 32 or length - strip < 32:
        return data, None
    cut = length - strip
    keep = [slice(None)] * target.ndim
    held = [slice(None)] * target.ndim
    keep[axis], held[axis] = slice(0, cut), slice(cut, length)

    def part(where):
        return TrainingSet(
            [np.ascontiguousarray(image[(slice(None), *where)])],
            [np.ascontiguousarray(target[tuple(where)])],
            data.num_classes,
            list(data.source),
            data.in_channels,
        )

    return part(keep), part(held)


def train(images, labels, *, out, progress=None, **options):
    """Train a model on annotated images and save the best one to `out`.

    Takes the arguments of :func:`train_iter` and `progress`, a callable given every
    :class:`TrainReport`; returns the best model as a ModelFile (loaded back from `out`).

    Parameters
    ----------
    images, labels : list of arrays
        See :func:`train_iter`.
    out : path
        Model file to write.
    progress : callable, optional
        Given every :class:`TrainReport`.
    **options
        :func:`train_iter` options and :class:`TrainConfig` fields.

    Returns
    -------
    ModelFile
    """
    return _drain(train_iter(images, labels, out=out, **options), progress)


def _drain(steps, progress):
    """Run a report generator to its end, passing reports to `progress`; its return value."""
    while True:
        try:
            report = next(steps)
        except StopIteration as done:
            return done.value
        if progress is not None:
            progress(report)


def train_iter(
    images,
    labels,
    *,
    out,
    arch: str = DEFAULT_ARCH,
    arch_options: dict | None = None,
    sparse: bool = False,
    num_classes: int | None = None,
    class_names=None,
    validation=None,
    init=None,
    config: TrainConfig | None = None,
    cancel=None,
    resume: bool = False,
    overwrite: bool = False,
    target: str = "semantic",
    boundary_width: int = 1,
    color: str = "as-is",
    normalization: dict | None = None,
    provenance: dict | None = None,
    spacing=None,
    **config_overrides,
):
    """Train a model on annotated images, as a generator of :class:`TrainReport` objects.

    The generator's return value (``StopIteration.value``; napari's thread worker
    passes it to ``returned``) is the best model as a ModelFile. All input checks
    run before the first report, so bad input fails before any training.

    Parameters
    ----------
    images, labels : list of arrays
        See :func:`~napari_segkit.training.prepare_training_set` (napari label conventions;
        ``sparse=True``: 0 = unlabeled).
    out : path
        Model file to write (the best checkpoint, atomically).
    arch, arch_options : registry name and options (see ``list_architectures()``).
    validation : (images, labels), optional
        Explicit validation data (same conventions); `val_fraction` is then ignored.
    init : path or ModelFile, optional
        Fine-tune: start from this model file's weights and architecture (`arch` and
        `arch_options` are ignored) -- correct labels in napari, retrain a few epochs,
        predict again. Its class count must match the labels'.
    config : TrainConfig, optional; ``**config_overrides`` change single fields
        (``epochs=5, loss="border_ce"``); ``val_fraction`` is the fraction of the
        planes held out for validation (none with a single plane).
    cancel : Event or callable, optional
        Checked before every step (raises :class:`TrainingCancelled`).
    resume : bool
        Continue an interrupted run of `out` (refused, with the differences listed,
        when settings or data differ; `epochs` may grow: the schedule is re-planned).
    overwrite : bool
        Replace an existing `out` (never the model being fine-tuned).
    target : {"semantic", "boundary"}
        "semantic": the labels' class ids as they are. "boundary": the labels are
        instances (a binary mask is split into connected components), turned into
        background / interior / boundary (:func:`~napari_segkit.core.instances.boundary_target`)
        so the model learns to separate touching objects.
    boundary_width : int
        Boundary thickness in pixels for ``target="boundary"``.
    color : {"as-is", "gray", "rgb"}
        How images' channels become the model's, recorded in the model file so that
        prediction reads images the same way: "as-is" (the images' channel count),
        "gray" (a 1-channel model; RGB(A) images read as luminance), "rgb" (a 3-channel
        model; gray images read as three equal channels). See
        :class:`~napari_segkit.core.volume.Volume`.
    normalization : dict, optional
        Per-image normalisation, recorded in the model file (default
        ``{"mode": "percentile", "low": 1, "high": 99.8}``; add ``"invert": "auto"`` to
        turn bright-background images into dark-background ones).
    provenance : dict, optional
        Recorded in the model file's ``training`` section too (JSON-able: e.g. the data
        set, its split and the script that trained the model).
    spacing : sequence of float, optional
        The images' voxel spacing ``(z, y, x)``, recorded in the model file.

    A 3D architecture (``unet3d``, ``resunet3d``) trains on stacks: random 3D patches of
    ``(min(patch_size, deepest stack), patch_size, patch_size)``, augmented in 3D (flips
    of z, y and x, in-plane rotations, 3D elastic deformation, intensity), validated
    with the 3D tile engine.

    Yields
    ------
    TrainReport
        After every step and every epoch's validation.
    """
    from dataclasses import replace

    config = replace(config or TrainConfig(), **config_overrides)
    check_config(config)
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    check_model_output(out, init=getattr(init, "path", init), overwrite=overwrite, resume=resume)
    base = _load_init(init)
    if base is not None:
        num_classes = num_classes or base.info.num_classes
        class_names = class_names or base.info.class_names
    if target == "semantic" and num_classes is None and not sparse:
        import warnings

        from ..core.guards import instance_like

        for i, label in enumerate(labels):
            if problem := instance_like(label, len(class_names) if class_names else None):
                warnings.warn(f"labels #{i}: {problem}", UserWarning, stacklevel=2)
                break
    from ..models.registry import get_architecture

    spatial_dims = (
        base.info.spatial_dims if base is not None else get_architecture(arch).spatial_dims
    )
    object_sizes = None
    if target == "boundary":
        object_sizes = _object_sizes(labels)
        in_3d = spatial_dims == 3  # a 3D model learns where stacked objects meet in z too
        labels = _boundary_targets(labels, boundary_width, volumetric=in_3d)
        if validation is not None:
            validation = (
                validation[0],
                _boundary_targets(validation[1], boundary_width, volumetric=in_3d),
            )
        num_classes = num_classes or 3
        class_names = class_names or ["background", "interior", "boundary"]
    if base is not None:
        color, normalization = base.info.color, normalization or base.info.normalization
    prep = {
        "sparse": sparse,
        "color": color,
        "normalization": normalization,
        "spatial_dims": spatial_dims,
    }
    data = _prepare(images, labels, num_classes=num_classes, **prep)
    if base is not None and (
        (base.info.in_channels, base.info.num_classes) != (data.in_channels, data.num_classes)
    ):
        raise ValueError(
            f"cannot fine-tune: the model takes {base.info.in_channels} channel(s) and "
            f"predicts {base.info.num_classes} classes, the data has "
            f"{data.in_channels} channel(s) and {data.num_classes} classes"
        )
    if class_names is not None and len(class_names) != data.num_classes:
        raise ValueError(f"{len(class_names)} class names for {data.num_classes} classes")
    if validation is not None:
        val_images, val_labels = validation
        train_set = data
        val_set = _prepare(val_images, val_labels, num_classes=data.num_classes, **prep)
        if val_set.in_channels != data.in_channels:
            raise ValueError(
                f"validation images have {val_set.in_channels} channels, "
                f"training images {data.in_channels}"
            )
    else:
        train_set, val_set = split_validation(data, config.val_fraction, config.seed)
    return (
        yield from _train_one(
            train_set,
            val_set,
            out=out,
            arch=arch,
            arch_options=arch_options,
            class_names=class_names,
            config=config,
            sparse=sparse,
            cancel=cancel,
            resume=resume,
            base=base,
            provenance={
                **(provenance or {}),
                "target": target,
                **({"boundary_width": boundary_width} if target == "boundary" else {}),
                # what predict_objects(object_diameter=...) rescales to (2D models)
                **(
                    {"object_diameter": object_sizes} if object_sizes and spatial_dims == 2 else {}
                ),
            },
            reading={"color": color, "normalization": normalization, "spacing": spacing},
        )
    )


def _plan_anisotropy(arch: str, options: dict, spacing) -> dict:
    """For a 3D U-Net on coarse-z voxels, keep z for the first levels (as nnU-Net plans
    them): one anisotropic level per halving that brings the z spacing below twice the
    in-plane spacing. Explicit ``anisotropic_levels`` win; 2D models are untouched.

    Parameters
    ----------
    arch : str
    options : dict
        The architecture options asked for.
    spacing : sequence of float or None
        ``(z, y, x)`` voxel spacing of the training stacks.

    Returns
    -------
    dict
        `options`, with ``anisotropic_levels`` added when planned.

    Examples
    --------
    >>> _plan_anisotropy("unet3d", {"depth": 3}, (4.0, 1.0, 1.0))
    {'depth': 3, 'anisotropic_levels': 2}
    >>> _plan_anisotropy("unet3d", {"depth": 3}, (1.0, 1.0, 1.0))
    {'depth': 3}
    """
    from ..models.registry import get_architecture

    spec = get_architecture(arch)
    if spec.spatial_dims != 3 or spacing is None or "anisotropic_levels" not in spec.options:
        return dict(options)
    if "anisotropic_levels" in options:
        return dict(options)
    depth = int(options.get("depth", spec.options.get("depth", 3)))
    ratio = float(spacing[0]) / max(min(float(s) for s in spacing[1:]), 1e-12)
    levels = 0
    while ratio >= 2 and levels < depth:
        levels += 1
        ratio /= 2
    return {**options, "anisotropic_levels": levels} if levels else dict(options)


def _tile_size(data: TrainingSet, patch: int) -> tuple:
    """The tile size recorded for prediction: the patch (a 3D model's is as deep as the
    deepest training stack allows, and at least 16 planes)."""
    if data.targets[0].ndim == 3:
        depth = max(t.shape[0] for t in data.targets)
        return (max(16, min(patch, depth)), patch, patch)
    return (patch, patch)


def _object_sizes(instance_labels) -> dict | None:
    """The training objects' diameters (``training["object_diameter"]``), so that a model
    can be run on images at another pixel size (:mod:`napari_segkit.core.object_size`)."""
    from scipy import ndimage as ndi

    from ..core.object_size import diameter_range

    def instances(label):  # a binary mask counts as its connected components, as in
        label = np.asarray(label)  # boundary_target
        if label.max(initial=0) > 1:
            return label
        return (
            np.stack([ndi.label(p)[0] for p in label]) if label.ndim == 3 else ndi.label(label)[0]
        )

    return diameter_range([instances(label) for label in instance_labels])


def _boundary_targets(labels, width: int, *, volumetric: bool = False) -> list:
    from ..core.instances import boundary_target

    return [
        boundary_target(np.asarray(label), width=width, volumetric=volumetric) for label in labels
    ]


def _load_init(init):
    """The model file to fine-tune from (None: train from scratch)."""
    if init is None:
        return None
    from ..models import ModelFile, load_model

    return init if isinstance(init, ModelFile) else load_model(init)


def _prepare(
    images, labels, *, num_classes, sparse, color="as-is", normalization=None, spatial_dims=2
) -> TrainingSet:
    from ..core.choices import COLOR_MODES
    from .data import prepare_training_set

    if color not in COLOR_MODES:
        raise ValueError(f"color must be one of {COLOR_MODES}, got {color!r}")
    # an image with one more axis than its labels carries channels last: (Y, X, C) / (Z, Y, X, C)
    multichannel = len(images) and len(labels) and np.ndim(images[0]) == np.ndim(labels[0]) + 1
    in_channels = int(images[0].shape[-1]) if multichannel else 1
    in_channels = {"gray": 1, "rgb": 3}.get(color, in_channels)
    return prepare_training_set(
        images,
        labels,
        num_classes=num_classes,
        sparse=sparse,
        in_channels=in_channels,
        color=color,
        normalization=normalization,
        spatial_dims=spatial_dims,
    )


def _train_one(
    train_set,
    val_set,
    *,
    out,
    arch,
    arch_options,
    class_names,
    config,
    sparse,
    cancel,
    resume,
    base=None,
    provenance=None,
    reading=None,
):
    """Build (or take `base`'s) and fit one model, yielding reports; returns the best ModelFile."""
    import copy

    from ..models import build_model, load_model

    if base is not None:
        model = copy.deepcopy(base.model)  # the caller's ModelFile stays as it was
    else:
        if arch_options is None:
            arch_options = DEFAULT_ARCH_OPTIONS.get(arch, {})
        arch_options = _plan_anisotropy(arch, arch_options, (reading or {}).get("spacing"))
        torch.manual_seed(config.seed)
        model = build_model(arch, train_set.in_channels, train_set.num_classes, **arch_options)
    reading = reading or {}
    save_kwargs = {
        "color": reading.get("color") or "as-is",
        "normalization": reading.get("normalization"),
        "class_names": class_names,
        "tile_size": _tile_size(train_set, config.patch_size),
        "spacing": reading.get("spacing"),
        "training": {
            "loss": config.loss,
            "sparse": sparse,
            "seed": config.seed,
            "n_train_planes": len(train_set.images),
            # each class's share of the training pixels: predictions far from it are flagged
            # (napari_segkit.core.guards.unusual_prediction)
            "class_fractions": (
                train_set.class_pixel_counts() / max(train_set.class_pixel_counts().sum(), 1)
            )
            .round(4)
            .tolist(),
            "n_val_planes": 0 if val_set is None else len(val_set.images),
            **(provenance or {}),
        },
    }
    if base is not None:
        save_kwargs["training"]["fine_tuned_from"] = str(base.path) if base.path else None
    yield from fit(
        model,
        train_set,
        val_set,
        config,
        out=out,
        save_kwargs=save_kwargs,
        cancel=cancel,
        resume=resume,
    )
    return load_model(out)


def train_kfold(
    images,
    labels,
    *,
    out_dir,
    k: int = 5,
    arch: str = DEFAULT_ARCH,
    arch_options: dict | None = None,
    sparse: bool = False,
    num_classes: int | None = None,
    class_names=None,
    config: TrainConfig | None = None,
    progress=None,
    cancel=None,
    target: str = "semantic",
    boundary_width: int = 1,
    color: str = "as-is",
    normalization: dict | None = None,
    image_ids=None,
    **config_overrides,
) -> dict:
    """k-fold cross-validation: k models, each validated on one fold.

    Folds are made of whole images when there are at least `k` of them (no plane of
    a validation image is seen in training), else of planes.

    Returns
    -------
    dict
        ``{"models": [paths], "folds": [validation reports], "mean_dice": [...],
        "std_dice": [...], "mean_iou": [...], "std_iou": [...]}`` (per class).

    Parameters
    ----------
    images, labels : list of arrays
        As for :func:`train_iter`.
    out_dir : path
        Receives ``fold0.safetensors`` ... ``fold{k-1}.safetensors``.
    k : int
        Number of folds, >= 2.
    arch, arch_options, sparse, num_classes, class_names, config, **config_overrides
        As for :func:`train_iter`.
    target, boundary_width, color, normalization
        As for :func:`train_iter` (every fold model records them).
    image_ids : list of str, optional
        A name per image: each fold model records its validation images' names
        (``training["validation_ids"]``), so out-of-fold predictions can be made later
        (``segkit tune --out-of-fold``). Default: the images' indices.
    progress : callable, optional
        Given every :class:`TrainReport` of every fold.
    cancel : Event or callable, optional
    """
    from dataclasses import replace

    config = replace(config or TrainConfig(), **config_overrides)
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    if image_ids is not None and len(image_ids) != len(images):
        raise ValueError(f"{len(image_ids)} image ids for {len(images)} images")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    provenance = {"target": target}
    if target == "boundary":
        from ..models.registry import get_architecture

        if sizes := _object_sizes(labels):  # of all the images: k-fold models share them
            provenance["object_diameter"] = sizes
        in_3d = get_architecture(arch).spatial_dims == 3
        labels = _boundary_targets(labels, boundary_width, volumetric=in_3d)
        num_classes = num_classes or 3
        class_names = class_names or ["background", "interior", "boundary"]
        provenance["boundary_width"] = boundary_width
    data = _prepare(
        images,
        labels,
        num_classes=num_classes,
        sparse=sparse,
        color=color,
        normalization=normalization,
    )
    groups = (
        np.array([src[0] for src in data.source])
        if len(images) >= k
        else np.arange(len(data.images))
    )
    unique = np.random.default_rng(config.seed).permutation(np.unique(groups))
    if len(unique) < k:
        raise ValueError(f"{len(unique)} images/planes cannot make {k} folds")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, reports = [], []
    for fold, val_groups in enumerate(np.array_split(unique, k)):
        is_val = np.isin(groups, val_groups)
        subset = [np.flatnonzero(~is_val), np.flatnonzero(is_val)]
        train_set, val_set = (data.subset(idx) for idx in subset)
        path = out_dir / f"fold{fold}.safetensors"
        val_images = sorted({data.source[i][0] for i in subset[1]})
        names = [str(image_ids[i]) if image_ids is not None else str(i) for i in val_images]
        steps = _train_one(
            train_set,
            val_set,
            out=path,
            arch=arch,
            arch_options=arch_options,
            class_names=class_names,
            config=config,
            sparse=sparse,
            cancel=cancel,
            resume=False,
            provenance={**provenance, "fold": fold, "k": k, "validation_ids": names},
            reading={"color": color, "normalization": normalization},
        )
        model_file = _drain(steps, progress)
        paths.append(str(path))
        reports.append(model_file.info.training["validation"])
    dice = np.array([r["dice"] for r in reports], dtype=float)
    iou = np.array([r["iou"] for r in reports], dtype=float)
    return {
        "models": paths,
        "folds": reports,
        "mean_dice": np.nanmean(dice, 0).tolist(),
        "std_dice": np.nanstd(dice, 0).tolist(),
        "mean_iou": np.nanmean(iou, 0).tolist(),
        "std_iou": np.nanstd(iou, 0).tolist(),
    }
