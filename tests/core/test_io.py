from __future__ import annotations

import os

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_segkit.core import io
from napari_segkit.core.errors import (
    CorruptFileError,
    EmptyFolderError,
    SliceShapeError,
    StackWriteError,
    UnsupportedFormatError,
)
from napari_segkit.core.io import natural_key, read_stack, write_labels, write_stack

DTYPES = [np.uint8, np.uint16, np.float32]


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


# a folder of slices ("" extension) holds stacks only
CASES = [
    (ext, shape)
    for ext in (".tif", ".ome.tif", ".zarr", "")
    for shape in ((33, 47), (5, 33, 47))
    if ext or len(shape) == 3
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("ext", "shape"), CASES)
def test_round_trip(tmp_path, shape, dtype, ext):
    data = _data(shape, dtype)
    path = write_stack(tmp_path / f"out{ext}", data, chunks=(2, 16, 16)[-len(shape) :])
    stack = read_stack(path)
    assert stack.axes == ("YX" if len(shape) == 2 else "ZYX")
    back = np.asarray(stack.data)
    assert back.dtype == data.dtype
    np.testing.assert_array_equal(back, data)
    # no temporary leftovers beside the output
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("ext", [".ome.tif", ".zarr"])
def test_scale_round_trip(tmp_path, ext):
    data = _data((4, 20, 30), np.uint16)
    path = write_stack(tmp_path / f"s{ext}", data, scale=(2.0, 0.5, 0.25))
    assert read_stack(path).scale == pytest.approx((2.0, 0.5, 0.25))


def test_rgb_and_channels(tmp_path):
    rgb = _data((30, 40, 3), np.uint8)
    stack = read_stack(write_stack(tmp_path / "rgb.tif", rgb))
    assert stack.axes == "YXC" and stack.spatial_scale == (1.0, 1.0)
    np.testing.assert_array_equal(stack.data, rgb)
    multi = _data((6, 30, 40, 2), np.uint16)
    stack = read_stack(write_stack(tmp_path / "multi.zarr", multi))
    assert stack.axes == "ZYXC"
    np.testing.assert_array_equal(stack.data, multi)


def test_imagej_tiff_scale(tmp_path):
    data = _data((3, 16, 16), np.uint8)
    tifffile.imwrite(
        tmp_path / "ij.tif",
        data,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={"spacing": 3.0, "unit": "um", "axes": "ZYX"},
    )
    assert read_stack(tmp_path / "ij.tif").scale == pytest.approx((3.0, 0.5, 0.5))


def test_write_labels_rejects_float(tmp_path):
    with pytest.raises(StackWriteError, match="integer dtype"):
        write_labels(tmp_path / "l.tif", np.zeros((4, 4), np.float32))
    assert not list(tmp_path.iterdir())


def test_existing_output_needs_overwrite(tmp_path):
    path = write_labels(tmp_path / "l.zarr", np.ones((8, 8), np.uint8))
    with pytest.raises(StackWriteError, match="already exists"):
        write_labels(path, np.zeros((8, 8), np.uint8))
    np.testing.assert_array_equal(read_stack(path).data, 1)  # the user's file is untouched
    write_labels(path, np.zeros((8, 8), np.uint8), overwrite=True)
    np.testing.assert_array_equal(read_stack(path).data, 0)


def test_failed_write_leaves_nothing(tmp_path):
    class Exploding:
        shape, dtype, ndim = (4, 8, 8), np.dtype(np.uint8), 3

        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_stack(tmp_path / "x.tif", Exploding())
    assert not list(tmp_path.iterdir())


def test_dask_input_written_chunkwise_to_zarr(tmp_path):
    data = da.from_array(_data((4, 64, 64), np.uint16), chunks=(1, 32, 32))
    path = write_stack(tmp_path / "d.zarr", data, chunks=(1, 32, 32))
    z = zarr.open(str(path), mode="r")
    assert z.chunks == (1, 32, 32)
    np.testing.assert_array_equal(z[:], data.compute())


# --------------------------------------------------------------------------- zarr


