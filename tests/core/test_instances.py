"""Three-class targets and instances from predictions, on hand-made images."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_segkit.core.instances import boundary_target, instances_from_prediction


def _two_touching_squares():
    labels = np.zeros((12, 20), np.int32)
    labels[2:10, 2:10] = 1
    labels[2:10, 10:18] = 2  # touches the first along a column
    return labels


def test_boundary_target_of_two_touching_squares():
    target = boundary_target(_two_touching_squares())
    expected = np.zeros((12, 20), np.uint8)
    expected[2:10, 2:18] = 2  # every object pixel next to background or the other object
    expected[3:9, 3:9] = 1
    expected[3:9, 11:17] = 1
    np.testing.assert_array_equal(target, expected)
    wide = boundary_target(_two_touching_squares(), width=2)
    assert (wide == 1).sum() == 2 * 4 * 4  # interiors shrink by one more pixel per side


def _predicted(target):
    """Confident probabilities of a three-class target."""
    probs = np.full((3, *target.shape), 0.05, np.float32)
    for c in range(3):
        probs[c][target == c] = 0.9
    return probs / probs.sum(0)


def test_watershed_splits_the_touching_squares_and_components_do_not():
    probs = _predicted(boundary_target(_two_touching_squares()))
    split = instances_from_prediction(probs)
    assert split.max() == 2
    np.testing.assert_array_equal(split > 0, _two_touching_squares() > 0)
    assert len(np.unique(split[2:10, 2:10])) == 1 and len(np.unique(split[2:10, 10:18])) == 1
    # a two-class model (background / object) cannot split them: one component
    two_class = np.stack([probs[0], probs[1] + probs[2]])
    assert instances_from_prediction(two_class).max() == 1


def test_min_size_and_holes():
    target = boundary_target(_two_touching_squares())
    probs = _predicted(target)
    probs[:, 0, 0] = [0.0, 1.0, 0.0]  # a one-pixel speck
    probs[:, 5, 5] = [1.0, 0.0, 0.0]  # a hole inside the first square
    result = instances_from_prediction(probs, min_size=4)
    assert result[0, 0] == 0 and result[5, 5] != 0 and result.max() == 2


def test_dask_stacks_are_processed_plane_by_plane_without_seams():
    plane = _predicted(boundary_target(_two_touching_squares()))
    stack = np.stack([plane, plane[:, ::-1, :]], axis=1)  # (K, Z, Y, X)
    lazy = da.from_array(stack, chunks=(3, 1, 6, 7))  # chunks cut through both squares
    result = instances_from_prediction(lazy)
    np.testing.assert_array_equal(result, instances_from_prediction(stack))
    assert result.shape == (2, 12, 20) and result[0].max() == 2 and result[1].max() == 2


def test_bad_inputs():
    with pytest.raises(ValueError, match="integer"):
        boundary_target(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(K, Y, X\)"):
        instances_from_prediction(np.zeros((4, 4)))


def test_a_foreground_region_without_a_seed_is_still_an_object():
    target = boundary_target(_two_touching_squares())
    probs = _predicted(target)
    probs[:, 0:2, 0:2] = np.array([0.1, 0.5, 0.4])[:, None, None]  # faint: below the seed
    result = instances_from_prediction(probs, seed_threshold=0.7)
    assert result.max() == 3 and len(np.unique(result[0:2, 0:2])) == 1 and result[0, 0] > 0


def test_volumetric_instances_are_3d_objects():
    """volumetric=True labels (and floods) the stack in 3D: an object crossing planes keeps
    one id and objects apart in z get their own; plane by plane, ids restart per plane."""
    plane = _predicted(boundary_target(_two_touching_squares()))
    empty = _predicted(np.zeros((12, 20), np.uint8))
    stack = np.stack([plane, plane, empty, plane], axis=1)  # (K, Z, Y, X): 2 squares x 2 runs
    objects = instances_from_prediction(stack, volumetric=True)
    assert objects.shape == (4, 12, 20) and objects.max() == 4  # split, and apart in z
    np.testing.assert_array_equal(objects[0], objects[1])  # one id through both planes
    assert set(np.unique(objects[3])) - {0} == {3, 4}
    assert not set(np.unique(objects[0])) & set(np.unique(objects[3])) - {0}
    per_plane = instances_from_prediction(stack)
    assert [int(p.max()) for p in per_plane] == [2, 2, 0, 2]
    # connected components in 3D too: the squares merge, the two runs stay apart
    two_class = np.stack([stack[0], stack[1] + stack[2]])
    assert instances_from_prediction(two_class, volumetric=True).max() == 2
    # a dask stack is read into memory for it, to the same result
    lazy = da.from_array(stack, chunks=(3, 1, 6, 7))
    np.testing.assert_array_equal(instances_from_prediction(lazy, volumetric=True), objects)


def test_volumetric_boundaries_part_objects_stacked_in_z():
    """Two boxes, one on top of the other: plane by plane no boundary lies between them,
    so a 3D watershed of that target merges them; the volumetric target draws their
    contact faces as boundary, and the 3D watershed splits them back."""
    stacked = np.zeros((10, 8, 8), np.int32)
    stacked[1:5, 1:7, 1:7] = 1
    stacked[5:9, 1:7, 1:7] = 2  # touches the first along z
    per_plane = boundary_target(stacked)
    volumetric = boundary_target(stacked, volumetric=True)
    assert (per_plane[4:6, 2:6, 2:6] == 1).all()  # interior straight through the contact
    assert (volumetric[4:6] == 2 * (stacked[4:6] > 0)).all()  # the contact faces
    assert (volumetric[2:4, 2:6, 2:6] == 1).all() and (volumetric == 1).sum() == 2 * 2 * 16
    merged = instances_from_prediction(_predicted(per_plane), volumetric=True)
    split = instances_from_prediction(_predicted(volumetric), volumetric=True)
    assert merged.max() == 1 and split.max() == 2
    np.testing.assert_array_equal(split > 0, stacked > 0)
    assert len(np.unique(split[1:5][stacked[1:5] > 0])) == 1  # each box one object
