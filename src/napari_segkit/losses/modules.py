"""Losses for semantic segmentation, from logits, with ignore_index everywhere.

* :class:`SoftDiceLoss`: per-class soft Dice, plain or squared denominator
  (both variants of the reference text), smoothing, class weights, ignore_index,
  binary (sigmoid) and multi-class (softmax). SMP's ``DiceLoss`` has no squared
  denominator and no class weights, so it is written here.
* :class:`WeightedCrossEntropyLoss`: cross-entropy with class weights and/or a
  per-pixel weight map (the U-Net border weights). For class weights alone it
  equals ``torch.nn.functional.cross_entropy(weight=..., ignore_index=...)``;
  the weight map is one more factor in the same weighted mean.
* :class:`DiceCELoss`: a weighted sum of both.
* :class:`LovaszLoss`: the Lovasz-softmax loss (Berman et al. 2018), a convex surrogate of
  the per-class IoU (Jaccard) -- the score that instance matching thresholds -- taken from
  segmentation-models-pytorch; :class:`LovaszCELoss` adds the (border-)weighted
  cross-entropy, as Kaggle's nuclei solutions paired them.

The losses by name (``get_loss``, the CLI's and the widgets' choices, the fit loop's
options) come from the one table in :mod:`napari_segkit.losses.table`.

Shapes (everywhere): logits ``(N, K, *spatial)``; target ``(N, *spatial)`` of
class ids (long); weight map ``(N, *spatial)`` float. ``K == 1`` means binary:
one sigmoid channel, target 0/1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim < 3 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"logits (N, K, *spatial) and target (N, *spatial) do not match: "
            f"{tuple(logits.shape)} vs {tuple(target.shape)}"
        )


def _valid_mask(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


def _one_hot(target: torch.Tensor, valid: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, *spatial) ids -> (N, K, *spatial) float one-hot, zero at invalid pixels."""
    safe = torch.where(valid, target, torch.zeros_like(target)).long()
    if num_classes == 1:
        onehot = safe.unsqueeze(1).float()
    else:
        if safe.numel() and int(safe.max()) >= num_classes:
            raise ValueError(
                f"target holds class {int(safe.max())} but the logits have {num_classes} classes"
            )
        onehot = F.one_hot(safe, num_classes).movedim(-1, 1).float()
    return onehot * valid.unsqueeze(1)


class SoftDiceLoss(nn.Module):
    """Soft Dice loss, per class then averaged (optionally weighted).

    ``dice_c = (2 * sum(p_c * t_c) + smooth) / (sum(p_c^a) + sum(t_c^a) + smooth)``
    with ``a = 2`` for ``squared=True`` (Milletari et al. 2016) else ``a = 1``;
    sums run over the batch and all pixels; loss = ``1 - weighted mean_c dice_c``.
    Binary logits (K = 1) score the foreground channel only.

    Parameters
    ----------
    squared : bool
        Squared denominator.
    smooth : float
        Added to numerator and denominator: an empty class predicted empty scores 1,
        and nothing divides by zero.
    class_weights : sequence of float, optional
        Weight of each class in the mean.
    ignore_index : int, optional
        Target value whose pixels are left out entirely.
    include_background : bool
        Count class 0 in the mean (multi-class only).
    from_logits : bool
        Apply softmax / sigmoid first (default). False: inputs are probabilities.

    Shape
    -----
    - logits: ``(N, K, *spatial)``; target: ``(N, *spatial)`` -> scalar
    """

    def __init__(
        self,
        *,
        squared: bool = False,
        smooth: float = 1.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        include_background: bool = True,
        from_logits: bool = True,
    ):
        super().__init__()
        self.squared, self.smooth = squared, float(smooth)
        self.ignore_index, self.include_background = ignore_index, include_background
        self.from_logits = from_logits
        self.register_buffer(
            "class_weights",
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32),
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        k = logits.shape[1]
        if self.from_logits:
            probs = torch.sigmoid(logits) if k == 1 else torch.softmax(logits, dim=1)
        else:
            probs = logits
        valid = _valid_mask(target, self.ignore_index)
        onehot = _one_hot(target, valid, k)
        probs = probs * valid.unsqueeze(1)
        dims = (0, *range(2, probs.ndim))
        intersection = (probs * onehot).sum(dims)
        power = 2 if self.squared else 1
        denominator = (probs**power).sum(dims) + (onehot**power).sum(dims)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth).clamp_min(1e-7)
        weights = (
            torch.ones_like(dice) if self.class_weights is None else self.class_weights.to(dice)
        )
        if weights.numel() != dice.numel():
            raise ValueError(f"{weights.numel()} class weights for {k} output channels")
        if not self.include_background and k > 1:
            dice, weights = dice[1:], weights[1:]
        return 1 - (dice * weights).sum() / weights.sum().clamp_min(1e-7)


