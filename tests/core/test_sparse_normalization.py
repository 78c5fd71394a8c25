"""Percentile normalisation re-anchored on objects too sparse for it."""

from __future__ import annotations

import numpy as np
from skimage.draw import disk

from napari_segkit.core.volume import (
    Volume,
    normalization_stats,
    sparse_object_normalization,
)

PERCENTILE = {"mode": "percentile", "low": 1.0, "high": 99.8}


def _field(size: int, n: int = 3, radius: int = 6, brightness: float = 200.0):
    """A dark noisy field with `n` bright discs: (image, foreground)."""
    rng = np.random.default_rng(0)
    image = rng.normal(10, 1, (size, size)).astype(np.float32)
    foreground = np.zeros((size, size), bool)
    for i in range(n):
        foreground[disk((20 + 30 * i, 20), radius, shape=foreground.shape)] = True
    image[foreground] = brightness + rng.normal(0, 5, foreground.sum())
    return image, foreground


def test_sparse_bright_objects_set_the_high_end():
    image, foreground = _field(512)  # 3 discs of 113 px: 0.13 % of the field
    volume = Volume(image, in_channels=1)
    plain = normalization_stats(volume, PERCENTILE)
    assert plain["scale"][0] < 10  # the 99.8th percentile is background noise
    stats = sparse_object_normalization(volume, PERCENTILE, foreground)
    assert stats["mode"] == "fixed"
    assert stats["mean"] == plain["offset"]
    expected = np.percentile(image[foreground], 98) - plain["offset"][0]
    assert np.isclose(stats["std"][0], expected, rtol=1e-5)
    # the objects now come out about as bright as in a typical image, not ~20x brighter
    normalised = (image[foreground] - stats["mean"][0]) / stats["std"][0]
    assert 0.9 < np.median(normalised) < 1.0


def test_sparse_dark_objects_on_a_bright_background_set_the_low_end():
    image, foreground = _field(512)
    image = 255 - image  # bright-field: dark nuclei (0.13 % of the field) on a bright one
    volume = Volume(image, in_channels=1)
    plain = normalization_stats(volume, PERCENTILE)
    high = plain["offset"][0] + plain["scale"][0]
    stats = sparse_object_normalization(volume, PERCENTILE, foreground)
    objects_low = np.percentile(image[foreground], 10)  # the 1st percentile / a tenth
    assert np.isclose(stats["mean"][0], objects_low, rtol=1e-5)
    assert np.isclose(stats["mean"][0] + stats["std"][0], high, rtol=1e-5)
    # the same dark objects covering over 1 % of the image are left alone
    dense, dense_foreground = _field(128)
    assert dense_foreground.mean() > 0.01
    dense = 255 - dense
    assert (
        sparse_object_normalization(Volume(dense, in_channels=1), PERCENTILE, dense_foreground)
        is None
    )


def test_each_channel_of_a_colour_model_gets_its_own_high_end():
    gray, foreground = _field(512)
    rgb = np.stack([gray, gray * 0.5, gray * 0.25], axis=-1)
    stats = sparse_object_normalization(
        Volume(rgb, in_channels=3, color="rgb"), PERCENTILE, foreground
    )
    assert np.allclose(np.array(stats["std"]) / stats["std"][0], [1, 0.5, 0.25], rtol=0.02)


def test_it_stays_out_of_the_way_otherwise():
    image, foreground = _field(512)
    volume = Volume(image, in_channels=1)
    # objects covering a usual share of the image
    dense, dense_foreground = _field(128)
    assert dense_foreground.mean() > 0.002
    assert (
        sparse_object_normalization(Volume(dense, in_channels=1), PERCENTILE, dense_foreground)
        is None
    )
    # nothing found
    assert sparse_object_normalization(volume, PERCENTILE, np.zeros_like(foreground)) is None
    # specks of noise found, not objects brighter than the high percentile
    specks = np.zeros_like(foreground)
    specks[np.unravel_index(np.argsort(image, axis=None)[-3000:-2900], image.shape)] = True
    assert sparse_object_normalization(volume, PERCENTILE, specks) is None
    # other normalisations, and inversion (whose bright end is the background)
    assert sparse_object_normalization(volume, {"mode": "meanstd"}, foreground) is None
    assert sparse_object_normalization(volume, None, foreground) is None
    inverted = {**PERCENTILE, "invert": "auto"}
    assert sparse_object_normalization(volume, inverted, foreground) is None


def test_a_stack_is_one_field():
    image, foreground = _field(512)
    stack = np.stack([image, np.full_like(image, 10)])
    mask = np.stack([foreground, np.zeros_like(foreground)])
    stats = sparse_object_normalization(Volume(stack, in_channels=1), PERCENTILE, mask)
    expected = np.percentile(image[foreground], 98)
    assert np.isclose(stats["mean"][0] + stats["std"][0], expected, rtol=1e-5)
