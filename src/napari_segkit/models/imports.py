"""Opening exchanged model files: our ``.onnx`` / TorchScript exports and bioimage.io
packages, behind :func:`~napari_segkit.models.load_model` and ``read_model_info``.

Which loader a path needs is judged from the file (never by unpickling it): a
bioimage.io package (zip / folder / rdf.yaml), an ONNX graph (``.onnx``), or a
TorchScript archive carrying our description (``extra/napari-segkit.json``). Anything
else is a model file (safetensors) or is refused by its reader.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from .info import ModelFileError, ModelInfo, description_from_dict

TORCHSCRIPT_META = "napari-segkit.json"


def is_package(path) -> bool:
    """Whether `path` names a bioimage.io package: a ``.zip`` with an rdf, its folder, or
    its ``rdf.yaml`` / ``bioimageio.yaml``.

    Parameters
    ----------
    path : path

    Returns
    -------
    bool
    """
    path = Path(path)
    if path.is_dir():
        return any((path / n).is_file() for n in ("rdf.yaml", "bioimageio.yaml"))
    if path.name.endswith(("rdf.yaml", "bioimageio.yaml")):
        return True
    if path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return any(n.endswith(("rdf.yaml", "bioimageio.yaml")) for n in z.namelist())
    return False


def exchange_kind(path) -> str | None:
    """``"bioimageio"``, ``"onnx"``, ``"torchscript"`` or None (a model file, or not ours).

    Parameters
    ----------
    path : path

    Returns
    -------
    str or None
    """
    path = Path(path)
    if not path.exists():
        return None
    if is_package(path):
        return "bioimageio"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.is_file() and zipfile.is_zipfile(path) and _torchscript_member(path):
        return "torchscript"
    return None


def _torchscript_member(path: Path) -> str | None:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if not any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return None  # torch.save's zip (a pickle), not TorchScript
    return next((n for n in names if n.endswith(f"extra/{TORCHSCRIPT_META}")), None)


def _described(raw: str, path) -> tuple[ModelInfo, dict]:
    try:
        meta = json.loads(raw)
        info = description_from_dict(meta["info"], path) if meta.get("info") else None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelFileError(
            f"'{path}': its napari-segkit description is unreadable: {err}"
        ) from None
    if info is None:
        info = ModelInfo(
            arch=meta["arch"],
            options={},
            in_channels=meta["in_channels"],
            num_classes=meta["num_classes"],
            class_names=[f"class_{i}" for i in range(max(meta["num_classes"], 2))],
        )
    return info, meta


def _onnx_description(path: Path, session) -> tuple[ModelInfo, dict]:
    from .info import META_KEY

    raw = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if raw is None:
        raise ModelFileError(
            f"'{path}' is an ONNX graph without napari-segkit's description, so its axes, "
            "normalisation and classes are unknown: wrap it in a bioimage.io package (which "
            "describes them) or export it with `segkit export`"
        )
    return _described(raw, path)


def read_exchanged_info(path) -> ModelInfo:
    """The :class:`ModelInfo` of an exchanged file (package, ONNX or TorchScript export).

    Parameters
    ----------
    path : path

    Returns
    -------
    ModelInfo
    """
    kind = exchange_kind(path)
    path = Path(path)
    if kind == "bioimageio":
        from .bioimageio import package_info

        return package_info(path)
    if kind == "onnx":
        from .export import onnx_session

        return _onnx_description(path, onnx_session(path.read_bytes()))[0]
    if kind == "torchscript":
        with zipfile.ZipFile(path) as z:
            return _described(z.read(_torchscript_member(path)).decode(), path)[0]
    raise ModelFileError(f"'{path}' is not an exchanged model file")


def load_exchanged(path, *, device="cpu", weights: str = "auto"):
    """Load a package, ``.onnx`` or TorchScript export as a ModelFile.

    Parameters
    ----------
    path : path
    device : str or torch.device
        ONNX graphs run on the CPU (onnxruntime); TorchScript on `device`.
    weights : str
        For packages: see :func:`~napari_segkit.models.bioimageio.load_bioimageio`.

    Returns
    -------
    ModelFile
    """
    import torch

    from .exchanged import ExchangedModel, digest_of
    from .model_file import ModelFile

    kind = exchange_kind(path)
    path = Path(path)
    if kind == "bioimageio":
        from .bioimageio import load_bioimageio

        return load_bioimageio(path, weights=weights, device=device)
    data = path.read_bytes()
    if kind == "onnx":
        from .export import onnx_session

        network = onnx_session(data, threads=torch.get_num_threads())
        info, meta = _onnx_description(path, network)
    elif kind == "torchscript":
        from .exchanged import jit_load

        info = read_exchanged_info(path)
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read(_torchscript_member(path)))
        network = jit_load(path)
    else:
        raise ModelFileError(f"'{path}' is not an exchanged model file")
    if info.spatial_dims == 3:
        raise ModelFileError(
            f"'{path}' is a 3D model export: run 3D models from their .safetensors file "
            "(exported 3D graphs do not load here yet)"
        )
    divisor = int(meta.get("divisor", 1))
    module = ExchangedModel(
        network,
        in_channels=info.in_channels,
        num_classes=info.num_classes,
        arch=f"{kind}:{info.arch}",
        min_size=(divisor, divisor),
        step=(divisor, divisor),
        outputs=meta.get("outputs", "probabilities"),
        digest=digest_of(data),
        pad_mode=info.pad_mode,
    )
    return ModelFile(module.to(device).eval(), info, str(path))
