"""Checks on output paths before long work starts (pure pathlib; no numpy, no torch).

Prediction outputs (zarr folders written block by block) and training's model files
are checked here, so a wrong path is reported before any model loads: an output
that would clobber its own input, an existing file that is not ours, a missing or
read-only folder, a model file that would replace the one being fine-tuned.
"""

from __future__ import annotations

import os
from pathlib import Path

from .io import is_zarr_store


class OutputExistsError(ValueError):
    """The output exists and was made with other settings (or is complete) and overwrite is off."""


def check_output_path(out, *, source=None, overwrite: bool = False) -> Path:
    """Check a zarr output path before anything is computed.

    Parameters
    ----------
    out : path
        Must end in ``.zarr``; its folder must exist and be writable.
    source : path, optional
        The input's path: the output may not be it, be inside it or contain it
        (``--overwrite`` would otherwise delete the input).
    overwrite : bool
        Without it, an existing path that is not a napari-segkit prediction is refused.

    Returns
    -------
    Path

    Raises
    ------
    ValueError, FileNotFoundError, PermissionError
    """
    out = Path(out)
    if not str(out).rstrip("/").endswith(".zarr"):
        raise ValueError(
            f"out must be a .zarr path (got '{out}'); write TIFF from the returned "
            "array with napari_segkit.write_labels"
        )
    if source is not None:
        refuse_overlap(out, Path(source))
    if not out.parent.is_dir():
        raise FileNotFoundError(f"Cannot write '{out}': folder '{out.parent}' does not exist")
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"Cannot write '{out}': folder '{out.parent}' is not writable")
    if out.exists() and not overwrite and not (is_zarr_store(out) and _is_prediction(out)):
        raise OutputExistsError(
            f"Output '{out}' exists and is not a napari-segkit prediction; choose another "
            "path, or pass overwrite=True (--overwrite) to replace it."
        )
    return out


def refuse_overlap(out: Path, source: Path) -> None:
    """Raise ValueError when `out` is `source`, is inside it or contains it.

    Parameters
    ----------
    out, source : Path

    Returns
    -------
    None
    """
    out_r, src_r = out.resolve(), source.resolve()
    if out_r == src_r:
        problem = "is the input"
    elif src_r in out_r.parents:
        problem = "is inside the input"
    elif out_r in src_r.parents:
        problem = "contains the input"
    else:
        return
    raise ValueError(f"Output '{out}' {problem} '{source}': choose an output outside the input")


def _is_prediction(path: Path) -> bool:
    import json

    for meta in ("zarr.json", ".zattrs"):
        try:
            attrs = json.loads((path / meta).read_text())
        except (OSError, ValueError):
            continue
        attrs = attrs.get("attributes", attrs) if isinstance(attrs, dict) else {}
        if isinstance(attrs, dict) and "segkit" in attrs:
            return True
    return False


def check_model_output(out, *, init=None, overwrite: bool = False, resume: bool = False) -> Path:
    """Refuse to write a model file where training must not (before any work starts).

    Parameters
    ----------
    out : path
        The model file training will write.
    init : path, optional
        The model being fine-tuned: never overwritten.
    overwrite, resume : bool
        An existing `out` is replaced only with `overwrite`, or continued with `resume`.

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        The folder of `out` does not exist.
    FileExistsError
        `out` exists (the message says how to replace or continue it).
    ValueError
        `out` is the model being fine-tuned.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(
            f"Cannot save the model to '{out}': folder '{out.parent}' does not exist"
        )
    if init and out.exists() and Path(init).resolve() == out.resolve():
        raise ValueError(
            f"'{out}' is the model being fine-tuned: save the new model under another name "
            f"(e.g. '{out.with_name(out.stem + '-v2' + out.suffix)}')"
        )
    if out.exists() and not overwrite and not resume:
        raise FileExistsError(
            f"'{out}' already exists; pass overwrite=True (--overwrite, or tick 'overwrite') "
            f"to replace it, or save as '{next_free_name(out).name}'"
        )
    return out


def next_free_name(path: Path) -> Path:
    """`path` with the first free version suffix: ``cells.safetensors`` -> ``cells-v2...``.

    Parameters
    ----------
    path : Path

    Returns
    -------
    Path
        ``<stem>-v<N><suffix>`` beside `path`, N >= 2, that does not exist yet (a stem
        already ending in ``-v<N>`` counts on from N).

    Examples
    --------
    >>> next_free_name(Path("/nonexistent/cells-v3.safetensors")).name
    'cells-v4.safetensors'
    """
    import re

    path = Path(path)
    match = re.fullmatch(r"(.*)-v(\d+)", path.stem)
    stem, n = (match.group(1), int(match.group(2)) + 1) if match else (path.stem, 2)
    while (candidate := path.with_name(f"{stem}-v{n}{path.suffix}")).exists():
        n += 1
    return candidate


__all__ = [
    "OutputExistsError",
    "check_model_output",
    "check_output_path",
    "next_free_name",
    "refuse_overlap",
]
