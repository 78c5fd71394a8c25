"""Defaults, held once: the library, the CLI and the widgets read them from here.

Kept free of torch so that ``segkit --help`` starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .core.augment import Augmentation


@dataclass
class PredictDefaults:
    """Prediction settings shown by the widget (the library's own defaults are the same)."""

    overlap: float = 0.25
    blend: str = "gaussian"
    batch_size: int = 4


#: loss names (torch-free copy for the CLI's choices; napari_segkit.losses.LOSSES holds them)
LOSS_NAMES = ("dice", "ce", "weighted_ce", "border_ce", "dice+ce", "dice+border_ce")


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
    #: for ``weighted_ce`` (and optionally the CE part of ``dice+ce``): a list of floats,
    #: or "inverse" / "median" to compute them from the training labels
    class_weights: list | str | None = None
    #: learning-rate schedule: "onecycle" (warm-up then cosine decay) or "cosine" (decay only)
    schedule: str = "onecycle"
    augmentation: Augmentation = field(default_factory=Augmentation)
