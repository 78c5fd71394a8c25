"""Bad inputs and faults, as a careful tester tries them: a table, through the library and the CLI.

Each library case builds its input in a temporary folder and states the documented
error type and the text its message must name (the path, field or value at fault).
Each CLI case states the same for ``segkit``: exit status 2, one line on stderr, no
traceback. Wherever an output path is involved, nothing may be left marked complete.
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_segkit.core.errors import (
    CorruptFileError,
    EmptyFolderError,
    IncompleteOutputError,
    InputError,
    SliceShapeError,
    StackWriteError,
    UnsupportedFormatError,
)
from napari_segkit.core.io import read_stack, write_labels, write_stack
from napari_segkit.core.outputs import OutputExistsError
from napari_segkit.core.rle import RLEError, rle_decode
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.kaggle.datasets import read_rle_csv
from napari_segkit.kaggle.submission import check_id_rule
from napari_segkit.models import ModelFileError, build_model, load_model, save_model
from napari_segkit.models.info import META_KEY
from napari_segkit.tiling import predict
from napari_segkit.training import TrainingDataError, train
from napari_segkit.training.loop import ResumeError

LIBRARY: dict[str, object] = {}


def case(fn):
    """Register ``fn(tmp) -> (call, error type, text the message must contain)``."""
    LIBRARY[fn.__name__] = fn
    return fn


def _tiny_model():
    torch.manual_seed(0)
    return build_model("unet_original", 1, 2, width=4, depth=2)


def _model_file(tmp: Path, name="m.safetensors", **kwargs) -> Path:
    kwargs.setdefault("tile_size", (32, 32))
    return save_model(tmp / name, _tiny_model(), **kwargs)


def _edit_description(path: Path, out: Path, **changes) -> Path:
    """Rewrite a model file's JSON description (the weights stay) into `out`."""
    from safetensors.torch import load_file, save_file

    from napari_segkit.models.info import read_header

    tensors = load_file(str(path))
    _, meta = read_header(path)
    description = json.loads(meta[META_KEY])
    description.update(changes)
    save_file(tensors, str(out), metadata={META_KEY: json.dumps(description)})
    return out


def _image(tmp: Path, name="img.tif", shape=(48, 48)) -> Path:
    data = (np.random.default_rng(0).random(shape) * 1000).astype(np.uint16)
    write_stack(tmp / name, data)
    return tmp / name


def _csv(tmp: Path, text: str, encoding="utf-8") -> Path:
    images = tmp / "images"
    images.mkdir(exist_ok=True)
    tifffile.imwrite(images / "a.tif", np.zeros((4, 4), np.uint8))
    (tmp / "train.csv").write_bytes(text.encode(encoding))
    return tmp / "train.csv"


# ----------------------------------------------------------------- readers


@case
def missing_file(tmp):
    return lambda: read_stack(tmp / "nope.tif"), FileNotFoundError, "nope.tif"


@case
def six_byte_tiff(tmp):
    (tmp / "six.tif").write_bytes(b"II*\x00\x08\x00")
    return lambda: read_stack(tmp / "six.tif"), CorruptFileError, "six.tif"


