"""Defaults, held once: the library, the CLI and the widgets read them from here.

Kept free of torch so that ``segkit --help`` starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .core.augment import Augmentation


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
    class_weights: list | None = None
    augmentation: Augmentation = field(default_factory=Augmentation)
