"""Kaggle run-length encoding: round trips (hypothesis), known strings, malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_segkit.core.rle import RLEError, rle_decode, rle_encode

masks = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 1))
)


@settings(max_examples=200, deadline=None)
@given(mask=masks, order=st.sampled_from(["F", "C"]))
def test_round_trip(mask, order):
    rle = rle_encode(mask, order=order)
    np.testing.assert_array_equal(rle_decode(rle, mask.shape, order=order), mask)
    values = [int(v) for v in rle.split()]
    starts, lengths = values[0::2], values[1::2]
    assert all(n > 0 for n in lengths) and starts == sorted(starts)
    assert sum(lengths) == int(mask.sum())


def test_known_strings_and_orders():
    mask = np.array([[0, 1, 1], [0, 1, 0]], np.uint8)
    # column-major, 1-based: pixels 1=(0,0) 2=(1,0) 3=(0,1) 4=(1,1) 5=(0,2) 6=(1,2)
    assert rle_encode(mask) == "3 3"
    assert rle_encode(mask, order="C") == "2 2 5 1"
    np.testing.assert_array_equal(rle_decode("3 3", (2, 3)), mask)
    np.testing.assert_array_equal(rle_decode("2 2 5 1", (2, 3), order="C"), mask)
    assert rle_encode(np.zeros((4, 4))) == ""
    np.testing.assert_array_equal(rle_decode("", (4, 4)), np.zeros((4, 4)))
    np.testing.assert_array_equal(rle_decode(float("nan"), (2, 2)), np.zeros((2, 2)))
    np.testing.assert_array_equal(rle_decode("1 2 3 1", (2, 2)), np.array([[1, 1], [1, 0]]))


@pytest.mark.parametrize(
    ("rle", "match"),
    [
        ("1 2 3", "3 values"),
        ("1 a", "non-integer value 'a'"),
        ("1 2.5", "non-integer value '2.5'"),
        ("0 2", "1-based"),
        ("1 0", "lengths must be positive"),
        ("3 -1", "lengths must be positive"),
        ("5 1 1 1", "sorted"),
        ("1 3 2 2", "overlaps the previous run"),
        ("3 3", "past the 4 pixels of a 2 x 2 image"),
    ],
)
def test_malformed_strings_raise(rle, match):
    with pytest.raises(RLEError, match=match):
        rle_decode(rle, (2, 2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="order must be 'F'"):
        rle_encode(np.zeros((2, 2)), order="K")
    with pytest.raises(ValueError, match="2D mask"):
        rle_encode(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="positive sizes"):
        rle_decode("1 1", (0, 3))


def test_matches_the_dsb2018_masks(shared_data):
    """The real DSB2018 CSV (Kaggle convention) decodes to the real mask PNGs."""
    import csv

    from napari_segkit.core.io import read_stack

    root = shared_data / "dsb2018"
    with open(root / "stage1_train_labels_subset.csv") as f:
        rows = list(csv.reader(f))[1:]
    image_id = rows[0][0]
    mine = [r[1] for r in rows if r[0] == image_id]
    masks = sorted((root / "stage1_train" / image_id / "masks").glob("*.png"))
    shape = np.asarray(read_stack(masks[0]).data).shape[:2]
    decoded = {rle_encode(rle_decode(r, shape)) for r in mine}
    from_png = {rle_encode(np.asarray(read_stack(m).data) > 0) for m in masks}
    assert decoded == from_png and len(from_png) == len(masks)
