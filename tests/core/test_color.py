"""Images of any kind reach a model: colour conversion and automatic inversion (issue 16.3)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segkit.core.errors import InputError
from napari_segkit.core.volume import Volume, apply_normalization, normalization_stats

INVERT = {"mode": "percentile", "low": 1.0, "high": 99.8, "invert": "auto"}


def _rgba(gray: np.ndarray) -> np.ndarray:
    out = np.empty((*gray.shape, 4), np.uint8)
    out[..., :3] = gray[..., None]
    out[..., 3] = 255
    return out


def test_a_gray_model_reads_rgb_and_rgba_as_luminance():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    volume = Volume(rgb, in_channels=1, color="gray")
    assert volume.axes == "YXC" and volume.channels == 1 and volume.source_channels == 3
    region = volume.read(0, slice(0, 20), slice(0, 30))
    expected = rgb.astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    np.testing.assert_allclose(region[0], expected, rtol=1e-5)
    # RGBA of a gray picture (how DSB2018 stores fluorescence) reads as that picture
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    region = Volume(_rgba(gray), in_channels=1, color="gray").read(0, slice(0, 20), slice(0, 30))
    np.testing.assert_allclose(region[0], gray, atol=1e-3)
    # and a plain gray image passes unchanged
    assert np.array_equal(
        Volume(gray, in_channels=1, color="gray").read(0, slice(0, 20), slice(0, 30))[0], gray
    )


def test_an_rgb_model_reads_gray_as_three_channels_and_drops_alpha():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    region = Volume(gray, in_channels=3, color="rgb").read(0, slice(0, 3), slice(0, 4))
    assert region.shape == (3, 3, 4) and all(np.array_equal(c, gray) for c in region)
    rgba = _rgba(gray)
    rgba[..., 0] = 7
    region = Volume(rgba, in_channels=3, color="rgb").read(0, slice(0, 3), slice(0, 4))
    assert region.shape == (3, 3, 4) and (region[0] == 7).all()
    # what an OME-Zarr output copies is the image itself, not the model's view of it
    assert Volume(rgba, in_channels=3, color="rgb").read_pixels(
        0, slice(0, 3), slice(0, 4)
    ).shape == (4, 3, 4)


def test_colour_modes_refuse_what_they_cannot_convert():
    with pytest.raises(InputError, match="2 channels; color='gray' converts 1"):
        Volume(np.zeros((5, 6, 2)), in_channels=1, color="gray", axes="YXC")
    with pytest.raises(ValueError, match="for a 1-channel model, not one of 3"):
        Volume(np.zeros((5, 6)), in_channels=3, color="gray")
    with pytest.raises(ValueError, match="color must be one of"):
        Volume(np.zeros((5, 6)), in_channels=1, color="grey")
    # a two-channel image is not silently read as a stack of 2-pixel-wide planes
    with pytest.raises(InputError, match=r"\(Y, X, C\) = 50 x 60 with 2 channels"):
        Volume(np.zeros((50, 60, 2)), in_channels=3, color="rgb")
    with pytest.raises(InputError, match=r"image\[..., 0\]"):
        Volume(np.zeros((50, 60, 2)), in_channels=1, color="gray")
    assert Volume(np.zeros((50, 60, 2)), in_channels=3, color="rgb", axes="ZYX").axes == "ZYX"
    assert Volume(np.zeros((2, 60, 2)), in_channels=3, color="rgb").axes == "ZYX"
    # as-is stays strict: a colour image does not reach a 1-channel model silently
    with pytest.raises(InputError):
        Volume(np.zeros((50, 60, 3)), in_channels=1)


def test_bright_backgrounds_are_inverted_dark_ones_are_not():
    dark = np.full((64, 64), 10.0, np.float32)
    dark[20:30, 20:30] = 200.0  # a bright nucleus on a dark background
    bright = 255.0 - dark  # the same scene as bright-field: dark nucleus, bright background
    for image, inverted in ((dark, False), (bright, True)):
        volume = Volume(image, in_channels=1)
        stats = normalization_stats(volume, INVERT)
        assert stats.get("inverted", False) is inverted
        out = apply_normalization(volume.read(0, slice(0, 64), slice(0, 64)), stats)[0]
        # either way the nucleus ends up bright (near 1) on a dark background (near 0)
        assert out[25, 25] > 0.9 and out[5, 5] < 0.1
    # without "invert" nothing is flipped
    stats = normalization_stats(Volume(bright, in_channels=1), {"mode": "percentile"})
    assert "inverted" not in stats and stats["scale"][0] > 0