def test_zarr_v2_and_v3(tmp_path):
    data = _data((3, 20, 20), np.uint8)
    for fmt in (2, 3):
        z = zarr.create_array(
            str(tmp_path / f"v{fmt}.zarr"),
            shape=data.shape,
            dtype=data.dtype,
            chunks=(1, 10, 10),
            zarr_format=fmt,
        )
        z[:] = data
        stack = read_stack(tmp_path / f"v{fmt}.zarr")
        assert stack.is_lazy
        np.testing.assert_array_equal(stack.data.compute(), data)


def test_zarr_group_array_choice(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("raw", shape=(2, 8, 8), dtype="u2")[:] = 7
    group.create_group("labels").create_array("cells", shape=(2, 8, 8), dtype="u1")[:] = 3
    with pytest.raises(UnsupportedFormatError, match=r"holds 2 arrays.*labels/cells.*raw"):
        read_stack(tmp_path / "g.zarr")
    assert int(read_stack(tmp_path / "g.zarr", array="labels/cells").data[0, 0, 0]) == 3
    assert int(read_stack(tmp_path / "g.zarr", array="raw").data[0, 0, 0]) == 7
    with pytest.raises(UnsupportedFormatError, match="no array 'nope'"):
        read_stack(tmp_path / "g.zarr", array="nope")


def test_ome_zarr_multiscale_level0_and_scale(tmp_path):
    group = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(4, 16, 16), dtype="u1")[:] = 1
    group.create_array("1", shape=(4, 8, 8), dtype="u1")[:] = 2
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "z", "type": "space"},
                {"name": "y", "type": "space"},
                {"name": "x", "type": "space"},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.3, 0.3]}],
                },
                {
                    "path": "1",
                    "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.6, 0.6]}],
                },
            ],
        }
    ]
    stack = read_stack(tmp_path / "ome.zarr")
    assert stack.data.shape == (4, 16, 16) and stack.axes == "ZYX"
    assert stack.scale == pytest.approx((2.0, 0.3, 0.3))


def test_opening_large_zarr_reads_no_chunk(tmp_path):
    """Timing-free evidence of laziness: every chunk file is corrupted after writing,
    yet opening succeeds; only computing a block touches (and trips on) a chunk."""
    path = tmp_path / "big.zarr"
    z = zarr.create_array(str(path), shape=(40, 256, 256), dtype="u2", chunks=(1, 64, 64))
    z[:] = 5
    chunk_files = [p for p in path.rglob("*") if p.is_file() and "zarr.json" not in p.name]
    assert len(chunk_files) == 40 * 16
    for p in chunk_files:
        p.write_bytes(b"garbage, not a compressed chunk")
    stack = read_stack(path)
    assert isinstance(stack.data, da.Array)
    assert stack.data.shape == (40, 256, 256) and stack.data.npartitions == 640
    with pytest.raises(Exception):  # noqa: B017 -- the codec's own error type varies
        stack.data[0, :64, :64].compute()


