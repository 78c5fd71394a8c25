"""Seeded, bounded fuzzing: malformed input may only raise the documented errors.

``rle_decode`` -> RLEError; the CSV readers -> ValueError (StackReadError, RLEError) or
FileNotFoundError; the model description -> ModelFileError. Anything else (IndexError,
OverflowError, StopIteration, KeyError, UnicodeDecodeError ...) is a bug.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from napari_segkit.core.rle import RLEError, rle_decode
from napari_segkit.kaggle.datasets import read_rle_csv
from napari_segkit.kaggle.submission import read_submission
from napari_segkit.models.info import FORMAT, ModelFileError, description_from_dict

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

tokens = st.one_of(
    st.integers(-10, 40).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.text(alphabet="0123456789¹²³٣_+-. eE", min_size=1, max_size=6),
    st.text(min_size=1, max_size=4).filter(lambda t: not t.isspace()),
)


@seed(1)
@FUZZ
@given(st.lists(tokens, max_size=8), st.tuples(st.integers(1, 6), st.integers(1, 6)))
def test_rle_decode_raises_only_rle_errors(parts, shape):
    try:
        mask = rle_decode(" ".join(parts), shape)
    except RLEError:
        return
    assert mask.shape == shape and set(np.unique(mask)) <= {0, 1}


cells = st.one_of(
    st.sampled_from(
        [
            "a",
            "b",
            "../a",
            "/x",
            "",
            "1 2",
            "1 x",
            "3 1 1 1",
            "-3",
            "70000",
            "cat",
            "1",
            "0",
            "ä",
            "\ufeffa",
        ]
    ),
    st.text(max_size=8),
)


@seed(2)
@FUZZ
@given(
    header=st.lists(
        st.sampled_from(["ImageId", "EncodedPixels", "ClassId", "x"]), min_size=0, max_size=4
    ),
    rows=st.lists(st.lists(cells, max_size=4), max_size=5),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]),
)
def test_csv_readers_raise_only_documented_errors(tmp_path, header, rows, encoding):
    import csv
    import io

    import tifffile

    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    for name in ("a", "b"):
        tifffile.imwrite(images / f"{name}.tif", np.zeros((4, 4), np.uint8))
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    path = tmp_path / "fuzz.csv"
    try:
        path.write_bytes(text.getvalue().encode(encoding))
    except UnicodeEncodeError:
        return
    for read in (
        lambda: read_rle_csv(path, images),
        lambda: read_submission(path, {"a": (4, 4), "b": (4, 4)}),
    ):
        with contextlib.suppress(ValueError, FileNotFoundError):
            read()


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**7),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(-3, 300), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
fields = st.sampled_from(
    [
        "arch",
        "options",
        "in_channels",
        "num_classes",
        "pad_mode",
        "class_names",
        "class_colors",
        "normalization",
        "tile_size",
        "overlap",
        "training",
        "versions",
        "format_version",
        "extra",
    ]
)


@seed(3)
@FUZZ
@given(st.dictionaries(fields, values, max_size=5))
def test_model_description_raises_only_model_file_errors(changes):
    description = {
        "format": FORMAT,
        "format_version": 1,
        "arch": "unet_original",
        "options": {"width": 4, "depth": 2},
        "in_channels": 1,
        "num_classes": 2,
    }
    description.update(changes)
    json.dumps(description)  # what a file can hold
    try:
        info = description_from_dict(description, "fuzz.safetensors")
    except ModelFileError as err:
        assert "fuzz.safetensors" in str(err)
        return
    assert info.in_channels >= 1 and info.num_classes >= 1