class WeightedCrossEntropyLoss(nn.Module):
    """Cross-entropy with class weights and/or a per-pixel weight map.

    ``loss = sum_x w(x) * ce(x) / sum_x w(x)`` over non-ignored pixels, with
    ``w(x) = class_weights[target(x)] * weight_map(x)`` (each factor 1 when absent).
    With class weights only this is exactly ``F.cross_entropy(weight=...,
    ignore_index=...)``. Binary logits (K = 1) use binary cross-entropy.

    Parameters
    ----------
    class_weights : sequence of float, optional
    ignore_index : int, optional

    Shape
    -----
    - logits ``(N, K, *spatial)``, target ``(N, *spatial)``, weight_map ``(N, *spatial)``
      -> scalar
    """

    def __init__(
        self, *, class_weights: Sequence[float] | None = None, ignore_index: int | None = None
    ):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer(
            "class_weights",
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32),
        )

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check(logits, target)
        valid = _valid_mask(target, self.ignore_index)
        safe = torch.where(valid, target, torch.zeros_like(target)).long()
        if logits.shape[1] == 1:
            ce = F.binary_cross_entropy_with_logits(
                logits[:, 0], safe.to(logits.dtype), reduction="none"
            )
        else:
            if safe.numel() and int(safe.max()) >= logits.shape[1]:
                raise ValueError(
                    f"target holds class {int(safe.max())} but the logits have "
                    f"{logits.shape[1]} classes"
                )
            ce = F.cross_entropy(logits, safe, reduction="none")
        weight = valid.to(ce.dtype)
        if self.class_weights is not None:
            weight = weight * self.class_weights.to(ce)[safe]
        if weight_map is not None:
            if weight_map.shape != target.shape:
                raise ValueError(
                    f"weight_map {tuple(weight_map.shape)} must have the target's "
                    f"shape {tuple(target.shape)}"
                )
            weight = weight * weight_map.to(ce)
        return (weight * ce).sum() / weight.sum().clamp_min(1e-7)


class _PlusCrossEntropy(nn.Module):
    """``term_weight * term + ce_weight * WeightedCrossEntropy``: a region loss (Dice,
    Lovasz) next to the cross-entropy, which alone receives the ``weight_map``."""

    def __init__(self, term: nn.Module, term_weight, ce_weight, class_weights, ignore_index):
        super().__init__()
        self.term, self.term_weight, self.ce_weight = term, float(term_weight), float(ce_weight)
        self.ce = WeightedCrossEntropyLoss(class_weights=class_weights, ignore_index=ignore_index)

    def forward(self, logits, target, weight_map=None):
        return self.term_weight * self.term(logits, target) + self.ce_weight * self.ce(
            logits, target, weight_map
        )


class DiceCELoss(_PlusCrossEntropy):
    """``dice_weight * SoftDice + ce_weight * WeightedCrossEntropy`` (same ignore_index).

    Shape
    -----
    as :class:`WeightedCrossEntropyLoss`; ``weight_map`` goes to the cross-entropy.
    """

    def __init__(
        self,
        *,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        squared: bool = False,
        smooth: float = 1.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
    ):
        dice = SoftDiceLoss(squared=squared, smooth=smooth, ignore_index=ignore_index)
        super().__init__(dice, dice_weight, ce_weight, class_weights, ignore_index)


class LovaszLoss(nn.Module):
    """Lovasz-softmax loss (multi-class) or Lovasz hinge (binary, K = 1).

    A thin shell over ``segmentation_models_pytorch.losses.LovaszLoss`` (Berman et al.'s
    reference code, kept there), that takes this module's shapes and ``ignore_index`` and
    checks them like the other losses.

    Parameters
    ----------
    ignore_index : int, optional
    per_image : bool
        False: one IoU surrogate per class over the whole batch (the pixels of all its
        images pooled). True: one per image, averaged over the batch -- each image
        (training patch) counts equally, however few of its pixels a class holds, as in
        scores averaged over images (Berman et al.'s per-image variant).

    Shape
    -----
    - logits ``(N, K, *spatial)``; target ``(N, *spatial)`` -> scalar
    """

    def __init__(self, *, ignore_index: int | None = None, per_image: bool = False):
        super().__init__()
        if not isinstance(per_image, bool):  # "no" from a command line is not False
            raise ValueError(f"per_image must be true or false, got {per_image!r}")
        self.ignore_index = ignore_index
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from segmentation_models_pytorch.losses import LovaszLoss as SMPLovaszLoss

        _check(logits, target)
        k = logits.shape[1]
        valid = _valid_mask(target, self.ignore_index)
        if k > 1 and target[valid].numel() and int(target[valid].max()) >= k:
            raise ValueError(
                f"target holds class {int(target[valid].max())} but the logits have {k} classes"
            )
        if not valid.any():  # nothing to score (SMP's sum over no pixels is not a tensor)
            return logits.sum() * 0.0
        mode = "binary" if k == 1 else "multiclass"
        loss = SMPLovaszLoss(mode, per_image=self.per_image, ignore_index=self.ignore_index)
        return loss(logits[:, 0] if k == 1 else logits, target.long())


class LovaszCELoss(_PlusCrossEntropy):
    """``lovasz_weight * Lovasz + ce_weight * WeightedCrossEntropy`` (same ignore_index).

    Shape
    -----
    as :class:`WeightedCrossEntropyLoss`; ``weight_map`` goes to the cross-entropy.
    ``per_image`` as in :class:`LovaszLoss`.
    """

    def __init__(
        self,
        *,
        lovasz_weight: float = 1.0,
        ce_weight: float = 1.0,
        per_image: bool = False,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
    ):
        lovasz = LovaszLoss(ignore_index=ignore_index, per_image=per_image)
        super().__init__(lovasz, lovasz_weight, ce_weight, class_weights, ignore_index)


__all__ = ["DiceCELoss", "LovaszCELoss", "LovaszLoss", "SoftDiceLoss", "WeightedCrossEntropyLoss"]
