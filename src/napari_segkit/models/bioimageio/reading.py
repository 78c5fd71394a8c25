"""Reading a local bioimage.io package as a napari-segkit model (see the package docstring)."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

import torch

from ..info import ModelInfo, description_from_dict
from .common import CONFIG_KEY, PackageError


def _describe(path):
    """The package's validated description (bioimageio.spec), local files only."""
    from ..export import _require

    _require("bioimageio.spec")
    from bioimageio.spec import InvalidDescr, load_model_description

    path = Path(path)
    source = path
    if path.is_dir():
        source = next(path / n for n in ("rdf.yaml", "bioimageio.yaml") if (path / n).is_file())
    try:
        descr = load_model_description(source, perform_io_checks=False)
    except Exception as err:
        raise PackageError(f"'{path}' is not a readable bioimage.io model: {err}") from err
    if isinstance(descr, InvalidDescr):
        raise PackageError(f"'{path}' is not a valid bioimage.io model description")
    if descr.format_version.startswith("0.4"):
        from bioimageio.spec import update_format

        descr = update_format(descr)
    return descr


def _our_info(descr) -> ModelInfo | None:
    config = descr.config.model_extra or {}
    ours = config.get(CONFIG_KEY)
    if isinstance(ours, dict) and isinstance(ours.get("model_info"), dict):
        return description_from_dict(ours["model_info"], "bioimage.io package config")
    return None


def _axes(tensor) -> str:
    letters = {"batch": "b", "channel": "c"}
    out = ""
    for axis in tensor.axes:
        kind = axis.type
        if kind == "space":
            if str(axis.id) not in ("y", "x"):
                raise PackageError(
                    f"tensor {tensor.id!r} has space axis {axis.id!r}: only 2D (y, x) models "
                    "are supported (3D models come with napari-segkit's 3D support)"
                )
            out += str(axis.id)
        elif kind in letters:
            out += letters[kind]
        else:
            raise PackageError(f"tensor {tensor.id!r} has a {kind!r} axis; expected b, c, y, x")
    if "b" not in out:
        raise PackageError(f"tensor {tensor.id!r} has no batch axis")
    return out


