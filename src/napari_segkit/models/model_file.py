"""The model file: one self-describing safetensors file.

Layout: the weights as safetensors tensors, and in the safetensors header's metadata
one JSON document under the key ``"napari-segkit"``::

    {"format": "napari-segkit-model", "format_version": 1,
     "arch": "unet", "options": {...}, "in_channels": 1, "num_classes": 2,
     "class_names": [...], "class_colors": [...], "normalization": {...},
     "tile_size": [256, 256], "overlap": 0.25, "training": {...}, "versions": {...}}

safetensors holds raw tensors only, so loading can never execute code (unlike a
pickle, which ``torch.save`` writes). A pickled file is refused with a clear error.
Saving writes a temporary file beside the target and renames it, so a crash never
leaves a half-written model under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from ..core.atomic import atomic_path
from ..core.choices import DEFAULT_NORMALIZATION
from .wrapper import SegmentationModel

FORMAT = "napari-segkit-model"
FORMAT_VERSION = 1
META_KEY = "napari-segkit"


class ModelFileError(ValueError):
    """A file is not a readable napari-segkit model (foreign, truncated, or unsafe)."""


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
    normalization : dict
        ``{"mode": "percentile", "low": 1.0, "high": 99.8}`` (per image), or
        ``{"mode": "fixed", "mean": [...], "std": [...]}``, or ``{"mode": "none"}``.
    tile_size : list of int
        ``[H, W]`` the model was trained for.
    overlap : float
        Fraction of a tile shared with its neighbours when predicting.
    training : dict
        Provenance: data, loss, epochs, metrics, seed, ...
    versions : dict
        Package versions at save time.
    """

    arch: str
    options: dict
    in_channels: int
    num_classes: int
    pad_mode: str = "reflect"
    class_names: list = field(default_factory=list)
    class_colors: list = field(default_factory=list)
    normalization: dict = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    tile_size: list = field(default_factory=lambda: [256, 256])
    overlap: float = 0.25
    training: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


@dataclass
class ModelFile:
    """A loaded model file: the network (in eval mode) and its :class:`ModelInfo`."""

    model: SegmentationModel
    info: ModelInfo
    path: str = ""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


DEFAULT_COLORS = [
    "#000000",
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
]


def _versions() -> dict:
    out = {}
    for dist in ("napari-segkit", "torch", "segmentation-models-pytorch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def save_model(
    path: str | os.PathLike,
    model: SegmentationModel,
    *,
    class_names=None,
    class_colors=None,
    normalization: dict | None = None,
    tile_size=None,
    overlap: float | None = None,
    training: dict | None = None,
) -> Path:
    """Save `model` and its description to one safetensors file, atomically.

    Parameters
    ----------
    path : str or Path
        Target file (``.safetensors`` suggested).
    model : SegmentationModel
        A model from :func:`napari_segkit.models.build_model` (or a loaded file's).
    class_names, class_colors : list of str, optional
        One per class (default ``class_0``..., a fixed palette). For ``num_classes == 1``
        give two names (background, foreground).
    normalization, tile_size, overlap, training : optional
        See :class:`ModelInfo`.

    Returns
    -------
    Path
    """
    from safetensors.torch import save_model as st_save_model

    if not isinstance(model, SegmentationModel):
        raise TypeError(
            "save_model needs a model from build_model() (it records the architecture); "
            f"got {type(model).__name__}"
        )
    n_names = max(model.num_classes, 2)
    class_names = (
        list(class_names) if class_names is not None else [f"class_{i}" for i in range(n_names)]
    )
    if len(class_names) != n_names:
        raise ValueError(
            f"{len(class_names)} class names for a model with {model.num_classes} "
            f"output classes (expected {n_names})"
        )
    class_colors = (
        list(class_colors)
        if class_colors is not None
        else [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(n_names)]
    )
    info = ModelInfo(
        arch=model.arch,
        options=_jsonable(model.options),
        in_channels=model.in_channels,
        num_classes=model.num_classes,
        pad_mode=model.pad_mode,
        class_names=class_names,
        class_colors=class_colors,
        training=_jsonable(training or {}),
        versions=_versions(),
    )
    if normalization is not None:
        info.normalization = dict(normalization)
    if tile_size is not None:
        info.tile_size = [int(t) for t in tile_size]
    if overlap is not None:
        info.overlap = float(overlap)
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"Cannot save model to '{path}': folder '{path.parent}' does not exist"
        )
    with atomic_path(path) as tmp:
        st_save_model(model, str(tmp), metadata={META_KEY: json.dumps(asdict(info))})
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors creates 0600 files; use normal permissions
    return path


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


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read only the description of a model file (no weights, no code).

    Parameters
    ----------
    path : path
        A model file written by :func:`save_model`.

    Returns
    -------
    ModelInfo

    Raises
    ------
    FileNotFoundError
    ModelFileError
        A pickle / torch.save file (refused, never unpickled), a truncated or foreign
        file, or invalid metadata.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at '{path}'")
    kind = file_kind(path)
    if kind in ("pickle", "zip"):
        raise ModelFileError(
            f"'{path}' is a pickle / torch.save file. napari-segkit does not unpickle model files, "
            "because unpickling can run arbitrary code. Re-save it as a napari-segkit model "
            "(safetensors) from a trusted environment."
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:
        raise ModelFileError(
            f"'{path}' is not a readable model file (truncated or foreign): {err}"
        ) from err
    if META_KEY not in meta:
        raise ModelFileError(
            f"'{path}' is a safetensors file but not a napari-segkit model "
            "(no napari-segkit metadata)"
        )
    try:
        raw = json.loads(meta[META_KEY])
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}")
        if int(raw.get("format_version", 0)) > FORMAT_VERSION:
            raise ModelFileError(
                f"'{path}' has model format version {raw['format_version']}; this "
                f"napari-segkit reads up to {FORMAT_VERSION}: upgrade napari-segkit"
            )
        return ModelInfo(**raw)
    except ModelFileError:
        raise
    except Exception as err:
        raise ModelFileError(f"'{path}' has invalid napari-segkit metadata: {err}") from err


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> ModelFile:
    """Load a model file written by :func:`save_model`; never executes code from the file.

    Returns
    -------
    ModelFile
        ``.model`` (eval mode, on `device`) and ``.info`` (:class:`ModelInfo`).

    Parameters
    ----------
    path : path
    device : str or torch.device

    Raises
    ------
    FileNotFoundError, ModelFileError
    """
    from safetensors.torch import load_model as st_load_model

    from .registry import build_model

    info = read_model_info(path)
    model = build_model(
        info.arch,
        info.in_channels,
        info.num_classes,
        pad_mode=info.pad_mode,
        **_restore(info.options),
    )
    try:
        st_load_model(model, str(path), strict=True)
    except Exception as err:
        raise ModelFileError(
            f"Weights in '{path}' do not match architecture {info.arch!r}: {err}"
        ) from err
    return ModelFile(model.to(device).eval(), info, str(path))


def _jsonable(value):
    """Options as JSON (tuples become lists; restored to tuples on load)."""
    return json.loads(json.dumps(value, default=str))


def _restore(options: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
