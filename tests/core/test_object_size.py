"""Object size: diameters, the rescale rule, and predicting at the trained scale."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from napari_segkit.core.object_size import (
    SCALE_LIMITS,
    diameter_range,
    median_diameter,
    predict_at_object_size,
    rescale_factor,
    rescale_planes,
    resize_probabilities,
)


def disks(shape, radius, centres) -> np.ndarray:
    """Instance labels: one filled disk per centre."""
    labels = np.zeros(shape, np.int32)
    for i, centre in enumerate(centres, start=1):
        labels[disk(centre, radius, shape=shape)] = i
    return labels


def test_median_diameter_is_the_equivalent_diameter_of_the_median_area():
    labels = np.zeros((40, 40), np.int32)
    labels[0:10, 0:10] = 1  # area 100
    labels[20:24, 20:24] = 2  # 16
    labels[30:40, 30:39] = 3  # 90
    assert median_diameter(labels) == pytest.approx(2 * np.sqrt(90 / np.pi))
    # skipped ids (no pixels) are not objects of area 0
    assert median_diameter(np.where(labels == 2, 7, labels)) == pytest.approx(
        2 * np.sqrt(90 / np.pi)
    )
    assert median_diameter(np.zeros((8, 8), np.uint16)) is None
    # a stack's planes are measured one by one: id 1 in two planes is two objects
    stack = np.stack([labels == 1, labels == 1, labels == 2]).astype(np.uint8)
    assert median_diameter(stack) == pytest.approx(2 * np.sqrt(100 / np.pi))
    with pytest.raises(ValueError, match="integer labels"):
        median_diameter(labels.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        median_diameter(np.zeros((2, 2, 2, 2), np.int32))


def test_diameter_range_is_the_quartiles_of_per_image_medians():
    images = [disks((64, 64), r, [(20, 20), (45, 45)]) for r in (3, 5, 7, 9, 11)]
    medians = [median_diameter(i) for i in images]
    sizes = diameter_range([*images, np.zeros((16, 16), np.int32)])  # no object: skipped
    assert sizes["images"] == 5
    assert sizes["median"] == round(medians[2], 1)
    assert sizes["low"] == round(float(np.percentile(medians, 25)), 1)
    assert sizes["high"] == round(float(np.percentile(medians, 75)), 1)
    assert diameter_range([np.zeros((8, 8), np.int32)]) is None


def test_rescale_factor_moves_only_sizes_outside_the_range_to_its_nearest_edge():
    assert rescale_factor(13, 13, 31) == 1.0 == rescale_factor(31, 13, 31)
    assert rescale_factor(20, 13, 31) == 1.0
    assert rescale_factor(6.5, 13, 31) == pytest.approx(2.0)
    assert rescale_factor(62, 13, 31) == pytest.approx(0.5)
    assert rescale_factor(1, 13, 31) == SCALE_LIMITS[1]  # 13x is beyond trust: 3x
    assert rescale_factor(500, 13, 31) == SCALE_LIMITS[0]
    with pytest.raises(ValueError, match="positive"):
        rescale_factor(0, 13, 31)
    with pytest.raises(ValueError, match="low <= high"):
        rescale_factor(10, 31, 13)


def test_rescale_planes_changes_only_y_and_x():
    image = np.random.default_rng(0).random((3, 10, 20, 2)).astype(np.float32)  # ZYXC
    out = rescale_planes(image, 1.5, spatial_axes=(1, 2))
    assert out.shape == (3, 15, 30, 2) and out.dtype == np.float32
    assert rescale_planes(image[0], 0.5, spatial_axes=(0, 1)).shape == (5, 10, 2)
    # channel-first input (C, Y, X)
    assert rescale_planes(np.moveaxis(image[0], -1, 0), 2, spatial_axes=(1, 2)).shape == (
        2,
        20,
        40,
    )
    # a constant image stays constant (no intensity change from the resampling)
    assert np.allclose(rescale_planes(np.full((8, 8), 7.0), 0.5, spatial_axes=(0, 1)), 7.0)


def test_resize_probabilities_keeps_them_probabilities():
    rng = np.random.default_rng(1)
    p = rng.random((3, 2, 30, 40)).astype(np.float32)
    p /= p.sum(0)
    out = resize_probabilities(p, (2, 15, 20))
    assert out.shape == (3, 2, 15, 20) and out.dtype == np.float32
    assert np.allclose(out.sum(0), 1.0, atol=1e-5)
    assert np.array_equal(resize_probabilities(p, p.shape[1:]), p)  # nothing to resize


def threshold_model(calls):
    """A predictor whose output is known at every scale: foreground where the image is
    bright, as (background, foreground) probabilities; it records the shapes it is given."""

    def probabilities_of(image):
        calls.append(image.shape)
        fg = (np.asarray(image) > 0.5).astype(np.float32)
        return np.stack([1 - fg, fg])

    return probabilities_of


def instances_of(probabilities):
    return ndi.label(probabilities[1] > 0.5)[0]


def test_small_objects_are_magnified_to_the_trained_size_and_come_back_at_their_own():
    truth = disks((60, 80), 4, [(15, 15), (15, 50), (40, 30), (45, 65)])  # ~8 px across
    image = (truth > 0).astype(np.float32)
    calls = []
    probabilities, scale, diameter = predict_at_object_size(
        threshold_model(calls),
        image,
        spatial_axes=(0, 1),
        trained=(16.0, 32.0),
        object_diameter="auto",
        instances_of=instances_of,
    )
    assert diameter == pytest.approx(median_diameter(truth))
    assert scale == pytest.approx(16.0 / diameter)  # to the range's nearest edge
    # first pass as it is, then the magnified image; the result at the input's size
    assert calls == [(60, 80), (round(60 * scale), round(80 * scale))]
    assert probabilities.shape == (2, 60, 80)
    found = probabilities[1] > 0.5
    iou = (found & (truth > 0)).sum() / (found | (truth > 0)).sum()
    assert iou > 0.9


def test_objects_inside_the_trained_range_are_predicted_once_as_they_are():
    truth = disks((64, 64), 10, [(20, 20), (44, 44)])  # ~20 px across
    calls = []
    probabilities, scale, diameter = predict_at_object_size(
        threshold_model(calls),
        (truth > 0).astype(np.float32),
        spatial_axes=(0, 1),
        trained=(13.4, 31.6),
        instances_of=instances_of,
    )
    assert calls == [(64, 64)] and scale == 1.0 and 19 < diameter < 21
    assert np.array_equal(probabilities[1] > 0.5, truth > 0)
    # an image without objects is left as it is too
    calls.clear()
    _, scale, diameter = predict_at_object_size(
        threshold_model(calls),
        np.zeros((32, 32), np.float32),
        spatial_axes=(0, 1),
        trained=(13.4, 31.6),
        instances_of=instances_of,
    )
    assert calls == [(32, 32)] and scale == 1.0 and diameter is None


def test_a_given_diameter_needs_no_first_pass_and_a_stack_keeps_its_planes():
    truth = np.stack([disks((40, 40), 12, [(20, 20)])] * 2)  # (Z, Y, X), 24 px across
    calls = []
    probabilities, scale, diameter = predict_at_object_size(
        threshold_model(calls),
        (truth > 0).astype(np.float32),
        spatial_axes=(1, 2),
        trained=(6.0, 12.0),
        object_diameter=24,
    )
    assert diameter == 24 and scale == pytest.approx(0.5)
    assert calls == [(2, 20, 20)]  # one prediction, of the shrunk stack
    assert probabilities.shape == (2, 2, 40, 40)
    with pytest.raises(ValueError, match="'auto' or a number"):
        predict_at_object_size(
            threshold_model([]), truth, spatial_axes=(1, 2), trained=(6, 12), object_diameter="big"
        )
    with pytest.raises(ValueError, match="instances_of"):
        predict_at_object_size(threshold_model([]), truth, spatial_axes=(1, 2), trained=(6, 12))