def test_large_tiff_opens_lazily(tmp_path, monkeypatch):
    data = _data((6, 64, 64), np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", data)
    monkeypatch.setattr(io, "LAZY_THRESHOLD_BYTES", 1000)
    stack = read_stack(tmp_path / "t.tif")
    assert stack.is_lazy and stack.axes == "ZYX"
    np.testing.assert_array_equal(stack.data[2].compute(), data[2])
    assert not read_stack(tmp_path / "t.tif", lazy=False).is_lazy


# --------------------------------------------------------------------------- slice folders


def test_natural_sort():
    names = ["z10.png", "z2.png", "z1.png", "Z3.png"]
    assert sorted(names, key=natural_key) == ["z1.png", "z2.png", "Z3.png", "z10.png"]


def test_folder_of_pngs_sorted_naturally(tmp_path):
    import imageio.v3 as iio

    planes = [np.full((12, 9), i, np.uint8) for i in range(12)]
    for i, plane in enumerate(planes):
        iio.imwrite(tmp_path / f"slice{i}.png", plane)
    (tmp_path / "notes.txt").write_text("ignored")
    stack = read_stack(tmp_path)
    assert stack.is_lazy and stack.axes == "ZYX" and stack.data.shape == (12, 12, 9)
    np.testing.assert_array_equal(stack.data.compute()[:, 0, 0], np.arange(12))


def test_folder_of_rgb_pngs(tmp_path):
    import imageio.v3 as iio

    for i in range(3):
        iio.imwrite(tmp_path / f"{i}.png", _data((10, 11, 3), np.uint8, seed=i))
    stack = read_stack(tmp_path)
    assert stack.axes == "ZYXC" and stack.data.shape == (3, 10, 11, 3)


# --------------------------------------------------------------------------- medical


def test_nifti_spacing_and_axes(tmp_path):
    import nibabel as nib

    xyz = _data((20, 16, 5), np.int16)  # NIfTI order: X, Y, Z
    img = nib.Nifti1Image(xyz, np.diag([0.5, 0.7, 3.0, 1.0]))
    nib.save(img, tmp_path / "ct.nii.gz")
    stack = read_stack(tmp_path / "ct.nii.gz")
    assert stack.axes == "ZYX" and stack.data.shape == (5, 16, 20)
    assert stack.scale == pytest.approx((3.0, 0.7, 0.5))
    np.testing.assert_array_equal(np.asarray(stack.data), xyz.transpose(2, 1, 0))


def _write_dicom(path, pixels, z, instance, spacing=(0.8, 0.6), slope=1.0, intercept=0.0):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality = "CT"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = list(spacing)
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.InstanceNumber = instance
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_series_sorted_by_position(tmp_path):
    # file names deliberately in the wrong order: position along the normal decides
    for i, z in enumerate([4.0, 0.0, 2.0]):
        _write_dicom(tmp_path / f"im{i}.dcm", np.full((6, 7), int(z * 10), np.uint16), z, i + 1)
    stack = read_stack(tmp_path)
    assert stack.axes == "ZYX" and stack.data.shape == (3, 6, 7)
    np.testing.assert_array_equal(stack.data[:, 0, 0], [0, 20, 40])
    assert stack.scale == pytest.approx((2.0, 0.8, 0.6))
    assert stack.metadata["modality"] == "CT"


def test_dicom_rescale(tmp_path):
    _write_dicom(
        tmp_path / "a.dcm", np.full((4, 4), 100, np.uint16), 0.0, 1, slope=2.0, intercept=-1024
    )
    stack = read_stack(tmp_path / "a.dcm")
    assert stack.axes == "YX" and float(stack.data[0, 0]) == pytest.approx(-824.0)


# --------------------------------------------------------------------------- bad input


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.tif"):
        read_stack(tmp_path / "nothere.tif")


def test_unsupported_extension(tmp_path):
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(UnsupportedFormatError, match=r"table\.csv.*'\.csv'"):
        read_stack(tmp_path / "table.csv")


@pytest.mark.parametrize("name", ["bad.tif", "bad.nii.gz", "bad.dcm", "bad.png"])
def test_corrupt_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00\x01 this is not an image" * 10)
    with pytest.raises(CorruptFileError, match=name.replace(".", r"\.")):
        read_stack(tmp_path / name)


def test_corrupt_zarr(tmp_path):
    (tmp_path / "c.zarr").mkdir()
    (tmp_path / "c.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="c.zarr"):
        read_stack(tmp_path / "c.zarr")


def test_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(EmptyFolderError, match=str(tmp_path)):
        read_stack(tmp_path)


def test_slices_of_different_shapes(tmp_path):
    tifffile.imwrite(tmp_path / "a1.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "a2.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(SliceShapeError, match=r"(?s)differ.*a1\.tif.*a2\.tif"):
        read_stack(tmp_path)


def test_unwritable_extension_and_folder(tmp_path):
    with pytest.raises(StackWriteError, match=r"'\.png'"):
        write_stack(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(StackWriteError, match="does not exist"):
        write_stack(tmp_path / "no" / "x.tif", np.zeros((4, 4), np.uint8))
    assert os.listdir(tmp_path) == []
