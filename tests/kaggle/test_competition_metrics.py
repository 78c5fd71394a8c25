"""Competition metrics on hand-made examples."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segkit.kaggle.metrics import (
    average_precision,
    dice_score,
    instance_errors,
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


def _every_kind_of_error():
    """Six true objects and seven predictions, one of each outcome (10 x 10 squares
    unless said): D found, E missed, A and B merged into one prediction, C split
    40 / 30 / 30, G predicted too small (a 6 x 6 square inside it), F spurious."""
    truth = np.zeros((40, 80), int)
    pred = np.zeros((40, 80), int)
    truth[0:10, 0:10] = 1  # D
    pred[0:10, 0:10] = 11  # exactly
    truth[0:10, 20:30] = 2  # E, not predicted
    truth[20:30, 0:10] = 3  # A
    truth[20:30, 10:20] = 4  # B, touching A
    pred[20:30, 0:20] = 12  # A and B as one
    truth[20:30, 30:40] = 5  # C in three pieces
    pred[20:30, 30:34] = 13
    pred[20:30, 34:37] = 14
    pred[20:30, 37:40] = 15
    truth[20:30, 50:60] = 6  # G
    pred[22:28, 52:58] = 16
    pred[0:10, 60:70] = 17  # F, on background
    return truth, pred


def test_instance_errors_name_every_kind_of_unmatched_object():
    truth, pred = _every_kind_of_error()
    errors = instance_errors(truth, pred)
    assert errors["true"] == {"matched": 1, "missed": 1, "merged": 2, "split": 1, "outline": 1}
    assert errors["predicted"] == {
        "matched": 1,
        "spurious": 1,
        "merger": 1,
        "fragment": 3,
        "outline": 1,
    }
    # the matches are the ones the DSB2018 score counts at IoU 0.5
    tp = errors["true"]["matched"]
    assert average_precision(truth, pred, thresholds=np.array([0.5])) == pytest.approx(
        tp / (6 + 7 - tp)
    )


def test_instance_errors_at_a_stricter_threshold_and_with_one_side_empty():
    truth, pred = _every_kind_of_error()
    # IoU of the too-small G prediction is 0.36; D's exact one stays matched at 0.95
    assert instance_errors(truth, pred, iou_threshold=0.95)["true"]["matched"] == 1
    shifted = np.roll(pred, 1, axis=1)  # D's prediction one pixel off: IoU 90 / 110
    at_08 = instance_errors(truth, shifted, iou_threshold=0.8)
    assert at_08["true"]["matched"] == 1 and at_08["true"]["outline"] == 1
    at_09 = instance_errors(truth, shifted, iou_threshold=0.9)
    assert at_09["true"]["matched"] == 0 and at_09["true"]["outline"] == 2
    assert at_09["predicted"]["outline"] == 2
    empty = np.zeros_like(truth)
    assert instance_errors(truth, empty)["true"]["missed"] == 6
    assert instance_errors(empty, pred)["predicted"]["spurious"] == 7
    assert instance_errors(empty, empty)["true"] == dict.fromkeys(
        ("matched", "missed", "merged", "split", "outline"), 0
    )
    with pytest.raises(ValueError, match="at least 0.5"):
        instance_errors(truth, pred, iou_threshold=0.3)


def test_error_counts_per_kind_add_up_and_records_without_them_are_refused():
    from napari_segkit.kaggle.evaluation import ImageScore, format_errors, score_instances

    truth, pred = _every_kind_of_error()
    records = [
        score_instances("a", "fluorescence", truth, pred),
        score_instances("b", "tissue", truth, truth),  # perfect
    ]
    lines = format_errors(records).splitlines()[2:]
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines}
    # all, found, missed, merged, split, outline | all, found, spurious, merger, fragment, outline
    assert rows["fluorescence"] == [6, 1, 1, 2, 1, 1, 7, 1, 1, 1, 3, 1]
    assert rows["tissue"] == [6, 6, 0, 0, 0, 0, 6, 6, 0, 0, 0, 0]
    assert rows["all"] == [12, 7, 1, 2, 1, 1, 13, 7, 1, 1, 3, 1]
    bare = ImageScore("c", "tissue", dice=1.0, ap=1.0, ap50=1.0, n_true=1, n_pred=1)
    with pytest.raises(ValueError, match="no error counts.*'c'"):
        format_errors([*records, bare])
