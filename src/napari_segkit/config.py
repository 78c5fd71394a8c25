"""Defaults and choice lists, held once: the library, the CLI and the widgets read them here.

Free of numpy and torch, so ``segkit --help`` lists every choice at once. Defaults of
:class:`TrainConfig` and :class:`PredictDefaults` are readable without building one
(``TrainConfig.epochs``), which keeps even the augmentation defaults unloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .core.choices import (
    BALANCE_METHODS,
    BLEND_MODES,
    COLOR_MODES,
    DEFAULT_NORMALIZATION,
    LABEL_KINDS,
    NORMALIZATION_MODES,
)

#: test-time augmentation: none, the 4 flips, or the 8 symmetries of the square
TTA_MODES = (None, "flips", "d4")
#: what ``predict`` returns / writes
OUTPUTS = ("labels", "probabilities", "both")
#: storage of probabilities (uint8: round(p * 255))
PROB_DTYPES = ("float32", "float16", "uint8")
#: learning-rate schedules of the fit loop
SCHEDULES = ("onecycle", "cosine")
#: which epoch the model file keeps: the best by validation mean Dice, or the last
KEEP_CHOICES = ("best", "last")
#: how ``class_weights`` can be computed from the training labels
CLASS_WEIGHT_METHODS = ("inverse", "median")
#: ``device=`` names besides explicit torch devices such as "cuda:1"
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
#: Kaggle submissions: one row per image, per class or per object; RLE pixel order
SUBMISSION_LAYOUTS = ("image", "class", "object")
RLE_ORDERS = ("F", "C")
#: what ``segkit tune`` can maximise, and the grid it searches by default
TUNE_METRICS = ("dice", "map")
TUNE_THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
TUNE_MIN_AREAS = (0, 10, 25, 50, 100)
#: watershed seed thresholds ``segkit tune`` tries for boundary models (p(interior) >= s)
TUNE_SEED_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
#: training targets: the labels as given, or background / interior / boundary from instances
TARGETS = ("semantic", "boundary")
#: the architecture new models use unless told otherwise, and its options
DEFAULT_ARCH = "unet_original"
DEFAULT_ARCH_OPTIONS = {"unet_original": {"width": 16, "depth": 4}}


@dataclass
class PredictDefaults:
    """Prediction settings (the library's ``predict`` defaults, shown by the widget)."""

    #: tile side when neither the call nor the model file gives one
    tile_size: int = 256
    overlap: float = 0.25
    blend: str = "gaussian"
    batch_size: int = 4
    tta: str | None = None
    output: str = "labels"
    prob_dtype: str = "float32"
    device: str = "auto"
    #: Y/X side of the blocks written to zarr (a multiple of the output chunks): peak
    #: memory is about K x block^2 x 8 bytes, independent of the volume's size
    block_size: int = 2048
    #: Y/X side of zarr output chunks
    chunk_size: int = 512
    #: "auto": onnxruntime on the CPU when installed and the image is large enough to
    #: repay the one-time conversion (3072 x 3072 pixels; README "A faster CPU runtime"),
    #: else PyTorch
    runtime: str = "auto"


def _default_augmentation():
    from .core.augment import Augmentation  # numpy + scipy: only when a config is built

    return Augmentation()


@dataclass
class TrainConfig:
    """Training settings (the defaults live here once; the CLI and widgets read them)."""

    loss: str = "dice+ce"
    epochs: int = 20
    steps_per_epoch: int = 50
    batch_size: int = 4
    patch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 10
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    w0: float = 10.0
    sigma: float = 5.0
    squared_dice: bool = False
    #: further options of the loss, by the name its constructor gives them, e.g.
    #: ``{"per_image": True}`` for the Lovasz losses or ``{"ce_weight": 0.5}`` for the
    #: "+ce" ones (``ignore_index``, ``class_weights`` and ``squared`` have settings of
    #: their own)
    loss_options: dict = field(default_factory=dict)
    #: for ``weighted_ce`` (and optionally the CE part of ``dice+ce``): a list of floats,
    #: or "inverse" / "median" to compute them from the training labels
    class_weights: list | str | None = None
    #: learning-rate schedule: "onecycle" (warm-up then cosine decay) or "cosine" (decay only)
    schedule: str = "onecycle"
    #: fraction of the planes held out for validation by ``train()``
    val_fraction: float = 0.2
    #: the epoch the model file holds: "best" (validation mean Dice) or "last" (the end of
    #: the schedule, e.g. a fine-tuning stage whose first epoch scores best while the
    #: learning rate is still warming up; its validation scores are recorded all the same)
    keep: str = "best"
    augmentation: Augmentation = field(default_factory=_default_augmentation)  # noqa: F821


def parse_options(pairs: str | list[str] | None, what: str = "architecture") -> dict:
    """Options written as ``KEY=VALUE`` -> a dict of keyword arguments.

    The command line's repeatable ``--arch-option`` / ``--loss-option`` and the Train
    widget's option fields read their text here, so both accept the same things.

    Parameters
    ----------
    pairs : str or list of str or None
        ``["width=16", "residual=true"]``, or one string of pairs separated by commas
        or spaces (``"per_image=true, ce_weight=0.5"``). A value is read as JSON
        (``true``, ``0.5``, ``[1, 2]``), else kept as the word it is (``bilinear``).
    what : str
        What the options belong to, for the error message.

    Returns
    -------
    dict
        Option name -> value; empty for None or blank text.

    Raises
    ------
    ValueError
        A pair without ``=`` or without a name.

    Examples
    --------
    >>> parse_options("per_image=true, ce_weight=0.5", "loss")
    {'per_image': True, 'ce_weight': 0.5}
    >>> parse_options(["mode=bilinear", "sizes=[1, 2]"])
    {'mode': 'bilinear', 'sizes': [1, 2]}
    """
    import json
    import re

    if isinstance(pairs, str):
        # a new pair starts where a name and "=" follow a comma or a space, so JSON values
        # such as [1, 2] stay whole
        pairs = [p.rstrip(", ") for p in re.split(r"[,\s]+(?=[A-Za-z_]\w*=)", pairs.strip()) if p]
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{what} option {pair!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value.strip()  # a bare word such as bilinear
    return options


__all__ = [
    "BALANCE_METHODS",
    "BLEND_MODES",
    "CLASS_WEIGHT_METHODS",
    "COLOR_MODES",
    "DEVICE_CHOICES",
    "DEFAULT_ARCH",
    "DEFAULT_ARCH_OPTIONS",
    "DEFAULT_NORMALIZATION",
    "LABEL_KINDS",
    "NORMALIZATION_MODES",
    "OUTPUTS",
    "PROB_DTYPES",
    "RLE_ORDERS",
    "KEEP_CHOICES",
    "SCHEDULES",
    "SUBMISSION_LAYOUTS",
    "TARGETS",
    "TUNE_METRICS",
    "TUNE_MIN_AREAS",
    "TUNE_SEED_THRESHOLDS",
    "TUNE_THRESHOLDS",
    "TTA_MODES",
    "PredictDefaults",
    "TrainConfig",
    "parse_options",
]
