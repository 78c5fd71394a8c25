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
    with pytest.raises(ValueError, match="plain .zarr outputs"):
        predict(unet3d, np.zeros((4, 20, 20), np.float32), out="x.ome.zarr")
    with pytest.raises(ValueError, match="tile_size"):
        predict(unet3d, np.zeros((4, 20, 20), np.float32), tile_size=(8, 8, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, 1, D, H, W\)"):
        model(torch.zeros(1, 1, 8, 8))
    with pytest.raises(PredictionCancelled):
        predict(unet3d, np.zeros((4, 20, 20), np.float32), cancel=lambda: True)


def test_spacing_mismatch_is_refused_or_resampled():
    """The bundled 3D model was trained at spacing (1, 1, 1); a stack imaged every other
    plane (z spacing 2) is refused with the reason, or resampled to the model's spacing
    and back (labels of the original shape, close to what the model sees as is)."""
    from napari_segkit.core.synthetic import sample_3d
    from napari_segkit.samples import DEFAULT_3D_MODEL

    model = load_model(DEFAULT_3D_MODEL)
    assert model.info.spacing == [1.0, 1.0, 1.0]
    sample = sample_3d()
    coarse, truth = sample.image[::2], sample.semantic[::2]
    with pytest.raises(InputError, match=r"voxel spacing \(2.0, 1.0, 1.0\) differs.*resample"):
        predict(model, coarse, spacing=(2, 1, 1))
    resampled = predict(model, coarse, spacing=(2, 1, 1), resample=True)
    assert resampled.shape == coarse.shape
    dice = 2 * ((resampled > 0) & (truth > 0)).sum() / ((resampled > 0).sum() + (truth > 0).sum())
    assert dice > 0.93
    same = predict(model, coarse, spacing=(1.05, 1, 1))  # within 10 %: no resampling needed
    assert same.shape == coarse.shape


def test_3d_train_and_predict_from_the_command_line(tmp_path, capsys):
    """segkit train --arch unet3d reads the stacks' spacing from their metadata and records
    it; segkit predict tiles the stack in 3D."""
    from napari_segkit.cli import main
    from napari_segkit.core.io import read_stack, write_stack
    from napari_segkit.core.synthetic import make_nuclei

    sample = make_nuclei((10, 40, 40), radius=(4.0, 7.0), seed=21)
    write_stack(tmp_path / "stack.ome.tif", sample.image, scale=(2.0, 0.5, 0.5))
    write_stack(tmp_path / "labels.tif", sample.semantic)
    model = tmp_path / "m3d.safetensors"
    args = ["train", "--images", str(tmp_path / "stack.ome.tif"), "--labels"]
    args += [str(tmp_path / "labels.tif"), "--out", str(model), "--arch", "unet3d"]
    args += ["--arch-option", "width=2", "--arch-option", "depth=1", "--epochs", "1"]
    args += ["--steps-per-epoch", "2", "--patch-size", "16", "--val-fraction", "0", "-q"]
    assert main(args) == 0
    assert read_model_info(model).spacing == [2.0, 0.5, 0.5]
    out = tmp_path / "labels_3d.tif"
    assert main(["predict", str(model), str(tmp_path / "stack.ome.tif"), str(out), "-q"]) == 0
    assert np.asarray(read_stack(out).data).shape == (10, 40, 40)


def test_3d_zarr_output_is_blockwise_resumable_and_equals_memory(unet3d, tmp_path):
    """Blocks of 32 planes x 64 x 64 (whole chunks): the zarr output equals the in-memory
    prediction bit for bit; a cancelled run leaves an incomplete store that a re-run
    finishes, again bit-identical."""
    import zarr

    volume = np.random.default_rng(3).random((40, 90, 70), dtype=np.float32)
    options = {"tile_size": 32, "normalization": None, "output": "both", "block_size": 64}
    memory = predict(unet3d, volume, **{k: v for k, v in options.items() if k != "block_size"})
    labels, probs = predict(unet3d, volume, out=tmp_path / "whole.zarr", **options)
    np.testing.assert_array_equal(labels[:], memory[0])
    np.testing.assert_array_equal(probs[:], memory[1])
    seen = []
    with pytest.raises(PredictionCancelled):
        predict(
            unet3d,
            volume,
            out=tmp_path / "resumed.zarr",
            progress=lambda done, total: seen.append((done, total)),
            cancel=lambda: len(seen) >= 3,
            **options,
        )
    group = zarr.open_group(str(tmp_path / "resumed.zarr"), mode="r")
    assert group.attrs["segkit"]["complete"] is False
    labels2, probs2 = predict(unet3d, volume, out=tmp_path / "resumed.zarr", **options)
    np.testing.assert_array_equal(probs2[:], memory[1])
    np.testing.assert_array_equal(labels2[:], memory[0])
    assert seen[-1][1] == 8  # 2 x 2 x 2 blocks of (32, 64, 64)


def test_3d_kill_9_then_rerun_is_bit_identical(tmp_path, unet3d, kill_mid_prediction):
    """A process killed with SIGKILL mid-volume leaves finished blocks; the re-run (another
    process) computes only the rest, and the store equals an uninterrupted run's."""
    import zarr

    model_path = save_model(tmp_path / "m3d.safetensors", unet3d)
    volume = np.random.default_rng(4).random((40, 90, 70), dtype=np.float32)
    out = tmp_path / "k.zarr"
    options = {"tile_size": 32, "block_size": 64, "output": "both", "normalization": None}
    n_done = kill_mid_prediction(model_path, volume, out, blocks=2, pause=0.4, **options)
    assert 2 <= n_done < 8
    assert zarr.open_group(str(out), mode="r").attrs["segkit"]["complete"] is False
    labels, probs = predict(str(model_path), volume, out=out, **options)
    reference = predict(str(model_path), volume, out=tmp_path / "ref.zarr", **options)
    np.testing.assert_array_equal(labels[:], reference[0][:])
    np.testing.assert_array_equal(probs[:], reference[1][:])


def test_3d_dask_local_cluster_equals_local(tmp_path, unet3d, local_cluster):
    model_path = save_model(tmp_path / "m3d.safetensors", unet3d)
    volume = np.random.default_rng(5).random((40, 70, 66), dtype=np.float32)
    options = {"tile_size": 32, "block_size": 64, "output": "both", "normalization": None}
    local = predict(str(model_path), volume, out=tmp_path / "local.zarr", **options)
    with local_cluster(n_workers=2) as client:
        seen = []
        remote = predict(
            str(model_path),
            volume,
            out=tmp_path / "dask.zarr",
            client=client,
            progress=lambda d, t: seen.append((d, t)),
            **options,
        )
    assert seen[-1] == (8, 8)
    np.testing.assert_array_equal(remote[0][:], local[0][:])
    np.testing.assert_allclose(remote[1][:], local[1][:], atol=1e-6)
