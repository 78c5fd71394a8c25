"""The output side: a zarr group that records finished blocks, resumable after a crash.

Layout of ``OUT.zarr``::

    labels          (Y, X) or (Z, Y, X)            argmax class ids
    probabilities   (K, Y, X) or (K, Z, Y, X)      float32 / float16 / uint8 (x 255)
    attrs["segkit"] {"complete": bool, "fingerprint": str, "settings": {...}, "n_blocks": N}
    .segkit_done/   one empty file per finished block

A block's marker is created only after its data has been written, and
``complete`` becomes true only after every block is done, so neither a crash nor
a failure leaves an output that claims to be complete. Re-running with the same
settings skips finished blocks; other settings are refused unless overwriting.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..core.outputs import OutputExistsError


def labels_dtype(num_classes: int):
    """The smallest unsigned dtype that holds class ids ``0 .. num_classes - 1``.

    Parameters
    ----------
    num_classes : int

    Returns
    -------
    numpy dtype class
        ``np.uint8`` up to 256 classes, else ``np.uint16``.

    Examples
    --------
    >>> labels_dtype(3).__name__, labels_dtype(300).__name__
    ('uint8', 'uint16')
    """
    return np.uint8 if num_classes <= 256 else np.uint16


def encode_probabilities(probs: np.ndarray, dtype: str) -> np.ndarray:
    """float32 probabilities -> storage dtype (uint8: round(p * 255)).

    Parameters
    ----------
    probs : ndarray of float32, shape (K, ...)
    dtype : {"float32", "float16", "uint8"}

    Returns
    -------
    ndarray of `dtype`, same shape

    Examples
    --------
    >>> encode_probabilities(np.array([0.0, 0.5, 1.0], np.float32), "uint8")
    array([  0, 128, 255], dtype=uint8)
    """
    if dtype == "uint8":
        return np.round(np.clip(probs, 0, 1) * 255).astype(np.uint8)
    return probs.astype(dtype)


def labels_from_probabilities(probs: np.ndarray) -> np.ndarray:
    """``(K, ...)`` probabilities -> class ids; one channel means foreground if p > 0.5.

    Parameters
    ----------
    probs : ndarray of shape (K, ...)

    Returns
    -------
    ndarray of uint8 / uint16, shape (...)

    Examples
    --------
    >>> labels_from_probabilities(np.array([[0.2, 0.7], [0.8, 0.3]]))
    array([1, 0], dtype=uint8)
    """
    if probs.shape[0] == 1:
        return (probs[0] > 0.5).astype(np.uint8)
    return probs.argmax(0).astype(labels_dtype(probs.shape[0]))


class ZarrSink:
    """A resumable zarr output (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.done_dir = self.path / ".segkit_done"

    # -- opening
    def prepare(
        self,
        *,
        spatial_shape,
        chunks,
        num_classes,
        output,
        prob_dtype,
        settings,
        fingerprint,
        n_blocks,
        overwrite,
        resume=None,
    ) -> set[int]:
        """Create the output, or reopen it to resume. Returns the finished block ids.

        `resume`: None continues an unfinished output made with the same settings and
        starts a new one otherwise; True insists on continuing one (an error when there
        is none); False refuses to continue one (start again with `overwrite`).
        """
        import zarr

        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other: choose one")
        if resume and not self.path.exists():
            raise FileNotFoundError(f"Nothing to resume: '{self.path}' does not exist")
        if self.path.exists():
            state = self.state()
            same = state is not None and state.get("fingerprint") == fingerprint
            if same and not overwrite:
                if state.get("complete"):
                    return set(range(n_blocks))
                if resume is False:
                    raise OutputExistsError(
                        f"Output '{self.path}' holds an unfinished prediction with these "
                        "settings; resume it (resume=True, --resume) or start again "
                        "(overwrite=True, --overwrite)."
                    )
                return self.finished_blocks()
            if not overwrite:
                what = (
                    "was made with other settings"
                    if state is not None
                    else "is not a napari-segkit prediction"
                )
                raise OutputExistsError(
                    f"Output '{self.path}' exists and {what}; choose another path, or pass "
                    "overwrite=True (--overwrite) to replace it."
                )
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        if not self.path.parent.is_dir():
            raise FileNotFoundError(
                f"Cannot write '{self.path}': folder '{self.path.parent}' does not exist"
            )
        if not os.access(self.path.parent, os.W_OK):
            raise PermissionError(
                f"Cannot write '{self.path}': folder '{self.path.parent}' is not writable"
            )
        group = zarr.open_group(str(self.path), mode="w")
        group.attrs["segkit"] = {
            "complete": False,
            "fingerprint": fingerprint,
            "settings": settings,
            "n_blocks": n_blocks,
        }
        k = max(num_classes, 1)
        if output in ("labels", "both"):
            group.create_array(
                "labels", shape=spatial_shape, chunks=chunks, dtype=labels_dtype(k), fill_value=0
            )
        if output in ("probabilities", "both"):
            group.create_array(
                "probabilities",
                shape=(k, *spatial_shape),
                chunks=(1, *chunks),
                dtype=prob_dtype,
                fill_value=0,
            )
        self.done_dir.mkdir()
        return set()

    def state(self) -> dict | None:
        import zarr

        try:
            return dict(zarr.open_group(str(self.path), mode="r").attrs).get("segkit")
        except Exception:  # noqa: BLE001 -- no group, or not ours: no state
            return None

    def finished_blocks(self) -> set[int]:
        if not self.done_dir.is_dir():
            return set()
        return {int(p.name) for p in self.done_dir.iterdir() if p.name.isdigit()}

    # -- writing
    def write_block(self, block_id: int, index: tuple, probs: np.ndarray, prob_dtype: str) -> None:
        """Write one block's results, then its marker. `index` is the spatial index."""
        import zarr

        group = zarr.open_group(str(self.path), mode="r+")
        if "labels" in group:
            group["labels"][index] = labels_from_probabilities(probs)
        if "probabilities" in group:
            group["probabilities"][(slice(None), *index)] = encode_probabilities(probs, prob_dtype)
        (self.done_dir / str(block_id)).touch()

    def mark_complete(self) -> None:
        import zarr

        group = zarr.open_group(str(self.path), mode="r+")
        state = dict(group.attrs["segkit"])
        state["complete"] = True
        group.attrs["segkit"] = state
        shutil.rmtree(self.done_dir, ignore_errors=True)

    def open_results(self, output: str):
        import zarr

        group = zarr.open_group(str(self.path), mode="r")
        if output == "both":
            return group["labels"], group["probabilities"]
        return group[output]
