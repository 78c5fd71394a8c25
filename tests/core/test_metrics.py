from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_segkit.core.metrics import (
    adapted_rand_error,
    confusion_matrix,
    dice_per_class,
    iou_per_class,
    pixel_accuracy,
    segmentation_report,
)

TRUTH = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
PRED = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(TRUTH, PRED, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 3, 0], [1, 0, 1]])
    # Dice: class 0: 2*2/(3+3); class 1: 6/(3+4); class 2: 2/(2+1)
    np.testing.assert_allclose(dice_per_class(cm), [4 / 6, 6 / 7, 2 / 3])
    np.testing.assert_allclose(iou_per_class(cm), [2 / 4, 3 / 4, 1 / 2])
    assert pixel_accuracy(cm) == pytest.approx(6 / 8)


def test_absent_class_is_nan_and_left_out_of_means():
    report = segmentation_report(TRUTH, PRED, 4, class_names=["bg", "a", "b", "never"])
    assert np.isnan(report["dice"][3]) and np.isnan(report["iou"][3])
    assert report["mean_iou"] == pytest.approx(np.mean([2 / 4, 3 / 4, 1 / 2]))
    assert report["classes"][3] == "never"


def test_perfect_and_empty():
    r = segmentation_report(TRUTH, TRUTH, 3)
    assert r["dice"] == [1.0, 1.0, 1.0] and r["pixel_accuracy"] == 1.0
    empty = np.zeros((3, 3), int)
    r = segmentation_report(empty, empty, 2)
    assert r["dice"][0] == 1.0 and np.isnan(r["dice"][1]) and r["mean_dice"] == 1.0


def test_ignore_index_pixels_change_nothing():
    truth = TRUTH.copy()
    truth[0, 0] = 255
    pred = PRED.copy()
    pred[0, 0] = 2  # a wrong prediction where the truth is ignored
    cm = confusion_matrix(truth, pred, 3, ignore_index=255)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 3, 0], [1, 0, 1]])


def test_streaming_equals_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (6, 50, 70))
    pred = np.where(rng.random(truth.shape) < 0.8, truth, rng.integers(0, 4, truth.shape))
    expected = segmentation_report(truth, pred, 4)
    lazy_truth = da.from_array(truth, chunks=(1, 16, 32))
    z = zarr.create_array(
        str(tmp_path / "p.zarr"), shape=pred.shape, dtype="i8", chunks=(2, 25, 35)
    )
    z[:] = pred
    for p in (da.from_array(pred, chunks=(3, 50, 10)), z):
        got = segmentation_report(lazy_truth, p, 4)
        assert got["confusion_matrix"] == expected["confusion_matrix"]
        assert got["dice"] == pytest.approx(expected["dice"])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="prediction holds class id 3, outside 0..2"):
        confusion_matrix(TRUTH, PRED + 1, 3)
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(TRUTH, PRED[:, :3], 3)


def test_adapted_rand_error():
    truth = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    assert adapted_rand_error(truth, truth)["error"] == pytest.approx(0.0)
    merged = np.ones_like(truth)
    result = adapted_rand_error(truth, merged)
    # a merge is perfect one way (every true pair stays together) and poor the other
    assert result["error"] > 0.2
    assert sorted([result["precision"], result["recall"]])[1] == pytest.approx(1.0)
    assert min(result["precision"], result["recall"]) < 0.6
