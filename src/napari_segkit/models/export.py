"""ONNX and TorchScript versions of a model, checked against PyTorch before they are kept.

What is exported is the network and its output activation: ``(N, C, H, W)`` float32
-> class probabilities ``(N, K, H, W)`` (softmax, or sigmoid for one output channel),
with N, H and W dynamic; H and W must be multiples of the architecture's ``divisor``
(a consumer pads to it, as :class:`~napari_segkit.models.SegmentationModel` does).
Probabilities rather than logits because that is what other tools display and what
bioimage.io packages describe.

Every export is run on random inputs of two sizes (batch 1 and 2, different H and W)
and compared with the PyTorch model; a difference above :data:`TOLERANCE` -- e.g. a
size baked into the graph by tracing -- refuses the export (:class:`ExportError`)
instead of writing a file that is wrong at other sizes.

ONNX uses torch's own exporters: the TorchScript-based one first (10-20x faster:
0.2-0.5 s for the bundled model and an SMP U-Net resnet18, against 3.5-6 s for
``torch.export``, which matters when ``predict(runtime="auto")`` converts on the fly),
then ``torch.export`` (dynamo) when the first fails or disagrees -- it is also the one
left when torch drops the older exporter. Architectures that neither exports with
dynamic sizes (checked by ``tests/models/test_export.py``): ``pspnet`` and ``upernet``
-- SMP's pyramid pooling (adaptive pooling whose bins depend on the input
size), which the exporters either reject or freeze at the example size. Their
TorchScript export works (scripting keeps the size computations). TorchScript uses
``torch.jit.trace`` (then ``torch.jit.script``), checked the same way.

The model's description (:class:`~napari_segkit.models.ModelInfo`) travels inside
the file (ONNX ``metadata_props``, TorchScript ``_extra_files``), so ``load_model``
reads both back like a model file.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.atomic import atomic_path
from .imports import TORCHSCRIPT_META
from .info import META_KEY

#: largest absolute difference from PyTorch's probabilities an export may show: about 10x
#: the float32 round-off measured over every registered architecture (at most 1.1e-4,
#: onnxruntime 1.32 on MAnet's spatial attention at 3 x 128 x 160, where PyTorch's own
#: float32 result is 7.7e-5 from float64 and onnxruntime's 3.3e-5)
TOLERANCE = 1e-3
#: ONNX opset written (onnxruntime >= 1.14 runs it)
OPSET = 18


class ExportError(ValueError):
    """A model cannot be exported to the requested format (the message says why)."""


class Probabilities(nn.Module):
    """A model's network followed by its activation: what an export contains.

    Shape: ``(N, C, H, W)`` -> ``(N, K, H, W)`` probabilities, H and W multiples of the
    model's ``divisor``.
    """

    def __init__(self, net: nn.Module, sigmoid: bool):
        super().__init__()
        self.net = net
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, 1)


def probabilities_module(model) -> Probabilities:
    """The exportable part of a :class:`~napari_segkit.models.SegmentationModel`.

    Parameters
    ----------
    model : SegmentationModel

    Returns
    -------
    Probabilities
        In eval mode, on the CPU, sharing the model's parameters.
    """
    return Probabilities(model.net, model.num_classes == 1).cpu().eval()


def example_sizes(divisor: int) -> list[tuple[int, int, int]]:
    """(batch, H, W) the exports are traced at (first) and checked at (all): multiples of
    `divisor`, at least 128 pixels (SMP's PAN pools 64x), H != W so that a transposed
    size would show.

    Parameters
    ----------
    divisor : int
        The network's in-plane size multiple.

    Returns
    -------
    list of (int, int, int)
    """
    base = max(128, 2 * divisor)
    base = -(-base // divisor) * divisor
    return [(1, base, base + divisor), (2, base + 2 * divisor, base + divisor)]


def _inputs(model, size, seed: int) -> torch.Tensor:
    """Random ``(N, C, H, W)`` input of `size` (n, h, w); a 3D model gets
    ``(N, C, D, H, W)`` with D two and three of its z multiples and H, W halved."""
    g = torch.Generator().manual_seed(seed)
    n, h, w = size
    if getattr(model, "spatial_dims", 2) == 3:
        dz, dy, dx = model.divisors
        d = dz * (2 + seed % 2)
        h, w = max(dy, h // 2 // dy * dy), max(dx, w // 2 // dx * dx) + dx * seed
        return torch.randn(n, model.in_channels, d, h, w, generator=g)
    return torch.randn(n, model.in_channels, h, w, generator=g)


def check_against_torch(model, run, label: str) -> float:
    """Run `run` (numpy in, numpy out) on the example sizes and compare with PyTorch.

    Parameters
    ----------
    model : SegmentationModel
    run : callable
        ``run(x: float32 ndarray (N, C, H, W)) -> ndarray (N, K, H, W)``.
    label : str
        Named in the error ("ONNX (dynamo)").

    Returns
    -------
    float
        The largest absolute difference seen.

    Raises
    ------
    ExportError
        A wrong shape or a difference above :data:`TOLERANCE`.
    """
    reference = probabilities_module(model)
    worst = 0.0
    for i, size in enumerate(example_sizes(model.divisor)):
        x = _inputs(model, size, seed=i)
        with torch.inference_mode():
            expected = reference(x).numpy()
        got = np.asarray(run(x.numpy()))
        if got.shape != expected.shape:
            raise ExportError(
                f"{label} of {model.arch!r} gives shape {got.shape} for input "
                f"{tuple(x.shape)}, PyTorch {expected.shape}: a size is frozen in the graph"
            )
        worst = max(worst, float(np.abs(got - expected).max()))
        if worst > TOLERANCE:
            raise ExportError(
                f"{label} of {model.arch!r} differs from PyTorch by {worst:.2g} (> "
                f"{TOLERANCE:g}) at input {tuple(x.shape)}: the exporter froze a size-"
                "dependent step of this architecture"
            )
    return worst


@contextlib.contextmanager
def _quiet():
    """torch's exporters print progress and deprecation notes; a library should not."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _onnx_bytes(module: Probabilities, x: torch.Tensor, dynamo: bool) -> bytes:
    f = io.BytesIO()
    names = {"input_names": ["input"], "output_names": ["probabilities"]}
    with _quiet():
        spatial = range(2, x.ndim)  # H, W (and D first, for a 3D network)
        if dynamo:
            dim = torch.export.Dim.DYNAMIC
            program = torch.onnx.export(
                module,
                (x,),
                dynamo=True,
                opset_version=OPSET,
                dynamic_shapes=({0: dim, **dict.fromkeys(spatial, dim)},),
                **names,
            )
            program.save(f)
        else:
            names_ = ("height", "width") if x.ndim == 4 else ("depth", "height", "width")
            axes = {0: "batch", **dict(zip(spatial, names_, strict=True))}
            torch.onnx.export(
                module,
                (x,),
                f,
                dynamo=False,
                opset_version=17,  # the TorchScript-based exporter's newest well-tested opset
                dynamic_axes={"input": axes, "probabilities": axes},
                **names,
            )
    return f.getvalue()


def onnx_session(data: bytes, threads: int | None = None):
    """An onnxruntime CPU session of a serialised graph, logging errors only.

    Parameters
    ----------
    data : bytes
    threads : int, optional
        Intra-op threads (the engine passes torch's count, for comparable runs).

    Returns
    -------
    onnxruntime.InferenceSession
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def to_onnx(model, info=None) -> tuple[bytes, float]:
    """The model as an ONNX graph (probabilities out, dynamic batch, height and width).

    Parameters
    ----------
    model : SegmentationModel
    info : ModelInfo, optional
        Stored in the graph's metadata (``napari-segkit``) so the file loads with its
        class names, normalisation and tile settings.

    Returns
    -------
    data : bytes
        A serialised ``onnx.ModelProto``.
    difference : float
        Largest absolute difference from PyTorch on the check inputs.

    Raises
    ------
    ExportError
        Neither exporter produced a graph that agrees with PyTorch (both reasons named).
    ImportError
        onnx / onnxruntime not installed (``pip install napari-segkit[exchange]``).
    """
    _require("onnx", "onnxruntime", "onnxscript")
    import onnx

    module = probabilities_module(model)
    x = _inputs(model, example_sizes(model.divisor)[0], seed=0)
    reasons = []
    for dynamo, label in ((False, "ONNX (TorchScript exporter)"), (True, "ONNX (torch.export)")):
        try:
            data = _onnx_bytes(module, x, dynamo)
            session = onnx_session(data)
            difference = check_against_torch(
                model, lambda a, s=session: s.run(None, {"input": a})[0], label
            )
        except ExportError as err:  # runs, but froze a size: the other exporter may not
            reasons.append(str(err))
            continue
        except Exception as err:  # noqa: BLE001 -- exporters raise any type; say which, why
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            reasons.append(f"{label} of {model.arch!r} failed: {type(err).__name__}: {first}")
            continue
        proto = onnx.load_from_string(data)
        _set_metadata(proto, model, info)
        return proto.SerializeToString(), difference
    raise ExportError(
        f"{model.arch!r} cannot be exported to ONNX with dynamic sizes: " + "; ".join(reasons)
    )


def _description(model, info) -> str:
    described = asdict(info) if info is not None else {}
    return json.dumps(
        {
            "info": described,
            "outputs": "probabilities",
            "divisor": int(model.divisor),
            "arch": model.arch,
            "in_channels": model.in_channels,
            "num_classes": model.num_classes,
        }
    )


def _set_metadata(proto, model, info) -> None:
    entry = proto.metadata_props.add()
    entry.key = META_KEY
    entry.value = _description(model, info)
    proto.producer_name = "napari-segkit"


def to_torchscript(model, info=None) -> tuple[torch.jit.ScriptModule, float]:
    """The model as TorchScript (probabilities out), traced or scripted, then checked.

    Parameters
    ----------
    model : SegmentationModel
    info : ModelInfo, optional
        Saved beside the graph (see :func:`save_torchscript`).

    Returns
    -------
    module : torch.jit.ScriptModule
    difference : float
        Largest absolute difference from PyTorch on the check inputs.

    Raises
    ------
    ExportError
        Neither tracing nor scripting agrees with PyTorch (reasons named).
    """
    module = probabilities_module(model)
    x = _inputs(model, example_sizes(model.divisor)[0], seed=0)
    reasons = []
    for label in ("TorchScript (trace)", "TorchScript (script)"):
        try:
            with _quiet():
                if label.endswith("(trace)"):
                    scripted = torch.jit.trace(module, x, check_trace=False)
                else:
                    scripted = torch.jit.script(module)
                scripted = scripted.eval()

            def run(a, s=scripted):
                with torch.inference_mode():
                    return s(torch.from_numpy(a)).numpy()

            difference = check_against_torch(model, run, label)
        except ExportError as err:
            reasons.append(str(err))
            continue
        except Exception as err:  # noqa: BLE001 -- tracing / scripting raise any type
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            reasons.append(f"{label} of {model.arch!r} failed: {type(err).__name__}: {first}")
            continue
        scripted._segkit_description = _description(model, info)  # written by the saver
        return scripted, difference
    raise ExportError(f"{model.arch!r} cannot be exported to TorchScript: " + "; ".join(reasons))


def save_onnx(model_file, path: str | os.PathLike) -> Path:
    """Write a loaded model file as ``.onnx`` (atomically); returns the path.

    Parameters
    ----------
    model_file : ModelFile
    path : path

    Returns
    -------
    Path
    """
    data, _ = to_onnx(model_file.model, model_file.info)
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return path


def save_torchscript(model_file, path: str | os.PathLike) -> Path:
    """Write a loaded model file as TorchScript (``.pt``, atomically); returns the path.

    Parameters
    ----------
    model_file : ModelFile
    path : path

    Returns
    -------
    Path
    """
    scripted, _ = to_torchscript(model_file.model, model_file.info)
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still read
        torch.jit.save(
            scripted, str(tmp), _extra_files={TORCHSCRIPT_META: scripted._segkit_description}
        )
    return path


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"{', '.join(missing)} not installed: model exchange needs "
            "`pip install napari-segkit[exchange]`"
        )
