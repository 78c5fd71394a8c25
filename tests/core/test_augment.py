import numpy as np
import pytest
from scipy import ndimage as ndi

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


#: the geometric and exposure augmentations off: what is left is the quality degradation
_QUALITY_ONLY = {
    "flips": False,
    "rotate90": False,
    "elastic_sigma": 0,
    "intensity_scale": 0,
    "intensity_shift": 0,
}


def test_blur_spreads_a_point_in_the_plane_and_not_across_planes():
    image = np.zeros((1, 5, 21, 21), np.float32)
    image[0, 2, 10, 10] = 1.0
    labels = np.zeros((5, 21, 21), np.uint8)
    labels[2, 8:13, 8:13] = 1
    aug = Augmentation(**_QUALITY_ONLY, blur_sigma=(1.5, 1.5), blur_probability=1.0)
    out_image, out_labels, _ = aug(np.random.default_rng(0), image, labels)
    np.testing.assert_allclose(out_image[0, 2], ndi.gaussian_filter(image[0, 2], 1.5), atol=1e-6)
    assert out_image[0, 2, 10, 10] < 0.1  # spread over its neighbours
    assert not out_image[0, [0, 1, 3, 4]].any()  # planes blurred one by one
    np.testing.assert_array_equal(out_labels, labels)


def test_blur_probability_is_the_share_of_blurred_patches():
    image, labels, _ = _pattern()
    aug = Augmentation(**_QUALITY_ONLY, blur_sigma=(1.0, 2.0), blur_probability=0.3)
    rng = np.random.default_rng(0)
    blurred = [not np.array_equal(aug(rng, image, labels)[0], image) for _ in range(200)]
    assert 0.2 < np.mean(blurred) < 0.4


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_gamma_bends_the_values_between_their_minimum_and_maximum(gamma):
    labels = np.zeros((8, 32), np.uint8)
    image = np.broadcast_to(np.linspace(0.2, 0.8, 32, dtype=np.float32), (2, 8, 32)).copy()
    aug = Augmentation(**_QUALITY_ONLY, gamma=(gamma, gamma))
    out_image, _, _ = aug(np.random.default_rng(0), image, labels)
    expected = ((image - 0.2) / 0.6) ** gamma * 0.6 + 0.2
    np.testing.assert_allclose(out_image, expected, atol=1e-5)
    assert out_image.min() == pytest.approx(0.2) and out_image.max() == pytest.approx(0.8)


def test_noise_strength_is_drawn_for_each_patch_from_its_range():
    image, labels = np.zeros((1, 64, 64), np.float32), np.zeros((64, 64), np.uint8)
    aug = Augmentation(**_QUALITY_ONLY, noise_std=(0.1, 0.3))
    rng = np.random.default_rng(0)
    stds = [aug(rng, image, labels)[0].std() for _ in range(40)]
    assert 0.09 < min(stds) < 0.15 and 0.25 < max(stds) < 0.31


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"blur_sigma": (2.0, 1.0)}, "blur_sigma"),
        ({"blur_probability": 1.5}, "blur_probability"),
        ({"gamma": (0.0, 1.0)}, "gamma"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": (0.3, 0.1)}, "noise_std"),
    ],
)
def test_impossible_quality_settings_are_refused_by_name(options, field):
    with pytest.raises(ValueError, match=field):
        Augmentation(**options)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        Augmentation()(np.random.default_rng(0), np.zeros((1, 8, 8)), np.zeros((8, 9), int))


def _square(size=64, side=8):
    """A centred square object (label 1) that the image encodes exactly."""
    labels = np.zeros((size, size), np.uint8)
    start = (size - side) // 2
    labels[start : start + side, start : start + side] = 1
    return labels.astype(np.float32)[None] * 10, labels


@pytest.mark.parametrize(("zoom", "side"), [(2.0, 16), (0.5, 4)])
def test_zoom_scales_objects_about_the_centre(zoom, side):
    image, labels = _square()
    aug = Augmentation(
        flips=False,
        rotate90=False,
        zoom=(zoom, zoom),
        elastic_sigma=0,
        intensity_scale=0,
        intensity_shift=0,
        image_order=0,
    )
    out_image, out_labels, _ = aug(np.random.default_rng(0), image, labels)
    assert out_labels.shape == labels.shape
    # (zooming out fills the borders by reflection, as translation does: look at the centre)
    ys, xs = np.nonzero(out_labels[16:48, 16:48])
    # the 8-pixel square is `side` pixels wide and still centred (to a pixel)
    assert np.ptp(ys) + 1 == side and np.ptp(xs) + 1 == side
    assert abs(ys.mean() - 15.5) <= 0.5 and abs(xs.mean() - 15.5) <= 0.5
    np.testing.assert_array_equal(out_image[0], out_labels * 10.0)


def test_zoom_is_log_uniform_within_its_range_and_off_draws_nothing():
    aug = Augmentation(zoom=(0.5, 2.0))
    zooms = np.array([aug.draw_zoom(np.random.default_rng(s)) for s in range(400)])
    assert zooms.min() >= 0.5 and zooms.max() <= 2.0
    # log-uniform: as many zooms below 1 as above, with the extremes reached
    assert 0.4 < np.mean(zooms < 1) < 0.6 and zooms.min() < 0.55 and zooms.max() > 1.8
    rng = np.random.default_rng(3)
    assert Augmentation().draw_zoom(rng) == 1.0
    # without zoom the random stream is untouched: earlier seeds give the same patches
    assert rng.random() == np.random.default_rng(3).random()
    with pytest.raises(ValueError, match="zoom"):
        Augmentation(zoom=(2.0, 1.0)).draw_zoom(rng)


def test_a_window_is_resampled_to_out_shape_and_a_stack_keeps_its_planes():
    image, labels = _square(size=32, side=8)
    aug = Augmentation(
        flips=False,
        rotate90=False,
        elastic_sigma=0,
        intensity_scale=0,
        intensity_shift=0,
        image_order=0,
    )
    out_image, out_labels, _ = aug(np.random.default_rng(0), image, labels, out_shape=(16, 16))
    assert out_labels.shape == (16, 16) and np.count_nonzero(out_labels) == 16  # 4 x 4
    stack = np.stack([labels] * 5)
    zoomed = Augmentation(zoom=(2.0, 2.0), flips=False, rotate90=False, elastic_sigma=0)
    _, out_stack, _ = zoomed(np.random.default_rng(0), stack[None].astype(np.float32), stack)
    assert out_stack.shape == stack.shape
    for plane in out_stack:  # every plane zoomed the same, none dropped or mixed
        assert np.count_nonzero(plane) == 16 * 16
    with pytest.raises(ValueError, match="out_shape"):
        aug(np.random.default_rng(0), image, labels, out_shape=(16,))
