"""Model exchange: ``export_model``, one entry point for every export format (the CLI and
the Export-model widget call it).

Importing needs nothing from here: ``napari_segkit.models.load_model`` opens bioimage.io
packages and ONNX / TorchScript exports itself. Exporting lives above ``models`` and
``tiling`` because a bioimage.io package's test output comes from our tile engine.
"""

from __future__ import annotations

import os
from pathlib import Path

#: formats :func:`export_model` writes, and the file suffix each is guessed from
EXPORT_FORMATS = {"bioimageio": ".zip", "onnx": ".onnx", "torchscript": ".pt"}


def export_model(model, out: str | os.PathLike, *, format: str | None = None, **options) -> Path:  # noqa: A002
    """Export a napari-segkit model as a bioimage.io package, ONNX or TorchScript.

    Parameters
    ----------
    model : path or ModelFile
        A model file (or a loaded one).
    out : path
        The file to write (atomically).
    format : {"bioimageio", "onnx", "torchscript"}, optional
        Default: from `out`'s suffix (``.zip``, ``.onnx``, ``.pt``).
    **options
        For "bioimageio": see :func:`~napari_segkit.exchange.bioimageio_package.export_bioimageio`
        (``authors``, ``license``, ``cite``, ``test_image``, ``name``, ...).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Unknown format, or a suffix that names none.
    ExportError, PackageError
        The architecture cannot be converted, or the package does not validate.

    Examples
    --------
    >>> export_model("nuclei.safetensors", "nuclei.zip")  # doctest: +SKIP
    """
    from ..models.export import save_onnx, save_torchscript
    from ..models.model_file import ModelFile, load_model
    from .bioimageio_package import export_bioimageio

    out = Path(out)
    fmt = format
    if fmt is None:
        fmt = next((f for f, s in EXPORT_FORMATS.items() if out.suffix.lower() == s), None)
        if fmt is None:
            raise ValueError(
                f"cannot tell the export format from '{out.name}': use a .zip (bioimage.io), "
                ".onnx or .pt (TorchScript) name, or pass format="
            )
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format={fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"Cannot export to '{out}': folder '{out.parent}' does not exist")
    if options and fmt != "bioimageio":
        raise ValueError(f"options {sorted(options)} apply to bioimage.io packages only")
    model_file = model if isinstance(model, ModelFile) else load_model(model)
    if fmt == "bioimageio":
        return export_bioimageio(model_file, out, **options)
    if not hasattr(model_file.model, "net"):
        raise ValueError(f"'{model_file.path}' is itself an exchanged model: export its source")
    return (save_onnx if fmt == "onnx" else save_torchscript)(model_file, out)


__all__ = ["EXPORT_FORMATS", "export_model"]
