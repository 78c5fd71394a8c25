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
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import torch

from ..core.atomic import atomic_path
from .info import (
    FORMAT_VERSION,
    META_KEY,
    ModelFileError,
    ModelInfo,
    description_from_dict,
    read_header,
    read_model_info,
)
from .wrapper import SegmentationModel


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
    color: str = "as-is",
    tile_size=None,
    overlap: float | None = None,
    training: dict | None = None,
    spacing=None,
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
    normalization, color, tile_size, overlap, training, spacing : optional
        See :class:`ModelInfo` (a 3D model's tile size is ``[D, H, W]``).

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
    info.color = color
    info.spatial_dims = int(getattr(model, "spatial_dims", 2))
    info.spacing = [float(v) for v in spacing] if spacing is not None else None
    if info.spatial_dims == 3:
        info.tile_size = [64, 128, 128]
    # a file only a newer reader understands says so (older ones then ask for an upgrade
    # instead of reading colour images or 3D models wrongly); plain models stay version 1
    if info.spatial_dims == 3 or info.spacing is not None:
        info.format_version = FORMAT_VERSION
    elif color != "as-is" or info.normalization.get("invert", False):
        info.format_version = 2
    else:
        info.format_version = 1
    description_from_dict(asdict(info), path)  # a bad colour mode / spec fails before writing
    if tile_size is not None:
        info.tile_size = [int(t) for t in tile_size]
        if len(info.tile_size) != (3 if info.spatial_dims == 3 else 2):
            raise ValueError(
                f"tile_size {tuple(info.tile_size)} for a {info.spatial_dims}D model: give "
                + ("(depth, height, width)" if info.spatial_dims == 3 else "(height, width)")
            )
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


def record_training(path: str | os.PathLike, **entries) -> Path:
    """Add or replace `entries` of a model file's ``training`` section, atomically.

    What a model learns after training goes here -- e.g. the post-processing tuned for it
    (``postprocessing={"threshold": ..., "seed_threshold": ..., "min_size": ...}``, which
    ``ModelInfo.instance_options`` hands to predict, the widgets and the CLI). The weights
    and every other field stay as they are, byte for byte: the tensors are copied without
    building the network.

    Parameters
    ----------
    path : path
        A model file written by :func:`save_model` (not an exchanged .onnx / bioimage.io
        model).
    **entries
        JSON-able values.

    Returns
    -------
    Path

    Raises
    ------
    ModelFileError
        Not a napari-segkit model file, or entries that make its description invalid
        (the file is left as it was).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    from .imports import exchange_kind

    path = Path(path)
    if kind := exchange_kind(path):
        raise ModelFileError(
            f"'{path}' is an exchanged model ({kind}); record into the "
            "napari-segkit .safetensors file it was exported from"
        )
    read_model_info(path)  # a napari-segkit model file, checked
    with safe_open(str(path), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 -- no iterator
        metadata = dict(f.metadata())
    raw = json.loads(metadata[META_KEY])
    raw["training"] = {**raw.get("training", {}), **_jsonable(entries)}
    description_from_dict(raw, path)  # still valid before anything is written
    metadata[META_KEY] = json.dumps(raw)
    mode = path.stat().st_mode & 0o777
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, mode)
    return path


def load_model(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", weights: str = "auto"
) -> ModelFile:
    """Load a model file written by :func:`save_model`; never executes code from the file.

    Also opens exchanged models (:mod:`napari_segkit.models.imports`): a local
    bioimage.io package (``.zip``, its folder or ``rdf.yaml``) and our ``.onnx`` /
    TorchScript exports -- the tile engine, the CLI and the widgets use them alike.

    Returns
    -------
    ModelFile
        ``.model`` (eval mode, on `device`) and ``.info`` (:class:`ModelInfo`).

    Parameters
    ----------
    path : path
    device : str or torch.device
    weights : {"auto", "pytorch_state_dict", "torchscript", "onnx"}
        Which weights of a bioimage.io package to load (see
        :func:`~napari_segkit.models.bioimageio.load_bioimageio`).

    Raises
    ------
    FileNotFoundError, ModelFileError
    """
    from safetensors.torch import load_model as st_load_model

    from .imports import exchange_kind, load_exchanged

    if exchange_kind(path):
        return load_exchanged(path, device=device, weights=weights)
    info = read_model_info(path)
    tensors, _ = read_header(path)
    # build on the meta device first (no memory) and compare with the stored weights, so
    # options that do not fit them (width=200000, depth=60) never allocate a network
    with torch.device("meta"):
        skeleton = _build(info, path)
    _check_shapes(skeleton, tensors, info, path)
    model = _build(info, path)
    try:
        st_load_model(model, str(path), strict=True)
    except Exception as err:
        raise ModelFileError(
            f"Weights in '{path}' do not match architecture {info.arch!r}: {err}"
        ) from err
    return ModelFile(model.to(device).eval(), info, str(path))


def _build(info: ModelInfo, path) -> SegmentationModel:
    from .registry import build_model

    try:
        return build_model(
            info.arch,
            info.in_channels,
            info.num_classes,
            pad_mode=info.pad_mode,
            **_restore(info.options),
        )
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise ModelFileError(
            f"'{path}': cannot build its architecture {info.arch!r}: {err}"
        ) from None


def _check_shapes(model, tensors: dict, info: ModelInfo, path) -> None:
    """Refuse a description whose network does not have the stored tensors' names and shapes."""
    expected = {name: list(t.shape) for name, t in model.state_dict().items()}
    stored = {name: entry["shape"] for name, entry in tensors.items()}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    differ = [n for n in sorted(set(expected) & set(stored)) if expected[n] != stored[n]]
    if missing or unexpected or differ:
        details = []
        if differ:
            n = differ[0]
            details.append(
                f"{len(differ)} tensor(s) differ in shape (e.g. {n}: file {stored[n]}, "
                f"architecture {expected[n]})"
            )
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise ModelFileError(
            f"Weights in '{path}' do not match its description (arch {info.arch!r}, options "
            f"{info.options}): {'; '.join(details)}"
        )


def _jsonable(value):
    """Options as JSON (tuples become lists; restored to tuples on load)."""
    return json.loads(json.dumps(value, default=str))


def _restore(options: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
