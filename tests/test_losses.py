from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from napari_segkit.losses import (
    DiceCELoss,
    LovaszCELoss,
    LovaszLoss,
    SoftDiceLoss,
    WeightedCrossEntropyLoss,
    get_loss,
)


def _probs_to_logits(p):
    return torch.log(p.clamp_min(1e-12))


def test_dice_hand_computed_multiclass():
    # 1 image, 2 classes, 4 pixels; probabilities given directly
    probs = torch.tensor([[[[0.9, 0.2, 0.5, 0.0]], [[0.1, 0.8, 0.5, 1.0]]]])  # (1, 2, 1, 4)
    target = torch.tensor([[[0, 1, 1, 1]]])
    # class 0: I = 0.9, sum p = 1.6, sum t = 1 -> 1.8 / 2.6 ; class 1: I = 2.3, sum p = 2.4, t = 3 -> 4.6/5.4
    expected = 1 - (1.8 / 2.6 + 4.6 / 5.4) / 2
    loss = SoftDiceLoss(smooth=0.0, from_logits=False)(probs, target)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # squared denominator: class 0: 1.8 / (0.81+0.04+0.25 + 1); class 1: 4.6 / (0.01+0.64+0.25+1 + 3)
    expected_sq = 1 - (1.8 / 2.1 + 4.6 / 4.9) / 2
    loss_sq = SoftDiceLoss(smooth=0.0, squared=True, from_logits=False)(probs, target)
    assert loss_sq.item() == pytest.approx(expected_sq, abs=1e-6)
    # class weights 1:3
    weighted = SoftDiceLoss(smooth=0.0, class_weights=[1, 3], from_logits=False)(probs, target)
    assert weighted.item() == pytest.approx(1 - (1.8 / 2.6 + 3 * 4.6 / 5.4) / 4, abs=1e-6)


def test_dice_is_zero_for_a_perfect_prediction_and_handles_empty_classes():
    target = torch.tensor([[[0, 1], [1, 0]]])
    onehot = F.one_hot(target, 3).movedim(-1, 1).float()  # class 2 is empty
    for squared in (False, True):
        loss = SoftDiceLoss(squared=squared, from_logits=False)(onehot, target)
        assert loss.item() == pytest.approx(0.0, abs=1e-7)
    # logits: large margins give (numerically) zero too, and never nan with smooth=0
    logits = onehot * 40 - 20
    assert SoftDiceLoss()(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    loss = SoftDiceLoss(smooth=0.0)(logits, target)
    assert torch.isfinite(loss)


def test_dice_binary_from_logits():
    target = torch.tensor([[[1, 0, 1, 1]]])
    logits = torch.tensor([[[[0.0, 0.0, 0.0, 0.0]]]])  # p = 0.5 everywhere
    # I = 1.5, sum p = 2, sum t = 3, smooth 1 -> (3 + 1) / (5 + 1)
    assert SoftDiceLoss()(logits, target).item() == pytest.approx(1 - 4 / 6)


def test_cross_entropy_matches_torch_with_class_weights_and_ignore_index():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6)
    target = torch.randint(0, 3, (2, 5, 6))
    target[0, :2] = 255
    weights = [0.2, 1.0, 3.0]
    ours = WeightedCrossEntropyLoss(class_weights=weights, ignore_index=255)(logits, target)
    ref = F.cross_entropy(logits, target, weight=torch.tensor(weights), ignore_index=255)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)


