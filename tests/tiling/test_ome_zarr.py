"""OME-Zarr outputs: valid metadata (checked by ome-zarr-models), pyramids built block by
block, opened by napari-ome-zarr as labels, crash-safe (kill -9, then a bit-identical rerun)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_segkit.core.io import write_stack
from napari_segkit.core.pyramid import downsample_mean, downsample_mode
from napari_segkit.models import save_model
from napari_segkit.tiling import predict


@pytest.fixture
def model_file(tmp_path, tiny_unet):
    return save_model(
        tmp_path / "tiny.safetensors",
        tiny_unet,
        tile_size=(32, 32),
        normalization={"mode": "none"},
        class_names=["bg", "a", "b"],
    )


def _image(tmp_path, shape=(150, 120), scale=(0.25, 0.5)):
    data = (np.random.default_rng(0).random(shape) * 200).astype(np.uint8)
    write_stack(tmp_path / "in.tif", data, scale=scale)
    return tmp_path / "in.tif", data


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_output_validates_and_carries_scale_classes_and_pyramids(tmp_path, model_file, version):
    models = pytest.importorskip(f"ome_zarr_models.v0{version[-1]}.image")
    path, data = _image(tmp_path)
    out = tmp_path / "r.ome.zarr"
    labels, probs = predict(
        str(model_file),
        str(path),
        out=out,
        output="both",
        tile_size=32,
        block_size=64,
        ome_version=version,
    )
    group = zarr.open_group(str(out), mode="r")
    models.Image.from_zarr(group)  # raises on any schema violation (labels included)
    ome = dict(group.attrs)["ome"] if version == "0.5" else dict(group.attrs)
    datasets = ome["multiscales"][0]["datasets"]
    assert datasets[0]["coordinateTransformations"][0]["scale"] == [0.25, 0.5]
    assert datasets[1]["coordinateTransformations"][0]["scale"] == [0.5, 1.0]
    np.testing.assert_array_equal(group["0"][:], data)  # the input, carried over
    np.testing.assert_array_equal(group["1"][:], downsample_mean(data))
    seg = group["labels/segmentation"]
    label_meta = (dict(seg.attrs)["ome"] if version == "0.5" else dict(seg.attrs))["image-label"]
    assert [p["class"] for p in label_meta["properties"]] == ["bg", "a", "b"]
    assert label_meta["colors"][0]["rgba"][3] == 0  # background transparent
    level0 = seg["0"][:]
    np.testing.assert_array_equal(level0, labels[:])
    # each level is the mode of the one above, computed block by block, seam-free
    np.testing.assert_array_equal(seg["1"][:], downsample_mode(level0))
    np.testing.assert_array_equal(seg["2"][:], downsample_mode(downsample_mode(level0)))
    np.testing.assert_allclose(group["probabilities/1"][:], downsample_mean(probs[:]), atol=1e-6)
    assert group.attrs["segkit"]["complete"] is True


def test_napari_ome_zarr_opens_it_as_image_and_labels(tmp_path, model_file):
    reader_module = pytest.importorskip("napari_ome_zarr")
    path, _ = _image(tmp_path)
    out = tmp_path / "r.ome.zarr"
    predict(str(model_file), str(path), out=out, tile_size=32, block_size=64)
    layers = reader_module.napari_get_reader(str(out))(str(out))
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "labels"]
    labels_data = layers[1][0]
    assert isinstance(labels_data, list) and len(labels_data) >= 2  # multiscale


def test_stacks_keep_z_and_sharding_writes_one_file_per_block(tmp_path, model_file):
    image = (np.random.default_rng(1).random((3, 140, 130)) * 100).astype(np.uint16)
    out = tmp_path / "s.ome.zarr"
    labels = predict(str(model_file), image, out=out, tile_size=32, block_size=64, shards=True)
    group = zarr.open_group(str(out), mode="r")
    seg = group["labels/segmentation"]
    assert seg["0"].shape == (3, 140, 130) and seg["1"].shape == (3, 70, 65)
    assert seg["0"].shards == (1, 64, 64)
    np.testing.assert_array_equal(seg["1"][:], downsample_mode(labels[:]))
    small = predict(
        str(model_file),
        image[:, :40, :50],
        out=tmp_path / "small.ome.zarr",
        tile_size=32,
        shards=True,
    )  # smaller than a chunk: shards shrink with it
    assert small.shape == (3, 40, 50)
    with pytest.raises(ValueError, match="shards need zarr v3"):
        predict(
            str(model_file), image, out=tmp_path / "v4.ome.zarr", shards=True, ome_version="0.4"
        )


def test_sigkill_during_a_pyramid_write_then_rerun_is_bit_identical(
    tmp_path, model_file, kill_mid_prediction
):
    image = np.random.default_rng(3).random((2, 200, 200)).astype(np.float32)
    out = tmp_path / "k.ome.zarr"
    options = {"tile_size": 32, "block_size": 64, "output": "both"}
    n_done = kill_mid_prediction(model_file, image, out, blocks=3, pause=0.3, **options)
    assert 3 <= n_done < 32  # 2 planes x 4 x 4 blocks
    assert zarr.open_group(str(out), mode="r").attrs["segkit"]["complete"] is False
    predict(str(model_file), image, tile_size=32, block_size=64, out=out, output="both")
    predict(
        str(model_file),
        image,
        tile_size=32,
        block_size=64,
        out=tmp_path / "ref.ome.zarr",
        output="both",
    )
    got, ref = (
        zarr.open_group(str(out), mode="r"),
        zarr.open_group(str(tmp_path / "ref.ome.zarr"), mode="r"),
    )
    for name in (
        "0",
        "1",
        "labels/segmentation/0",
        "labels/segmentation/1",
        "probabilities/0",
        "probabilities/1",
    ):
        np.testing.assert_array_equal(got[name][:], ref[name][:], err_msg=name)
    assert got.attrs["segkit"]["complete"] is True
