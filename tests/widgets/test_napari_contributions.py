"""The reader, writer and sample data inside a real (headless) napari viewer."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from core.test_io import _write_dicom

from napari_segkit.core.io import read_stack, write_labels, write_stack
from napari_segkit.core.synthetic import sample_2d, sample_3d
from napari_segkit.samples import load_sample

PLUGIN = "napari-segkit"


@pytest.mark.parametrize(("key", "ndim", "n_layers"), [("nuclei_2d", 2, 3), ("nuclei_3d", 3, 3)])
def test_open_sample(make_napari_viewer, key, ndim, n_layers):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, key)
    assert len(viewer.layers) == n_layers
    image, semantic, instances = viewer.layers
    assert image._type_string == "image" and image.data.ndim == ndim
    assert semantic._type_string == "labels" and set(np.unique(semantic.data)) == {0, 1}
    assert instances.data.max() > 10


def test_shipped_samples_equal_generator():
    for key, make in (("nuclei_2d", sample_2d), ("nuclei_3d", sample_3d)):
        shipped, fresh = load_sample(key), make()
        np.testing.assert_array_equal(shipped.image, fresh.image)
        np.testing.assert_array_equal(shipped.instances, fresh.instances)


def _write_inputs(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 4000, (5, 40, 30), dtype=np.uint16)
    write_stack(tmp_path / "stack.ome.tif", stack, scale=(2.0, 0.5, 0.5))
    write_stack(tmp_path / "stack.zarr", stack, scale=(2.0, 0.5, 0.5), chunks=(1, 20, 15))
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(stack):
        tifffile.imwrite(folder / f"z{i}.tif", plane)
    import nibabel as nib

    nib.save(
        nib.Nifti1Image(stack.transpose(2, 1, 0).astype(np.int16), np.diag([0.5, 0.5, 2, 1])),
        tmp_path / "stack.nii.gz",
    )
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    for i, plane in enumerate(stack):
        _write_dicom(dicom / f"{i:03d}", plane, z=2.0 * i, instance=i + 1, spacing=(0.5, 0.5))
    return stack


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        ("stack.ome.tif", (2.0, 0.5, 0.5)),
        ("stack.zarr", (2.0, 0.5, 0.5)),
        ("slices", (1.0, 1.0, 1.0)),
        ("stack.nii.gz", (2.0, 0.5, 0.5)),
        ("dicom", (2.0, 0.5, 0.5)),  # files without extension, found by their DICM magic
    ],
)
def test_viewer_opens_each_reader_output(make_napari_viewer, tmp_path, name, scale):
    stack = _write_inputs(tmp_path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / name), plugin=PLUGIN)
    (layer,) = layers
    assert layer.data.shape == stack.shape
    np.testing.assert_allclose(layer.scale, scale)
    np.testing.assert_array_equal(np.asarray(layer.data[2]), stack[2])


def test_zarr_layer_is_lazy(make_napari_viewer, tmp_path):
    z = zarr.create_array(
        str(tmp_path / "big.zarr"), shape=(64, 512, 512), dtype="u2", chunks=(1, 256, 256)
    )
    z[:] = 9
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "big.zarr"), plugin=PLUGIN)
    assert type(layer.data).__module__.startswith("dask")
    assert tuple(layer.contrast_limits) == (9.0, 10.0)


def test_labels_file_opens_as_labels_and_writer_round_trips(make_napari_viewer, tmp_path):
    labels = np.zeros((3, 20, 20), np.uint8)
    labels[:, 5:10, 5:10] = 2
    write_labels(tmp_path / "cells_labels.zarr", labels)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "cells_labels.zarr"), plugin=PLUGIN)
    assert layer._type_string == "labels"
    for ext in (".tif", ".zarr"):
        written = layer.save(str(tmp_path / f"saved{ext}"), plugin=PLUGIN)
        assert written
        np.testing.assert_array_equal(np.asarray(read_stack(written[0]).data), labels)


def test_prediction_outputs_reopen_as_labels(make_napari_viewer, tmp_path):
    """An OME-Zarr output opens as a multiscale image + Labels layer with its class names;
    a plain zarr output as Labels (not a grey image)."""
    import torch

    from napari_segkit.models import build_model, save_model
    from napari_segkit.tiling import predict

    torch.manual_seed(0)
    model = save_model(
        tmp_path / "m.safetensors",
        build_model("unet_original", 1, 2, width=4, depth=2),
        class_names=["bg", "cell"],
        tile_size=(64, 64),
    )
    image = sample_2d().image
    predict(model, np.tile(image, (3, 3)), out=tmp_path / "r.ome.zarr", block_size=512)
    predict(model, image, out=tmp_path / "plain.zarr", output="both")
    viewer = make_napari_viewer()
    ome = viewer.open(str(tmp_path / "r.ome.zarr"), plugin=PLUGIN)
    assert [type(layer).__name__ for layer in ome] == ["Image", "Labels"]
    assert ome[0].multiscale and ome[1].multiscale
    assert list(ome[1].features["class"]) == ["bg", "cell"]
    plain = viewer.open(str(tmp_path / "plain.zarr"), plugin=PLUGIN)
    assert type(plain[0]).__name__ == "Labels"
    assert [type(layer).__name__ for layer in plain[1:]] == ["Image", "Image"]


def test_ome_zarr_levels_open_and_predict_on_a_coarser_level(tmp_path):
    import torch

    from napari_segkit.cli import main
    from napari_segkit.models import build_model, save_model
    from napari_segkit.tiling import predict

    torch.manual_seed(0)
    model = save_model(
        tmp_path / "m.safetensors",
        build_model("unet_original", 1, 2, width=4, depth=2),
        tile_size=(64, 64),
    )
    write_stack(tmp_path / "in.tif", np.tile(sample_2d().image, (3, 3)), scale=(0.5, 0.5))
    predict(model, str(tmp_path / "in.tif"), out=tmp_path / "r.ome.zarr", block_size=512)
    level1 = read_stack(tmp_path / "r.ome.zarr", level=1)
    assert level1.data.shape == (384, 384) and level1.scale == (1.0, 1.0)
    assert level1.metadata["levels"] == 2
    assert (
        main(
            [
                "predict",
                str(model),
                str(tmp_path / "r.ome.zarr"),
                str(tmp_path / "coarse.ome.zarr"),
                "--level",
                "1",
                "-q",
            ]
        )
        == 0
    )
    coarse = read_stack(tmp_path / "coarse.ome.zarr")
    assert coarse.data.shape == (384, 384) and coarse.scale == (1.0, 1.0)


def test_plain_png_and_tiff_open_without_a_reader_choice(make_napari_viewer, tmp_path):
    """Issue 19.6: the reader claims only what napari's builtins do not read as well, so a
    plain PNG or TIFF opens at once (headless napari raises when two readers compete)."""
    from npe2 import PluginManager
    from skimage.io import imsave

    _write_inputs(tmp_path)
    imsave(tmp_path / "cells.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    tifffile.imwrite(tmp_path / "cells.tif", np.zeros((8, 8), np.uint8))
    manager = PluginManager.instance()
    manager.discover()

    def ours(name):
        readers = manager.iter_compatible_readers([str(tmp_path / name)])
        return any(r.command.startswith(PLUGIN) for r in readers)

    assert not ours("cells.png") and not ours("cells.tif")
    for name in ("stack.ome.tif", "stack.zarr", "stack.nii.gz", "slices", "dicom"):
        assert ours(name), name
    viewer = make_napari_viewer()
    for name in ("cells.png", "cells.tif"):
        (layer,) = viewer.open(str(tmp_path / name))
        assert layer.data.shape == (8, 8)