def test_cross_entropy_hand_computed_with_weight_map():
    # two pixels, logits favour class 0 equally; pixel 2 is class 1 and weighted 3x
    logits = torch.tensor([[[[2.0, 2.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    wmap = torch.tensor([[[1.0, 3.0]]])
    ce0 = math.log(1 + math.exp(-2))
    ce1 = math.log(1 + math.exp(2))
    loss = WeightedCrossEntropyLoss()(logits, target, wmap)
    assert loss.item() == pytest.approx((ce0 + 3 * ce1) / 4, rel=1e-6)


def test_binary_cross_entropy():
    logits = torch.tensor([[[[0.0, 1.0]]]])
    target = torch.tensor([[[1, 0]]])
    expected = (math.log(2) + math.log(1 + math.e)) / 2
    assert WeightedCrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "loss",
    [
        SoftDiceLoss(ignore_index=0),
        SoftDiceLoss(squared=True, ignore_index=0),
        WeightedCrossEntropyLoss(ignore_index=0),
        DiceCELoss(ignore_index=0),
        LovaszLoss(ignore_index=0),
        LovaszCELoss(ignore_index=0),
    ],
)
def test_ignored_pixels_change_nothing_and_get_no_gradient(loss):
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 6, 6, requires_grad=True)
    target = torch.randint(1, 3, (1, 6, 6))
    target[0, :3] = 0  # unlabeled (sparse annotation)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value)
    assert torch.all(logits.grad[:, :, :3] == 0)
    assert logits.grad[:, :, 3:].abs().sum() > 0
    # changing the logits of ignored pixels does not change the loss
    other = logits.detach().clone()
    other[:, :, :3] = torch.randn(1, 3, 3, 6) * 10
    assert loss(other, target).item() == pytest.approx(value.item(), rel=1e-6)


def test_gradients_finite_for_extreme_logits():
    logits = torch.tensor([[[[1e4, -1e4]], [[-1e4, 1e4]]]], requires_grad=True)
    target = torch.tensor([[[1, 1]]])
    for loss in (
        SoftDiceLoss(),
        WeightedCrossEntropyLoss(),
        DiceCELoss(squared=True),
        LovaszLoss(),
        LovaszCELoss(),
    ):
        logits.grad = None
        loss(logits, target).backward()
        assert torch.isfinite(logits.grad).all()


def test_dice_ce_is_the_weighted_sum():
    torch.manual_seed(2)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    combo = DiceCELoss(dice_weight=0.3, ce_weight=2.0)(logits, target)
    parts = 0.3 * SoftDiceLoss()(logits, target) + 2.0 * WeightedCrossEntropyLoss()(logits, target)
    assert combo.item() == pytest.approx(parts.item(), rel=1e-6)


@pytest.mark.parametrize("shape", [(2, 9, 11), (2, 5, 6, 7)])
def test_lovasz_of_a_confident_prediction_is_one_minus_the_mean_iou(shape):
    """On hard (one-hot) predictions the Lovasz-softmax extension equals the Jaccard loss:
    1 - IoU per class, averaged over the classes present in the target; 2D and 3D."""
    torch.manual_seed(3)
    target = torch.randint(0, 3, shape)
    target[target == 2] = 1  # class 2 absent from the target: left out of the mean
    pred = torch.where(torch.rand(shape) < 0.3, torch.randint(0, 3, shape), target)
    logits = 50.0 * F.one_hot(pred, 3).movedim(-1, 1).float()
    ious = [
        ((pred == c) & (target == c)).sum() / ((pred == c) | (target == c)).sum() for c in (0, 1)
    ]
    expected = 1 - sum(float(iou) for iou in ious) / 2
    assert 0.1 < expected < 0.6
    assert LovaszLoss()(logits, target).item() == pytest.approx(expected, abs=1e-5)
    # binary (K = 1): the Lovasz hinge, zero for a confident right answer
    fg = (target == 1).long()
    assert LovaszLoss()(40.0 * (2 * fg[:, None].float() - 1), fg).item() == pytest.approx(0)


def test_lovasz_ce_is_the_weighted_sum_with_the_border_weights():
    torch.manual_seed(4)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    weights = torch.rand(2, 8, 8) * 5
    combo = LovaszCELoss(lovasz_weight=0.5, ce_weight=2.0)(logits, target, weights)
    parts = 0.5 * LovaszLoss()(logits, target) + 2.0 * WeightedCrossEntropyLoss()(
        logits, target, weights
    )
    assert combo.item() == pytest.approx(parts.item(), rel=1e-6)
    assert isinstance(get_loss("lovasz+border_ce"), LovaszCELoss)
    assert isinstance(get_loss("lovasz"), LovaszLoss)
    with pytest.raises(ValueError, match="class 5 but the logits have 2 classes"):
        LovaszLoss()(torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2), 5))
    with pytest.raises(ValueError, match="do not match"):
        LovaszLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))


def test_lovasz_per_image_averages_the_images_instead_of_pooling_them():
    """per_image=True: each image's own IoU surrogate, averaged; the pooled loss of a batch
    where one image holds a tiny object is dominated by the large one."""
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[0, 2:14, 2:14] = 1  # a large object, found
    target[1, 7:9, 7:9] = 1  # a tiny one, missed
    logits = 30.0 * F.one_hot(target, 2).movedim(-1, 1).float()
    logits[1, :, 7:9, 7:9] = torch.tensor([30.0, 0.0])[:, None, None]
    per_image = LovaszLoss(per_image=True)(logits, target)
    each = [LovaszLoss()(logits[i : i + 1], target[i : i + 1]) for i in (0, 1)]
    assert per_image.item() == pytest.approx((each[0] + each[1]).item() / 2, abs=1e-6)
    # the missed object is the whole foreground of image 1 (IoU 0) but 4 of 148 pixels pooled
    assert per_image.item() > 0.25 > LovaszLoss()(logits, target).item()
    combo = LovaszCELoss(per_image=True, ce_weight=0.0)(logits, target)
    assert combo.item() == pytest.approx(per_image.item(), abs=1e-6)
    assert get_loss("lovasz+border_ce", per_image=True).term.per_image


def test_losses_by_name_and_errors():
    assert isinstance(get_loss("dice", squared=True), SoftDiceLoss)
    assert isinstance(get_loss("dice+ce"), DiceCELoss)
    assert isinstance(get_loss("border_ce"), WeightedCrossEntropyLoss)
    with pytest.raises(ValueError, match="needs class_weights"):
        get_loss("weighted_ce")
    with pytest.raises(ValueError, match=r"Unknown loss 'focal'.*dice\+ce"):
        get_loss("focal")
    with pytest.raises(ValueError, match="do not match"):
        SoftDiceLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="class 5 but the logits have 2 classes"):
        WeightedCrossEntropyLoss()(torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2), 5))