@case
def truncated_compressed_tiff(tmp):
    tifffile.imwrite(
        tmp / "full.tif", np.random.default_rng(1).random((64, 64)), compression="zlib"
    )
    data = (tmp / "full.tif").read_bytes()
    (tmp / "cut.tif").write_bytes(data[: len(data) // 2])
    return lambda: read_stack(tmp / "cut.tif").data.sum(), CorruptFileError, "cut.tif"


@case
def tiff_header_declaring_200000_squared(tmp):
    tifffile.imwrite(tmp / "huge.tif", np.zeros((8, 8), np.uint8))
    data = bytearray((tmp / "huge.tif").read_bytes())
    for tag in (256, 257):  # ImageWidth, ImageLength -> 200000
        at = data.find(struct.pack("<HH", tag, 3))
        if at < 0:
            at = data.find(struct.pack("<HH", tag, 4))
        assert at >= 0, "tag not found: the case would test nothing"
        data[at + 2 : at + 12] = struct.pack("<HII", 4, 1, 200000)
    (tmp / "huge.tif").write_bytes(bytes(data))
    return (
        lambda: np.asarray(read_stack(tmp / "huge.tif").data[:1, :1]),
        CorruptFileError,
        "huge.tif",
    )


@case
def unsupported_extension(tmp):
    (tmp / "notes.xyz").write_text("hello")
    return lambda: read_stack(tmp / "notes.xyz"), UnsupportedFormatError, ".xyz"


@case
def empty_png(tmp):
    (tmp / "empty.png").write_bytes(b"")
    return lambda: read_stack(tmp / "empty.png"), CorruptFileError, "empty (0 bytes)"


@case
def text_named_png(tmp):
    (tmp / "fake.png").write_text("not an image at all")
    # the file named, and what is wrong with it (not imageio's advice to install plugins)
    return (
        lambda: read_stack(tmp / "fake.png"),
        CorruptFileError,
        "fake.png': not a readable PNG file (damaged, or not an image: it starts with b'not an i')",
    )


@case
def garbage_nifti(tmp):
    (tmp / "brain.nii").write_bytes(b"\x00" * 400)
    return lambda: read_stack(tmp / "brain.nii"), CorruptFileError, "brain.nii"


@case
def nifti_declaring_30000_cubed(tmp):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp / "small.nii")
    data = bytearray((tmp / "small.nii").read_bytes())
    data[42:48] = struct.pack("<hhh", 30000, 30000, 30000)  # dim[1..3]
    (tmp / "liar.nii").write_bytes(bytes(data))
    return (
        lambda: np.asarray(read_stack(tmp / "liar.nii").data[0, :2, :2]),
        CorruptFileError,
        "liar.nii",
    )


@case
def empty_folder(tmp):
    (tmp / "slices").mkdir()
    return lambda: read_stack(tmp / "slices"), EmptyFolderError, "slices"


@case
def slices_of_different_shapes(tmp):
    (tmp / "slices").mkdir()
    tifffile.imwrite(tmp / "slices" / "z0.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp / "slices" / "z1.tif", np.zeros((5, 4), np.uint8))
    return lambda: read_stack(tmp / "slices").data.compute(), SliceShapeError, "z1.tif"


@case
def broken_zarr_metadata(tmp):
    (tmp / "bad.zarr").mkdir()
    (tmp / "bad.zarr" / "zarr.json").write_text("{not json")
    return lambda: read_stack(tmp / "bad.zarr"), CorruptFileError, "bad.zarr"


@case
def unfinished_prediction_output(tmp):
    group = zarr.open_group(str(tmp / "out.zarr"), mode="w")
    group.attrs["segkit"] = {"complete": False}
    group.create_array("labels", shape=(4, 4), dtype="uint8")
    return lambda: read_stack(tmp / "out.zarr"), IncompleteOutputError, "out.zarr"


@case
def array_inside_unfinished_output(tmp):
    group = zarr.open_group(str(tmp / "out.zarr"), mode="w")
    group.attrs["segkit"] = {"complete": False}
    group.create_array("labels", shape=(4, 4), dtype="uint8")
    return lambda: read_stack(tmp / "out.zarr" / "labels"), IncompleteOutputError, "unfinished"


@case
def corrupt_zarr_chunk_of_an_input(tmp):
    write_stack(tmp / "in.zarr", np.ones((64, 64), np.float32), chunks=(32, 32))
    for chunk in (
        p
        for p in (tmp / "in.zarr").rglob("*")
        if p.is_file() and "json" not in p.name and not p.name.startswith(".z")
    ):
        chunk.write_bytes(b"garbage")
    return (
        lambda: predict(_model_file(tmp), str(tmp / "in.zarr"), tile_size=32),
        InputError,
        "in.zarr",
    )


# ----------------------------------------------------------------- writers


@case
def write_over_existing(tmp):
    _image(tmp, "x.tif")
    return lambda: write_stack(tmp / "x.tif", np.zeros((4, 4))), StackWriteError, "already exists"


@case
def float_labels(tmp):
    return (
        lambda: write_labels(tmp / "l.tif", np.zeros((4, 4), np.float32)),
        StackWriteError,
        "integer dtype",
    )


@case
def write_unknown_extension(tmp):
    return lambda: write_stack(tmp / "x.bmpz", np.zeros((4, 4))), StackWriteError, ".bmpz"


# ----------------------------------------------------------------- run-length strings


def _rle_case(text, needle, shape=(4, 4), error=RLEError):
    def make(tmp):
        return lambda: rle_decode(text, shape), error, needle

    return make


for _name, _text, _needle in [
    ("rle_odd_count", "1 2 3", "3 values"),
    ("rle_non_integer", "1 a", "'a'"),
    ("rle_fraction", "1 2.5", "'2.5'"),
    ("rle_huge_start", "99999999999999999999 1", "too large"),
    ("rle_huge_length", "5 9223372036854775807", "too large"),
    ("rle_unicode_digits", "¹ ²", "'¹'"),
    ("rle_underscore", "1 1_0", "'1_0'"),
    ("rle_start_zero", "0 2", "1-based"),
    ("rle_overlap", "1 3 2 2", "overlaps"),
    ("rle_unsorted", "5 1 1 1", "sorted"),
    ("rle_past_end", "15 5", "past the 16 pixels"),
]:
    LIBRARY[_name] = _rle_case(_text, _needle)
LIBRARY["rle_fractional_shape"] = _rle_case("1 1", "2.5", shape=(2.5, 4), error=ValueError)


# ----------------------------------------------------------------- CSV files and id rules

HEADER = "ImageId,EncodedPixels,ClassId\n"

for _name, _text, _needle in [
    ("csv_short_row", HEADER + "a,1 2\n", "line 2"),
    ("csv_non_integer_class", HEADER + "a,1 2,cat\n", "'cat'"),
    ("csv_negative_class", HEADER + "a,1 2,-3\n", "'-3'"),
    ("csv_class_too_large", HEADER + "a,1 2,70000\n", "'70000'"),
    ("csv_parent_id", HEADER + "../a,1 2,1\n", "'../a'"),
    ("csv_absolute_id", HEADER + "/etc/a,1 2,1\n", "'/etc/a'"),
    ("csv_header_only", HEADER, "no data rows"),
    ("csv_bad_rle", HEADER + "a,1 x,1\n", "line"),
]:
    LIBRARY[_name] = (
        lambda text, needle: (
            lambda tmp: (lambda: read_rle_csv(_csv(tmp, text)), ValueError, needle)
        )
    )(_text, _needle)


@case
def csv_latin1(tmp):
    path = _csv(tmp, "ImageId,EncodedPixels\nä,1 2\n", encoding="latin-1")
    return lambda: read_rle_csv(path), ValueError, "not UTF-8"


@case
def csv_missing(tmp):
    return lambda: read_rle_csv(tmp / "none.csv"), FileNotFoundError, "none.csv"


@case
def id_rule_attribute_access(tmp):
    return lambda: check_id_rule("{id.__class__.__mro__}"), ValueError, "only {id}"


@case
def id_rule_unknown_field(tmp):
    return lambda: check_id_rule("{foo}"), ValueError, "{foo}"


# ----------------------------------------------------------------- model files


@case
def pickled_model(tmp):
    with open(tmp / "evil.pt", "wb") as f:
        pickle.dump({"a": 1}, f)
    return lambda: load_model(tmp / "evil.pt"), ModelFileError, "does not unpickle"


@case
def torch_save_zip_model(tmp):
    torch.save({"a": torch.zeros(1)}, tmp / "z.pt")
    return lambda: load_model(tmp / "z.pt"), ModelFileError, "z.pt"


@case
def truncated_model(tmp):
    data = _model_file(tmp).read_bytes()
    (tmp / "cut.safetensors").write_bytes(data[: len(data) // 2])
    return lambda: load_model(tmp / "cut.safetensors"), ModelFileError, "truncated"


@case
def text_as_model(tmp):
    (tmp / "t.safetensors").write_text("hello")
    return lambda: load_model(tmp / "t.safetensors"), ModelFileError, "t.safetensors"


@case
def safetensors_without_description(tmp):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp / "plain.safetensors"))
    return lambda: load_model(tmp / "plain.safetensors"), ModelFileError, "no napari-segkit"


def _description_case(needle, **changes):
    def make(tmp):
        path = _edit_description(_model_file(tmp), tmp / "edited.safetensors", **changes)
        return lambda: load_model(path), ModelFileError, needle

    return make


for _name, _needle, _changes in [
    ("model_tile_negative", "'tile_size'", {"tile_size": [-128, -128]}),
    ("model_tile_huge", "'tile_size'", {"tile_size": [1000001, 1000001]}),
    ("model_tile_text", "'tile_size'", {"tile_size": "abc"}),
    ("model_fixed_norm_without_mean", "'mean'", {"normalization": {"mode": "fixed", "std": [1]}}),
    ("model_class_names_number", "'class_names'", {"class_names": 42}),
    ("model_width_200000", "do not match", {"options": {"width": 200000, "depth": 2}}),
    ("model_depth_60", "cannot build", {"options": {"width": 4, "depth": 60}}),
    ("model_unknown_field", "unknown model file field", {"colour": "red"}),
    ("model_future_version", "upgrade napari-segkit", {"format_version": 99}),
    ("model_overlap_1_5", "'overlap'", {"overlap": 1.5}),
    ("model_zero_channels", "'in_channels'", {"in_channels": 0}),
    ("model_unknown_arch", "'nonet'", {"arch": "nonet"}),
    ("model_bad_colour", "'class_colors'", {"class_colors": ["red", "blue"]}),
]:
    LIBRARY[_name] = _description_case(_needle, **_changes)


# ----------------------------------------------------------------- prediction


def _predict_case(needle, error=ValueError, image=None, **kwargs):
    def make(tmp):
        data = np.zeros((48, 48), np.float32) if image is None else image
        return lambda: predict(_model_file(tmp), data, **kwargs), error, needle

    return make


for _name, _needle, _error, _array, _kwargs in [
    ("predict_tile_fraction", "2.7", ValueError, None, {"tile_size": 2.7}),
    ("predict_tile_zero", "tile_size", ValueError, None, {"tile_size": 0}),
    ("predict_tile_huge", "tile_size", ValueError, None, {"tile_size": 1000001}),
    ("predict_blend", "'bogus'", ValueError, None, {"blend": "bogus"}),
    ("predict_overlap_one", "overlap", ValueError, None, {"overlap": 1.0}),
    ("predict_batch_zero", "batch_size", ValueError, None, {"batch_size": 0}),
    ("predict_tta", "'rot'", ValueError, None, {"tta": "rot"}),
    ("predict_device_tpu", "'tpu'", ValueError, None, {"device": "tpu"}),
    (
        "predict_ambiguous_shape",
        "(Z, Y, X) = 96 planes",
        InputError,
        np.zeros((96, 96, 2), np.float32),
        {},
    ),
    ("predict_nan", "NaN", InputError, np.full((32, 32), np.nan, np.float32), {}),
    ("predict_5d", "2 to 4 dimensions", InputError, np.zeros((1, 2, 3, 4, 5), np.float32), {}),
    (
        "predict_channels",
        "expects 1 channel",
        InputError,
        np.zeros((2, 16, 16), np.float32),
        {"axes": "CYX"},
    ),
    ("predict_empty", "empty", InputError, np.zeros((0, 16), np.float32), {}),
    ("predict_text_dtype", "not numeric", InputError, np.array([["a"] * 4] * 4), {}),
]:
    LIBRARY[_name] = _predict_case(_needle, _error, _array, **_kwargs)


@case
def predict_out_not_zarr(tmp):
    return _predict_case("out must be a .zarr", out=tmp / "x.tif")(tmp)


@case
def predict_out_is_input(tmp):
    path = tmp / "in.zarr"
    write_stack(path, np.zeros((48, 48), np.float32))
    return (
        lambda: predict(_model_file(tmp), str(path), out=path, overwrite=True),
        ValueError,
        "is the input",
    )


@case
def predict_out_inside_input(tmp):
    path = tmp / "in.zarr"
    write_stack(path, np.zeros((48, 48), np.float32))
    return (
        lambda: predict(_model_file(tmp), str(path), out=path / "x.zarr"),
        ValueError,
        "is inside the input",
    )


@case
def predict_out_contains_input(tmp):
    (tmp / "outer.zarr").mkdir()
    write_stack(tmp / "outer.zarr" / "in.zarr", np.zeros((48, 48), np.float32))
    return (
        lambda: predict(
            _model_file(tmp),
            str(tmp / "outer.zarr" / "in.zarr"),
            out=tmp / "outer.zarr",
            overwrite=True,
        ),
        ValueError,
        "contains the input",
    )


@case
def predict_out_exists_not_ours(tmp):
    (tmp / "user.zarr").mkdir()
    return (
        lambda: predict(_model_file(tmp), np.zeros((48, 48), np.float32), out=tmp / "user.zarr"),
        OutputExistsError,
        "not a napari-segkit prediction",
    )


@case
def predict_out_folder_missing(tmp):
    return (
        lambda: predict(
            _model_file(tmp), np.zeros((48, 48), np.float32), out=tmp / "no" / "x.zarr"
        ),
        FileNotFoundError,
        "does not exist",
    )


@case
def predict_resume_nothing(tmp):
    return (
        lambda: predict(
            _model_file(tmp), np.zeros((48, 48), np.float32), out=tmp / "x.zarr", resume=True
        ),
        FileNotFoundError,
        "Nothing to resume",
    )


@case
def predict_resume_with_another_input(tmp):
    model = _model_file(tmp)
    first = np.random.default_rng(0).random((2, 48, 48)).astype(np.float32)
    with pytest.raises(Exception):  # noqa: B017 -- any stop leaves an unfinished output
        predict(
            model,
            first,
            tile_size=32,
            block_size=32,
            out=tmp / "x.zarr",
            cancel=lambda: (tmp / "x.zarr" / ".segkit_done" / "0").exists(),
        )
    other = first[::-1].copy()  # same shape and dtype, other pixels
    return (
        lambda: predict(model, other, tile_size=32, block_size=32, out=tmp / "x.zarr"),
        OutputExistsError,
        "other settings",
    )


@case
def predict_resume_with_another_batch_size(tmp):
    model = _model_file(tmp)
    image = np.random.default_rng(0).random((2, 48, 48)).astype(np.float32)
    with pytest.raises(Exception):  # noqa: B017
        predict(
            model,
            image,
            tile_size=32,
            block_size=32,
            out=tmp / "x.zarr",
            cancel=lambda: (tmp / "x.zarr" / ".segkit_done" / "0").exists(),
        )
    return (
        lambda: predict(
            model,
            image,
            tile_size=32,
            block_size=32,
            batch_size=2,
            out=tmp / "x.zarr",
            resume=True,
        ),
        OutputExistsError,
        "other settings",
    )


# ----------------------------------------------------------------- training


def _train_case(needle, error=TrainingDataError, labels=None, **kwargs):
    def make(tmp):
        sample = make_nuclei((48, 48), seed=1)
        target = sample.semantic if labels is None else labels(sample)
        options = {
            "epochs": 1,
            "steps_per_epoch": 1,
            "patch_size": 32,
            "val_fraction": 0,
            "arch_options": {"width": 4, "depth": 2},
            **kwargs,
        }
        out = options.pop("out", tmp / "m.safetensors")
        return (lambda: train([sample.image], [target], out=out, **options), error, needle)

    return make


for _name, _needle, _error, _labels, _kwargs in [
    ("train_labels_0_255", "0, 255", TrainingDataError, lambda s: s.semantic * 255, {}),
    (
        "train_all_background",
        "only class 0",
        TrainingDataError,
        lambda s: np.zeros_like(s.semantic),
        {},
    ),
    (
        "train_float_labels",
        "integers",
        TrainingDataError,
        lambda s: s.semantic.astype(np.float32),
        {},
    ),
    ("train_shape_mismatch", "spatial shape", TrainingDataError, lambda s: s.semantic[:40], {}),
    ("train_unknown_loss", "'l7'", ValueError, None, {"loss": "l7"}),
    ("train_lr_zero", "lr must be > 0", ValueError, None, {"lr": 0}),
    ("train_schedule", "'linear'", ValueError, None, {"schedule": "linear"}),
    (
        "train_out_folder_missing",
        "does not exist",
        FileNotFoundError,
        None,
        {"out": Path("/nonexistent-folder/m.safetensors")},
    ),
]:
    LIBRARY[_name] = _train_case(_needle, _error, _labels, **_kwargs)


@case
def train_out_exists(tmp):
    _model_file(tmp, "m.safetensors")
    return _train_case("already exists", FileExistsError)(tmp)


@case
def train_init_is_out(tmp):
    path = _model_file(tmp, "m.safetensors")
    return _train_case("is the model being fine-tuned", ValueError, init=path, overwrite=True)(tmp)


@case
def train_resume_with_another_lr(tmp):
    sample = make_nuclei((48, 48), seed=1)
    options = {
        "epochs": 2,
        "steps_per_epoch": 1,
        "patch_size": 32,
        "val_fraction": 0,
        "arch_options": {"width": 4, "depth": 2},
    }
    out = tmp / "m.safetensors"
    stop = {"n": 0}

    def cancel():
        stop["n"] += 1
        return stop["n"] > 1  # stop in the second epoch, after the first was saved

    with pytest.raises(Exception):  # noqa: B017 -- TrainingCancelled
        train([sample.image], [sample.semantic], out=out, cancel=cancel, **options)
    return (
        lambda: train([sample.image], [sample.semantic], out=out, resume=True, lr=0.1, **options),
        ResumeError,
        "lr: 0.001 -> 0.1",
    )


@case
def train_resume_from_a_corrupt_state(tmp):
    out = _model_file(tmp, "m.safetensors")
    (tmp / "m.safetensors.state.pt").write_bytes(b"PK\x03\x04 truncated")
    return _train_case("cannot read the resume state", ResumeError, out=out, resume=True)(tmp)


@case
def train_resume_from_a_pickled_state(tmp):
    out = _model_file(tmp, "m.safetensors")
    with open(tmp / "m.safetensors.state.pt", "wb") as f:
        pickle.dump({"model": {}}, f)
    return _train_case("never executed", ResumeError, out=out, resume=True)(tmp)


def test_the_table_is_large_enough():
    assert len(LIBRARY) >= 60, len(LIBRARY)


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_library_bad_input(name, tmp_path):
    call, error, needle = LIBRARY[name](tmp_path)
    with pytest.raises(error) as caught:
        call()
    assert needle in str(caught.value), str(caught.value)
    for out in tmp_path.rglob("*.zarr"):  # nothing left looking complete
        state = _segkit_state(out)
        if state is not None and out.name in ("x.zarr",):
            assert state.get("complete") is not True


def _segkit_state(path: Path):
    try:
        return dict(zarr.open_group(str(path), mode="r").attrs).get("segkit")
    except Exception:  # noqa: BLE001 -- not a group
        return None


# ----------------------------------------------------------------- the command line

CLI: dict[str, object] = {}


def cli_case(fn):
    CLI[fn.__name__] = fn
    return fn


@cli_case
def cli_predict_missing_model(tmp):
    return [
        "predict",
        str(tmp / "none.safetensors"),
        str(_image(tmp)),
        str(tmp / "o.zarr"),
    ], "none.safetensors"


@cli_case
def cli_predict_pickled_model(tmp):
    with open(tmp / "evil.pt", "wb") as f:
        pickle.dump({"a": 1}, f)
    return [
        "predict",
        str(tmp / "evil.pt"),
        str(_image(tmp)),
        str(tmp / "o.zarr"),
    ], "does not unpickle"


@cli_case
def cli_predict_output_is_input(tmp):
    write_stack(tmp / "in.zarr", np.zeros((48, 48), np.float32))
    return [
        "predict",
        str(_model_file(tmp)),
        str(tmp / "in.zarr"),
        str(tmp / "in.zarr"),
        "--overwrite",
    ], "is the input"


@cli_case
def cli_predict_device_tpu(tmp):
    return [
        "predict",
        str(_model_file(tmp)),
        str(_image(tmp)),
        str(tmp / "o.zarr"),
        "--device",
        "tpu",
    ], "'tpu'"


@cli_case
def cli_predict_resume_nothing(tmp):
    return [
        "predict",
        str(_model_file(tmp)),
        str(_image(tmp)),
        str(tmp / "o.zarr"),
        "--resume",
    ], "Nothing to resume"


@cli_case
def cli_predict_bad_output_extension(tmp):
    return ["predict", str(_model_file(tmp)), str(_image(tmp)), str(tmp / "o.png")], "o.png"


@cli_case
def cli_predict_colour_image_into_a_grey_model(tmp):
    write_stack(tmp / "rgb.tif", np.zeros((48, 48, 3), np.uint8))
    return [
        "predict",
        str(_model_file(tmp)),
        str(tmp / "rgb.tif"),
        str(tmp / "o.zarr"),
    ], "1 channel"


@cli_case
def cli_predict_corrupt_tiff(tmp):
    (tmp / "six.tif").write_bytes(b"II*\x00\x08\x00")
    return ["predict", str(_model_file(tmp)), str(tmp / "six.tif"), str(tmp / "o.zarr")], "six.tif"


@cli_case
def cli_predict_cluster_without_address(tmp):
    return [
        "predict",
        str(_model_file(tmp)),
        str(_image(tmp)),
        str(tmp / "o.zarr"),
        "--cluster",
        "local:x",
    ], "local:x"


@cli_case
def cli_train_out_exists(tmp):
    sample = make_nuclei((48, 48), seed=1)
    write_stack(tmp / "i.tif", sample.image)
    write_labels(tmp / "l.tif", sample.semantic)
    return [
        "train",
        "--images",
        str(tmp / "i.tif"),
        "--labels",
        str(tmp / "l.tif"),
        "--out",
        str(_model_file(tmp)),
    ], "already exists"


@cli_case
def cli_train_labels_0_255(tmp):
    sample = make_nuclei((48, 48), seed=1)
    write_stack(tmp / "i.tif", sample.image)
    write_labels(tmp / "l.tif", sample.semantic * 255)
    return [
        "train",
        "--images",
        str(tmp / "i.tif"),
        "--labels",
        str(tmp / "l.tif"),
        "--out",
        str(tmp / "new.safetensors"),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
    ], "0, 255"


@cli_case
def cli_submit_bad_id_rule(tmp):
    (tmp / "imgs").mkdir()
    _image(tmp / "imgs", "a.tif")
    return [
        "submit",
        str(_model_file(tmp)),
        str(tmp / "imgs"),
        "--out",
        str(tmp / "s.csv"),
        "--id-rule",
        "{id.__class__}",
    ], "only {id}"


@cli_case
def cli_inspect_missing(tmp):
    return ["inspect", str(tmp / "none.zarr")], "none.zarr"


@cli_case
def cli_evaluate_missing_images(tmp):
    return [
        "evaluate",
        str(_model_file(tmp)),
        "--images",
        str(tmp / "no.tif"),
        "--labels",
        str(tmp / "no_l.tif"),
    ], "no.tif"


@cli_case
def cli_evaluate_errors_without_instances(tmp):
    """--errors counts objects: class maps from --images/--labels hold none to count."""
    tifffile.imwrite(tmp / "img.tif", np.zeros((32, 32), np.float32))
    tifffile.imwrite(tmp / "lab.tif", np.zeros((32, 32), np.uint8))
    return [
        "evaluate",
        str(_model_file(tmp)),
        "--images",
        str(tmp / "img.tif"),
        "--labels",
        str(tmp / "lab.tif"),
        "--errors",
    ], "--errors counts objects"


@cli_case
def cli_train_bad_option(tmp):
    return [
        "train",
        "--images",
        "a",
        "--labels",
        "b",
        "--out",
        str(tmp / "m.safetensors"),
        "--arch-option",
        "width",
    ], "not KEY=VALUE"


@pytest.mark.parametrize("name", sorted(CLI))
def test_cli_bad_input(name, tmp_path):
    argv, needle = CLI[name](tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "napari_segkit.cli", *argv, "-q"]
        if argv[0] in ("predict", "train", "submit")
        else [sys.executable, "-m", "napari_segkit.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert needle in result.stderr, result.stderr[-2000:]
    for out in tmp_path.rglob("o.zarr"):
        state = _segkit_state(out)
        assert state is None or state.get("complete") is not True


# ----------------------------------------------------------------- concurrency (real processes)

HOLD = """
import sys, time
import numpy as np
from napari_segkit.tiling import predict
predict(sys.argv[1], np.zeros((2, 96, 96), np.float32), tile_size=32, block_size=32,
        out=sys.argv[2], progress=lambda d, t: time.sleep(0.3))
"""


def test_a_second_run_into_the_same_output_is_refused_while_the_first_runs(tmp_path):
    model = _model_file(tmp_path)
    out = tmp_path / "o.zarr"
    (tmp_path / "hold.py").write_text(HOLD)
    first = subprocess.Popen([sys.executable, str(tmp_path / "hold.py"), str(model), str(out)])
    try:
        lock = Path(f"{out}.lock")
        for _ in range(600):
            if lock.exists() and (out / ".segkit_done").is_dir():
                break
            import time

            time.sleep(0.05)
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "napari_segkit.cli",
                "predict",
                str(model),
                str(_image(tmp_path)),
                str(out),
                "--overwrite",
                "--tile",
                "64",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2
        assert f"in use by PID {first.pid}" in second.stderr, second.stderr
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0
    assert _segkit_state(out)["complete"] is True
    assert not Path(f"{out}.lock").exists()  # released


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    import socket

    model = _model_file(tmp_path)
    out = tmp_path / "o.zarr"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    Path(f"{out}.lock").write_text(
        json.dumps({"pid": int(dead), "host": socket.gethostname(), "started": 0})
    )
    labels = predict(model, np.zeros((48, 48), np.float32), tile_size=32, out=out)
    assert labels.shape == (48, 48) and _segkit_state(out)["complete"] is True
    assert not Path(f"{out}.lock").exists()
