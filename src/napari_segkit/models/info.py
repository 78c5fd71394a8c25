"""What a model file says besides its weights -- read and checked without torch.

A model file is one safetensors file: an 8-byte little-endian header length, a JSON
header (tensor names, dtypes, shapes, and a ``__metadata__`` dict of strings), then
the raw tensor bytes. napari-segkit keeps its description as JSON under the
metadata key ``"napari-segkit"``. This module parses the header itself (it is a
documented, simple format) so that the CLI and the widgets can check a model file
-- and refuse a pickle, a truncated file or a bad description -- before torch loads,
and so that every field of the description is validated with a message naming it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core.choices import COLOR_MODES, DEFAULT_NORMALIZATION, NORMALIZATION_MODES

FORMAT = "napari-segkit-model"
#: 2 added ``color`` and ``normalization["invert"]`` (version 1 readers would ignore them
#: and misread colour images, so they are told to upgrade instead); 3 added
#: ``spatial_dims`` (3D models) and ``spacing``. A file is written with the lowest
#: version that holds what it uses, so plain 2D models stay readable by older versions.
FORMAT_VERSION = 3
META_KEY = "napari-segkit"
#: a header longer than this is not one of ours (ours are a few kB)
MAX_HEADER_BYTES = 100 * 2**20
PAD_MODES = ("reflect", "replicate", "constant")
#: sanity bounds for numbers in a description (a tile of 10^6 pixels would allocate GBs)
MAX_TILE = 16384
MAX_CHANNELS = 4096


class ModelFileError(ValueError):
    """A file is not a readable napari-segkit model (foreign, truncated, unsafe or invalid)."""


@dataclass
class ModelInfo:
    """Everything a model file says besides its weights.

    Attributes
    ----------
    arch, options, in_channels, num_classes, pad_mode
        Recreate the network with :func:`napari_segkit.models.build_model`.
    class_names : list of str
        One per class (index = class id; for a binary model: background, foreground).
    class_colors : list of str
        ``"#rrggbb"`` per class.
    color : {"as-is", "gray", "rgb"}
        How an image's channels become the model's (see
        :class:`napari_segkit.core.volume.Volume`): "gray" models read RGB(A) images as
        their luminance, "rgb" models read gray images as three equal channels.
    normalization : dict
        ``{"mode": "percentile", "low": 1.0, "high": 99.8}`` (per image; ``"invert":
        "auto"`` flips bright-background images to dark-background ones), or
        ``{"mode": "meanstd"}`` (zero mean, unit variance per image; ``"per_channel"``,
        ``"eps"``), ``{"mode": "fixed", "mean": [...], "std": [...]}``, or
        ``{"mode": "none"}``.
    tile_size : list of int
        ``[H, W]`` the model was trained for (``[D, H, W]`` for a 3D model).
    overlap : float
        Fraction of a tile shared with its neighbours when predicting.
    training : dict
        Provenance: data, loss, epochs, metrics, seed, ...
    versions : dict
        Package versions at save time.
    spatial_dims : {2, 3}
        2D models see planes (a stack is predicted plane by plane); 3D models see
        ``(D, H, W)`` volumes.
    spacing : list of float, optional
        The voxel (or pixel) spacing the model was trained at: ``[z, y, x]`` (``[y, x]``
        for 2D), in the images' unit; None when unknown.
    """

    arch: str
    options: dict
    in_channels: int
    num_classes: int
    pad_mode: str = "reflect"
    class_names: list = field(default_factory=list)
    class_colors: list = field(default_factory=list)
    normalization: dict = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    color: str = "as-is"
    tile_size: list = field(default_factory=lambda: [256, 256])
    overlap: float = 0.25
    training: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    spatial_dims: int = 2
    spacing: list | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def splits_touching(self) -> bool:
        """Trained on background / interior / boundary targets (its instances: watershed)."""
        return self.training.get("target") == "boundary"

    def instance_options(self, *, scale: float = 1.0) -> dict:
        """Keyword arguments of ``instances_from_prediction`` for this model: the watershed
        and volumetric (3D models) switches, plus the threshold, seed threshold and minimum size tuned after training
        when the file records them (``training["postprocessing"]``).

        `scale` is the magnification an image was predicted at
        (:func:`~napari_segkit.tiling.objects.predict_objects`): the minimum size, tuned in
        the model's pixels, becomes ``min_size / scale**2`` of the image's pixels."""
        tuned = self.training.get("postprocessing", {})
        options = {k: tuned[k] for k in ("threshold", "seed_threshold", "min_size") if k in tuned}
        if "min_size" in options and scale != 1.0:
            options["min_size"] = int(round(options["min_size"] / scale**2))
        # a 3D model's objects are 3D: labelled (or flooded) in the volume, not per plane
        return {"watershed": self.splits_touching, "volumetric": self.spatial_dims == 3, **options}

    def trained_diameters(self) -> tuple[float, float] | None:
        """``(low, high)``: the object diameters (pixels) the model was trained on -- the
        interquartile range of its training images' median diameters, recorded as
        ``training["object_diameter"]`` for models trained on instances
        (:func:`napari_segkit.core.object_size.diameter_range`); None when not recorded."""
        recorded = self.training.get("object_diameter")
        if not recorded:
            return None
        try:
            low, high = float(recorded["low"]), float(recorded["high"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(
                f"the model's training['object_diameter'] must hold numbers 'low' and 'high', "
                f"got {recorded!r}"
            ) from None
        if not (0 < low <= high):
            raise ModelFileError(
                f"the model's object diameter range must satisfy 0 < low <= high, got {recorded!r}"
            )
        return low, high


def file_kind(path: str | os.PathLike) -> str:
    """What a model file is, judged by its structure (never by unpickling it).

    Parameters
    ----------
    path : path
        An existing file.

    Returns
    -------
    {"safetensors", "pickle", "zip", "unknown"}
        "safetensors": an 8-byte little-endian header length N that fits in the file,
        followed by a JSON object (``{``). "zip": a zip archive (``torch.save``'s
        default format). "pickle": a pickle stream (protocol 2-5 header ``0x80 0x02-0x05``).
        The safetensors test comes first: a valid file whose header length happens to
        start with byte 0x80 (about 1 in 32, headers are padded to 8 bytes) is not a
        pickle.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9:
        header_length = int.from_bytes(head[:8], "little")
        if 2 <= header_length <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    return "unknown"


def read_header(path: str | os.PathLike) -> tuple[dict, dict]:
    """The tensor table and metadata of a safetensors model file, without torch.

    Parameters
    ----------
    path : path

    Returns
    -------
    tensors : dict
        ``{name: {"dtype": str, "shape": [int, ...], "data_offsets": [begin, end]}}``.
    metadata : dict
        The header's ``__metadata__`` (string values).

    Raises
    ------
    FileNotFoundError
    ModelFileError
        A pickle / torch.save file (refused, never unpickled), or a file that is not
        a complete safetensors file (truncated, foreign).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at '{path}'")
    kind = file_kind(path)
    if kind in ("pickle", "zip"):
        raise ModelFileError(
            f"'{path}' is a pickle / torch.save file. napari-segkit does not unpickle model "
            "files, because unpickling can run arbitrary code. Re-save it as a napari-segkit "
            "model (safetensors) from a trusted environment."
        )
    size = path.stat().st_size
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if kind != "safetensors" or length > MAX_HEADER_BYTES:
            raise ModelFileError(
                f"'{path}' is not a readable model file (truncated or foreign): no safetensors "
                "header at its start"
            )
        try:
            header = json.loads(f.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelFileError(
                f"'{path}' is not a readable model file (truncated or foreign): its "
                f"header is not valid JSON ({err})"
            ) from None
    if not isinstance(header, dict):
        raise ModelFileError(f"'{path}' is not a readable model file: its header is not a dict")
    metadata = header.pop("__metadata__", None) or {}
    end = 0
    for name, entry in header.items():
        try:
            begin, stop = (int(v) for v in entry["data_offsets"])
            shape = [int(s) for s in entry["shape"]]
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(
                f"'{path}' is not a readable model file: tensor {name!r} is malformed"
            ) from None
        if min(shape, default=1) < 0 or begin > stop:
            raise ModelFileError(f"'{path}': tensor {name!r} has a negative size")
        end = max(end, stop)
    if 8 + length + end > size:
        raise ModelFileError(
            f"'{path}' is truncated: its header describes {8 + length + end} bytes but the "
            f"file has {size}"
        )
    return header, metadata


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read and check only the description of a model file (no weights, no code, no torch).

    Parameters
    ----------
    path : path
        A model file written by :func:`~napari_segkit.models.save_model`.

    Returns
    -------
    ModelInfo

    Raises
    ------
    FileNotFoundError
    ModelFileError
        A pickle / torch.save file (refused, never unpickled), a truncated or foreign
        file, or a description with a missing or invalid field (named).

    Notes
    -----
    Exchanged models -- a bioimage.io package, or our ``.onnx`` / TorchScript exports
    -- are described too (see :mod:`napari_segkit.models.imports`).
    """
    from .imports import exchange_kind, read_exchanged_info

    if exchange_kind(path):
        return read_exchanged_info(path)
    _, metadata = read_header(path)
    if META_KEY not in metadata:
        raise ModelFileError(
            f"'{path}' is a safetensors file but not a napari-segkit model "
            "(no napari-segkit metadata)"
        )
    try:
        raw = json.loads(metadata[META_KEY])
    except (TypeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"'{path}' has invalid napari-segkit metadata: {err}") from None
    return description_from_dict(raw, path)


def description_from_dict(raw, path: str | os.PathLike = "<model file>") -> ModelInfo:
    """Check every field of a model description and build its :class:`ModelInfo`.

    Parameters
    ----------
    raw : dict
        The decoded JSON description.
    path : path or str
        Named in error messages.

    Returns
    -------
    ModelInfo

    Raises
    ------
    ModelFileError
        Naming the field, its value and what is expected.
    """
    if not isinstance(raw, dict):
        raise ModelFileError(f"'{path}': the model description must be a JSON object")

    def bad(name, expected):
        value = raw.get(name)
        shown = repr(value) if len(repr(value)) < 80 else repr(value)[:77] + "..."
        raise ModelFileError(f"'{path}': model file field {name!r} = {shown}: {expected}")

    if raw.get("format") != FORMAT:
        bad("format", f"expected {FORMAT!r}")
    version = raw.get("format_version")
    if not _is_int(version) or version < 1:
        bad("format_version", "expected an integer >= 1")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"'{path}' has model format version {version}; this napari-segkit reads up to "
            f"{FORMAT_VERSION}: upgrade napari-segkit"
        )
    known = {f.name for f in fields(ModelInfo)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ModelFileError(f"'{path}': unknown model file field(s) {unknown}")
    for name in ("arch", "options", "in_channels", "num_classes"):
        if name not in raw:
            raise ModelFileError(f"'{path}': the model description has no {name!r} field")
    if not isinstance(raw["arch"], str) or not raw["arch"]:
        bad("arch", "expected an architecture name")
    if not isinstance(raw["options"], dict) or not all(isinstance(k, str) for k in raw["options"]):
        bad("options", "expected a JSON object of architecture options")
    for name in ("in_channels", "num_classes"):
        if not _is_int(raw[name]) or not 1 <= raw[name] <= MAX_CHANNELS:
            bad(name, f"expected an integer from 1 to {MAX_CHANNELS}")
    if raw.get("pad_mode", "reflect") not in PAD_MODES:
        bad("pad_mode", f"expected one of {', '.join(PAD_MODES)}")
    for name in ("class_names", "class_colors"):
        value = raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            bad(name, "expected a list of strings")
    if not all(re.fullmatch(r"#[0-9a-fA-F]{6}", c) for c in raw.get("class_colors", [])):
        bad("class_colors", 'expected colours as "#rrggbb"')
    _check_normalization(raw, bad)
    color = raw.get("color", "as-is")
    if color not in COLOR_MODES:
        bad("color", f"expected one of {', '.join(COLOR_MODES)}")
    if color != "as-is" and raw["in_channels"] != {"gray": 1, "rgb": 3}[color]:
        bad("color", f"{color!r} needs {1 if color == 'gray' else 3} input channel(s)")
    tile = raw.get("tile_size", [256, 256])
    dims = raw.get("spatial_dims", 2)
    if (
        not isinstance(tile, list)
        or len(tile) != (3 if dims == 3 else 2)
        or not all(_is_int(t) and 1 <= t <= MAX_TILE for t in tile)
    ):
        shape = "[depth, height, width]" if dims == 3 else "[height, width]"
        bad("tile_size", f"expected {shape}, integers from 1 to {MAX_TILE}")
    overlap = raw.get("overlap", 0.25)
    if not _is_number(overlap) or not 0 <= overlap < 1:
        bad("overlap", "expected a number in [0, 1)")
    for name in ("training", "versions"):
        if not isinstance(raw.get(name, {}), dict):
            bad(name, "expected a JSON object")
    dims = raw.get("spatial_dims", 2)
    if dims not in (2, 3) or isinstance(dims, bool):
        bad("spatial_dims", "expected 2 or 3")
    spacing = raw.get("spacing")
    if spacing is not None and (
        not isinstance(spacing, list)
        or len(spacing) not in (2, 3)
        or not all(_is_number(v) and v > 0 for v in spacing)
    ):
        bad("spacing", "expected [z, y, x] (or [y, x]) positive numbers, or null")
    return ModelInfo(**raw)


def _check_normalization(raw: dict, bad) -> None:
    norm = raw.get("normalization", DEFAULT_NORMALIZATION)
    if not isinstance(norm, dict) or norm.get("mode") not in NORMALIZATION_MODES:
        bad("normalization", f"expected {{'mode': one of {', '.join(NORMALIZATION_MODES)}, ...}}")
    if norm["mode"] == "fixed":
        for key in ("mean", "std"):
            value = norm.get(key)
            values = value if isinstance(value, list) else [value]
            if not values or not all(_is_number(v) for v in values):
                bad("normalization", f"mode 'fixed' needs {key!r}: a number or list of numbers")
            if key == "std" and not all(v > 0 for v in values):
                bad("normalization", "mode 'fixed' needs positive 'std' values")
    if norm["mode"] == "meanstd":
        if norm.get("per_channel", False) not in (False, True):
            bad("normalization", "mode 'meanstd' needs 'per_channel' true or false")
        if not _is_number(norm.get("eps", 1e-6)) or norm.get("eps", 1e-6) < 0:
            bad("normalization", "mode 'meanstd' needs 'eps' >= 0")
    if norm["mode"] == "percentile":
        low, high = norm.get("low", 1.0), norm.get("high", 99.8)
        if not (_is_number(low) and _is_number(high) and 0 <= low < high <= 100):
            bad("normalization", "mode 'percentile' needs 0 <= low < high <= 100")
        if norm.get("invert", False) not in (False, True, "auto"):
            bad("normalization", "'invert' must be false, true or 'auto'")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_KEY",
    "ModelFileError",
    "ModelInfo",
    "description_from_dict",
    "file_kind",
    "read_header",
    "read_model_info",
]
