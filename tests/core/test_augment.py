import numpy as np
import pytest

from napari_segkit.core.augment import Augmentation, elastic_displacement


def _pattern(shape=(48, 48)):
    """Labels with a known, asymmetric pattern; the image encodes them exactly."""
    labels = np.zeros(shape, np.uint8)
    labels[5:20, 8:14] = 1
    labels[30:44, 20:40] = 2
    labels[2:6, 40:46] = 3
    image = (labels.astype(np.float32) * 10)[None]
    weights = labels.astype(np.float32) + 0.5
    return image, labels, weights


@pytest.mark.parametrize("seed", range(8))
def test_image_labels_and_weights_stay_aligned(seed):
    image, labels, weights = _pattern()
    aug = Augmentation(
        translate=4, elastic_sigma=6, intensity_scale=0, intensity_shift=0, image_order=0
    )
    out_image, out_labels, out_weights = aug(np.random.default_rng(seed), image, labels, weights)
    # the same deformation on all three: the image still encodes the labels exactly
    np.testing.assert_array_equal(out_image[0], out_labels * 10.0)
    assert out_image.shape == image.shape and out_labels.dtype == labels.dtype
    # linear interpolation of the weights agrees with the labels away from edges
    interior = out_labels == np.roll(out_labels, 1, 0)
    assert np.mean(np.abs(out_weights - (out_labels + 0.5))[interior] < 1e-3) > 0.8


@pytest.mark.parametrize("seed", range(5))
def test_elastic_keeps_label_values(seed):
    image, labels, _ = _pattern()
    aug = Augmentation(elastic_sigma=10)
    _, out_labels, _ = aug(np.random.default_rng(seed), image, labels)
    assert set(np.unique(out_labels)) <= set(np.unique(labels))


def test_elastic_displacement_is_smooth_and_of_the_asked_size():
    field = elastic_displacement(np.random.default_rng(0), (128, 128), sigma=10, grid=3)
    assert field.shape == (2, 128, 128)
    # smooth: neighbouring pixels move almost together
    assert np.abs(np.diff(field, axis=1)).max() < 1.0
    assert np.abs(np.diff(field, axis=2)).max() < 1.0
    amplitudes = [
        np.abs(elastic_displacement(np.random.default_rng(s), (32, 32), 10)).mean()
        for s in range(20)
    ]
    assert 3 < np.mean(amplitudes) < 15


def test_flips_and_rotations_are_exact_and_inputs_untouched():
    image, labels, weights = _pattern()
    copies = image.copy(), labels.copy(), weights.copy()
    aug = Augmentation(elastic_sigma=0, intensity_scale=0, intensity_shift=0)
    seen = set()
    for seed in range(30):
        out_image, out_labels, _ = aug(np.random.default_rng(seed), image, labels, weights)
        np.testing.assert_array_equal(out_image[0], out_labels * 10.0)
        seen.add(out_labels.tobytes())
    assert len(seen) == 8  # the 8 symmetries of the square all occur
    for a, b in zip((image, labels, weights), copies, strict=False):
        np.testing.assert_array_equal(a, b)


def test_intensity_and_noise_touch_only_the_image():
    image, labels, _ = _pattern()
    aug = Augmentation(flips=False, rotate90=False, elastic_sigma=0, noise_std=0.5)
    out_image, out_labels, _ = aug(np.random.default_rng(0), image, labels)
    np.testing.assert_array_equal(out_labels, labels)
    assert not np.allclose(out_image, image)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        Augmentation()(np.random.default_rng(0), np.zeros((1, 8, 8)), np.zeros((8, 9), int))
