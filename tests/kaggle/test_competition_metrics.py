"""Competition metrics on hand-made examples."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segkit.kaggle.metrics import (
    average_precision,
    dice_score,
    instance_iou,
    iou_score,
    mean_dice,
)


def test_dice_and_iou_by_hand():
    truth = np.zeros((4, 4), bool)
    truth[:2] = True  # 8 pixels
    pred = np.zeros((4, 4), bool)
    pred[:1] = True  # 4 pixels, all inside
    assert dice_score(truth, pred) == pytest.approx(2 * 4 / 12)
    assert iou_score(truth, pred) == pytest.approx(4 / 8)
    empty = np.zeros((4, 4))
    assert dice_score(empty, empty) == 1.0 and iou_score(empty, empty) == 1.0
    assert dice_score(truth, empty) == 0.0 and dice_score(empty, pred) == 0.0
    assert mean_dice([truth, empty], [pred, empty]) == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(ValueError, match="shapes differ"):
        dice_score(truth, np.zeros((3, 3)))


def test_instance_iou_matrix():
    truth = np.array([[1, 1, 0, 2], [1, 1, 0, 2]])
    pred = np.array([[5, 0, 0, 7], [5, 0, 0, 7]])
    np.testing.assert_allclose(instance_iou(truth, pred), [[0.5, 0.0], [0.0, 1.0]])


def test_dsb_average_precision_by_hand():
    truth = np.zeros((10, 10), int)
    truth[0:4, 0:4] = 1  # 16 px
    truth[6:10, 6:10] = 2  # 16 px
    pred = np.zeros((10, 10), int)
    pred[0:4, 0:4] = 1  # perfect: IoU 1
    pred[6:10, 7:10] = 2  # 12 of 16: IoU 0.75
    pred[0, 9] = 3  # a false positive
    # thresholds 0.5..0.7 (5 of them): TP 2, FP 1, FN 0 -> 2/3; 0.75..0.95 (5): TP 1 -> 1/4
    # (IoU 0.75 is not > 0.75)
    assert average_precision(truth, pred) == pytest.approx((5 * 2 / 3 + 5 * 1 / 4) / 10)
    assert average_precision(truth, truth) == 1.0
    empty = np.zeros((10, 10), int)
    assert average_precision(empty, empty) == 1.0
    assert average_precision(truth, empty) == 0.0 and average_precision(empty, pred) == 0.0


def test_semantic_masks_are_split_into_objects():
    mask = np.zeros((6, 6), np.uint8)
    mask[0:2, 0:2] = 1
    mask[4:6, 4:6] = 1
    merged = mask.copy()
    merged[2:4, :] = 1  # joins both objects into one
    assert average_precision(mask, mask) == 1.0
    # one predicted object covering two true ones (IoU < 0.5 each): nothing matches
    assert average_precision(mask, merged) == 0.0