def _size_rule(tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    mins, steps = [], []
    for a in "yx":
        axis = next(ax for ax in tensor.axes if str(ax.id) == a)
        size = axis.size
        if isinstance(size, int):
            mins.append(size)
            steps.append(0)
        elif hasattr(size, "step"):
            mins.append(int(size.min))
            steps.append(int(size.step))
        else:
            raise PackageError(f"input axis {a!r} has a size napari-segkit cannot follow: {size}")
    return tuple(mins), tuple(steps)


def _channels(tensor) -> tuple[int, list[str]]:
    for axis in tensor.axes:
        if axis.type == "channel":
            return len(axis.channel_names), [str(n) for n in axis.channel_names]
    return 1, []


def _normalization(tensor) -> dict:
    """The package's pre-processing as our normalisation spec (or a clear refusal)."""
    norm: dict = {"mode": "none"}
    for op in tensor.preprocessing:
        kind = op.id
        kwargs = getattr(op, "kwargs", None)
        if kind == "ensure_dtype":
            continue
        if norm["mode"] != "none" and kind != "scale_linear":
            raise PackageError(f"input pre-processing chains {kind!r} after another step")
        if kind == "scale_range" and kwargs.reference_tensor is None:
            norm = {
                "mode": "percentile",
                "low": float(kwargs.min_percentile),
                "high": float(kwargs.max_percentile),
            }
        elif kind == "zero_mean_unit_variance":
            axes = [str(a) for a in (kwargs.axes or [])]
            norm = {
                "mode": "meanstd",
                "per_channel": bool(axes) and "channel" not in axes,
                "eps": float(kwargs.eps),
            }
        elif kind == "fixed_zero_mean_unit_variance":
            mean, std = kwargs.mean, kwargs.std
            norm = {
                "mode": "fixed",
                "mean": list(mean) if isinstance(mean, list) else float(mean),
                "std": list(std) if isinstance(std, list) else float(std),
            }
        elif kind == "scale_linear" and norm["mode"] == "none":
            gain, offset = _scalar(kwargs.gain), _scalar(kwargs.offset)
            norm = {"mode": "fixed", "mean": -offset / gain, "std": 1.0 / gain}
        elif (
            kind == "scale_linear"
            and norm["mode"] == "percentile"
            and (_scalar(kwargs.gain), _scalar(kwargs.offset)) == (-1.0, 1.0)
        ):
            norm["invert"] = True
        else:
            raise PackageError(
                f"input pre-processing {kind!r} ({kwargs}) is not supported by napari-segkit "
                "(supported: scale_range, zero_mean_unit_variance, "
                "fixed_zero_mean_unit_variance, scale_linear, ensure_dtype)"
            )
    return norm


def _scalar(value) -> float:
    values = value if isinstance(value, list) else [value]
    if len(set(values)) != 1:
        raise PackageError(f"per-channel scale_linear {values} is not supported")
    return float(values[0])


def _outputs_kind(tensor, num_classes: int) -> str:
    """What the network returns, as :class:`ExchangedModel`'s ``outputs``."""
    kinds = [op.id for op in tensor.postprocessing]
    for kind in kinds:
        if kind not in ("sigmoid", "softmax", "binarize", "ensure_dtype"):
            raise PackageError(
                f"output post-processing {kind!r} is not supported by napari-segkit "
                "(supported: sigmoid, softmax, binarize -- left to our thresholds)"
            )
    if "softmax" in kinds or ("sigmoid" in kinds and num_classes == 1):
        return "logits"  # the engine's own softmax / sigmoid is the package's
    if "sigmoid" in kinds:
        return "sigmoid"  # one sigmoid per channel (several labels), applied by the module
    low, high = getattr(tensor.data, "range", (None, None))
    if low is not None and high is not None and low >= 0 and high <= 1:
        return "probabilities"
    return "logits"


def _weights_file(descr, fmt: str, root: Path) -> Path:
    entry = getattr(descr.weights, fmt)
    source = entry.source
    if str(source).startswith(("http://", "https://")) and "://" in str(source):
        raise PackageError(
            f"the package's {fmt} weights are a URL ({source}); napari-segkit downloads "
            "nothing at run time: download the package with its weights first"
        )
    path = root / str(getattr(source, "path", source))
    if not path.is_file():
        raise PackageError(f"the package's {fmt} weights file '{path.name}' is missing")
    return path


def load_bioimageio(path, *, weights: str = "auto", device="cpu"):
    """Load a local bioimage.io model package as a :class:`~napari_segkit.models.ModelFile`.

    Parameters
    ----------
    path : path
        A package ``.zip``, its unpacked folder, or its ``rdf.yaml``.
    weights : {"auto", "pytorch_state_dict", "torchscript", "onnx"}
        "auto": our own architecture's state dict when the package is napari-segkit's,
        else TorchScript, else ONNX.
    device : str or torch.device
        For PyTorch / TorchScript weights (ONNX runs on the CPU).

    Returns
    -------
    ModelFile
        ``.model`` (a SegmentationModel, or an ExchangedModel for TorchScript / ONNX),
        ``.info`` (class names, normalisation, tile size and overlap from the package).

    Raises
    ------
    PackageError
        Invalid package, weights that would run code (pickles / architecture source)
        or need another framework, URLs, unsupported pre- or post-processing (named).
    """
    from ..exchanged import ExchangedModel, digest_of, jit_load
    from ..model_file import ModelFile

    path = Path(path)
    descr = _describe(path)
    root, cleanup = _unpacked(path)
    try:
        if len(descr.inputs) != 1 or len(descr.outputs) < 1:
            raise PackageError(
                f"'{path}': napari-segkit runs models with one input tensor "
                f"(this one has {len(descr.inputs)})"
            )
        tensor_in, tensor_out = descr.inputs[0], descr.outputs[0]
        ours = _our_info(descr)
        available = [
            f
            for f in ("pytorch_state_dict", "torchscript", "onnx", "keras_hdf5", "keras_v3")
            + ("tensorflow_saved_model_bundle", "tensorflow_js")
            if getattr(descr.weights, f, None) is not None
        ]
        fmt = _choose_weights(weights, available, ours is not None, path)
        weights_path = _weights_file(descr, fmt, root)
        if fmt == "pytorch_state_dict":
            return _load_our_state_dict(weights_path, ours, path, device)
        axes_in, axes_out = _axes(tensor_in), _axes(tensor_out)
        if axes_out.replace("c", "") != axes_in.replace("c", ""):
            raise PackageError(
                f"'{path}': output axes {axes_out!r} are not ordered like the input's {axes_in!r}"
            )
        min_size, step = _size_rule(tensor_in)
        in_channels, _ = _channels(tensor_in)
        num_classes, class_names = _channels(tensor_out)
        outputs = "probabilities" if ours is not None else _outputs_kind(tensor_out, num_classes)
        data = weights_path.read_bytes()
        if fmt == "onnx":
            from ..export import onnx_session

            network = onnx_session(data, threads=torch.get_num_threads())
        else:
            network = jit_load(weights_path)
        module = ExchangedModel(
            network,
            in_channels=in_channels,
            num_classes=num_classes,
            arch=f"bioimageio:{fmt}",
            min_size=min_size,
            step=step,
            axes=axes_in if "c" in axes_in else "byx",
            outputs=outputs,
            digest=digest_of(data),
        )
        info = ours or _foreign_info(descr, tensor_in, tensor_out, in_channels, class_names)
        info = _with_source(info, fmt, descr)
        return ModelFile(module.to(device).eval(), info, str(path))
    finally:
        cleanup()


def package_info(path) -> ModelInfo:
    """What a bioimage.io package says, as a :class:`ModelInfo` (no weights loaded).

    Parameters
    ----------
    path : path
        A package ``.zip``, its folder or its ``rdf.yaml``.

    Returns
    -------
    ModelInfo
    """
    descr = _describe(path)
    ours = _our_info(descr)
    if ours is not None:
        return ours
    tensor_in, tensor_out = descr.inputs[0], descr.outputs[0]
    in_channels, _ = _channels(tensor_in)
    _, class_names = _channels(tensor_out)
    return _foreign_info(descr, tensor_in, tensor_out, in_channels, class_names)


def _choose_weights(weights: str, available: list[str], ours: bool, path) -> str:
    safe = ["torchscript", "onnx"]
    if ours:
        safe.insert(0, "pytorch_state_dict")
    if weights != "auto":
        if weights not in ("pytorch_state_dict", "torchscript", "onnx"):
            raise PackageError(
                f"weights={weights!r}: choose auto, pytorch_state_dict, torchscript or onnx"
            )
        if weights not in available:
            raise PackageError(f"'{path}' has no {weights} weights (it has {available})")
        if weights not in safe:
            raise PackageError(_unsafe_message(path, available))
        return weights
    for fmt in safe:
        if fmt in available:
            return fmt
    raise PackageError(_unsafe_message(path, available))


def _unsafe_message(path, available) -> str:
    return (
        f"'{path}' has weights in {', '.join(available) or 'no format'}: napari-segkit loads "
        "TorchScript and ONNX weights, and pytorch_state_dict weights of its own "
        "architectures only -- a foreign state dict needs the package's Python source to "
        "be run (and Keras / TensorFlow weights another framework). Convert the model to "
        "TorchScript or ONNX in a trusted environment."
    )


def _load_our_state_dict(weights_path: Path, info: ModelInfo, path, device):
    from ..model_file import ModelFile, _build, _check_shapes

    try:
        # weights_only: tensors and plain containers only; any other pickled object
        # (code) is refused by torch's restricted unpickler, never executed
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- UnpicklingError, RuntimeError, EOFError...
        raise PackageError(
            f"'{path}': its pytorch_state_dict weights are not a plain state dict (refused "
            f"without unpickling code): {type(err).__name__}: {str(err).splitlines()[0]}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PackageError(f"'{path}': its pytorch_state_dict weights are not a state dict")
    with torch.device("meta"):
        skeleton = _build(info, path)
    _check_shapes(skeleton, {k: {"shape": list(v.shape)} for k, v in state.items()}, info, path)
    model = _build(info, path)
    model.load_state_dict(state, strict=True)
    return ModelFile(model.to(device).eval(), info, str(path))


def _foreign_info(descr, tensor_in, tensor_out, in_channels, class_names) -> ModelInfo:
    """Our description of a foreign package: classes, normalisation, tile and overlap."""
    k = max(len(class_names), 1)
    if k == 1:  # one sigmoid channel: background / that channel
        names = ["background", class_names[0] if class_names else "foreground"]
    else:
        names = class_names
    min_size, step = _size_rule(tensor_in)
    tile = [_tile_for(min_size[i], step[i], 256) for i in range(2)]
    halo = max((getattr(ax, "halo", 0) or 0 for ax in tensor_out.axes), default=0)
    # neighbouring tiles must share at least both halos (the halo is not trusted)
    overlap = min(0.5, max(0.25, 2 * halo / min(tile) + 0.05))
    return ModelInfo(
        arch="bioimageio",
        options={},
        in_channels=in_channels,
        num_classes=k,
        class_names=names,
        class_colors=_colors(len(names)),
        normalization=_normalization(tensor_in),
        tile_size=tile,
        overlap=round(overlap, 3),
        training={
            "source": "bioimage.io package",
            "name": descr.name,
            "description": descr.description,
            "authors": [a.name for a in descr.authors],
            "license": str(descr.license),
        },
    )


def _tile_for(minimum: int, step: int, target: int) -> int:
    if step == 0:
        return minimum
    return max(minimum, minimum + ((target - minimum) // step) * step)


def _colors(n: int) -> list[str]:
    from ..model_file import DEFAULT_COLORS

    return [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(n)]


def _with_source(info: ModelInfo, fmt: str, descr) -> ModelInfo:
    """`info` recording which of the package's weights were loaded."""
    training = {**info.training, "bioimageio_weights": fmt, "bioimageio_name": descr.name}
    return replace(info, training=training)


def _unpacked(path: Path):
    """(folder holding the package's files, cleanup) -- a zip is extracted to a temp dir."""
    if path.is_dir():
        return path, lambda: None
    if path.suffix.lower() == ".zip":
        work = Path(tempfile.mkdtemp(prefix="segkit-package-"))
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():  # no absolute paths or .. (zip slip)
                target = (work / member).resolve()
                if not str(target).startswith(str(work.resolve())):
                    raise PackageError(f"'{path}' has an unsafe member name {member!r}")
            z.extractall(work)
        return work, lambda: shutil.rmtree(work, ignore_errors=True)
    return path.parent, lambda: None
