"""3D models over stacks: (Z, Y, X) tiles with overlap in all three axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segkit.core.errors import InputError
from napari_segkit.core.tiles import blend_weights
from napari_segkit.models import build_model, load_model, read_model_info, save_model
from napari_segkit.tiling import PredictionCancelled, predict


@pytest.fixture(scope="module")
def unet3d():
    """A tiny 3D U-Net (depth 1: receptive field 17 voxels) with real batch-norm statistics."""
    torch.manual_seed(0)
    model = build_model("unet3d", 1, 3, width=2, depth=1)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 1, 16, 16, 16) * 2 + 0.5)
    return model.eval()


def whole_volume(model, volume):
    with torch.no_grad():
        logits = model(torch.as_tensor(volume, dtype=torch.float32)[None, None])
    return torch.softmax(logits, 1)[0].numpy()


@pytest.mark.parametrize("shape", [(21, 37, 30), (5, 40, 33), (2, 19, 25)])
def test_centre_blended_3d_tiles_equal_the_whole_volume(unet3d, shape):
    """Overlap 0.5 of a 32-voxel tile leaves 8 voxels of context beyond every kept
    centre, covering the network's half receptive field: tiling changes nothing. Odd
    shapes, and volumes thinner than a tile in z."""
    volume = np.random.default_rng(0).random(shape, dtype=np.float32)
    tiled = predict(
        unet3d,
        volume,
        tile_size=32,
        overlap=0.5,
        blend="centre",
        output="probabilities",
        normalization=None,
    )
    assert tiled.shape == (3, *shape)
    np.testing.assert_allclose(tiled, whole_volume(unet3d, volume), atol=1e-5)


def test_gaussian_3d_tiles_and_flips_stay_close_to_the_whole_volume(unet3d):
    volume = np.random.default_rng(1).random((20, 40, 44), dtype=np.float32)
    gaussian = predict(
        unet3d, volume, tile_size=(16, 24, 24), output="probabilities", normalization=None
    )
    full = whole_volume(unet3d, volume)
    assert np.abs(gaussian - full).max() < 0.1
    flips = predict(
        unet3d, volume, tile_size=32, tta="flips", output="probabilities", normalization=None
    )
    # the average over the 8 flips of z, y and x: finite, a distribution, near the plain one
    np.testing.assert_allclose(flips.sum(0), 1, atol=1e-5)
    assert np.abs(flips - full).mean() < 0.05
    labels = predict(unet3d, volume, tile_size=32, normalization=None)
    assert labels.shape == volume.shape and labels.dtype == np.uint8


def test_3d_blend_weights_are_the_outer_product_of_the_profiles():
    w3 = blend_weights((8, 12, 10), "gaussian", 0.25)
    w2 = blend_weights((12, 10), "gaussian", 0.25)
    profile = blend_weights((8, 1), "gaussian", 0.25)[:, 0]
    assert w3.shape == (8, 12, 10) and w3.min() > 0
    np.testing.assert_allclose(w3, np.maximum(np.multiply.outer(profile, w2), 1e-3), rtol=1e-5)


def test_3d_model_file_records_its_dimensions_and_old_files_still_load(tmp_path, unet3d):
    path = save_model(tmp_path / "m3d.safetensors", unet3d, spacing=(2.0, 0.5, 0.5))
    info = read_model_info(path)
    assert info.spatial_dims == 3 and info.spacing == [2.0, 0.5, 0.5]
    assert info.format_version == 3 and len(info.tile_size) == 3
    volume = np.random.default_rng(2).random((6, 20, 20), dtype=np.float32)
    a = predict(load_model(path), volume, output="probabilities", normalization=None)
    b = predict(unet3d, volume, output="probabilities", normalization=None)
    np.testing.assert_allclose(a, b, atol=1e-6)
    plain = save_model(tmp_path / "m2d.safetensors", build_model("unet_original", 1, 2, width=2))
    assert read_model_info(plain).format_version == 1  # a 2D file stays readable by old versions
    assert read_model_info(plain).spatial_dims == 2


def test_anisotropic_levels_keep_z_and_bad_inputs_are_named(unet3d):
    model = build_model("unet3d", 1, 2, width=2, depth=2, anisotropic_levels=1).eval()
    assert model.divisors == (2, 4, 4)  # z pooled once, y and x twice
    first_pool = model.net.pools[0]
    assert first_pool.kernel_size == (1, 2, 2)
    with pytest.raises(InputError, match="3D model.*single 2D plane"):
        predict(unet3d, np.zeros((40, 40), np.float32))
    with pytest.raises(ValueError, match="predicts in memory for now"):
        predict(unet3d, np.zeros((4, 20, 20), np.float32), out="x.zarr")
    with pytest.raises(ValueError, match="tile_size"):
        predict(unet3d, np.zeros((4, 20, 20), np.float32), tile_size=(8, 8, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, 1, D, H, W\)"):
        model(torch.zeros(1, 1, 8, 8))
    with pytest.raises(PredictionCancelled):
        predict(unet3d, np.zeros((4, 20, 20), np.float32), cancel=lambda: True)
