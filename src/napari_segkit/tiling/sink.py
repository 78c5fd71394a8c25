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
    if probs.shape[0] == 2:  # argmax of two: a comparison, ties to class 0 as argmax does
        return (probs[1] > probs[0]).astype(np.uint8)
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
        state = {
            "complete": False,
            "fingerprint": fingerprint,
            "settings": settings,
            "n_blocks": n_blocks,
        }
        self.create_layout(spatial_shape, chunks, max(num_classes, 1), output, prob_dtype, state)
        self.done_dir.mkdir()
        return set()

    def create_layout(self, spatial_shape, chunks, k, output, prob_dtype, state) -> None:
        """Create the group, its state and its empty arrays."""
        import zarr

        group = zarr.open_group(str(self.path), mode="w")
        group.attrs["segkit"] = state
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
    #: whether write_block wants the input block too (an OME-Zarr output copies the image)
    wants_image = False

    def write_block(self, block_id: int, index: tuple, result, image=None) -> None:
        """Write one block's results, then its marker. `index` is the spatial index.

        `result` is a ``BlockResult`` (labels and probabilities already encoded on the
        model's device).
        """
        import zarr

        group = zarr.open_group(str(self.path), mode="r+")
        if "labels" in group:
            group["labels"][index] = result.labels
        if "probabilities" in group:
            group["probabilities"][(slice(None), *index)] = result.probabilities
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


class OmeZarrSink(ZarrSink):
    """A resumable OME-Zarr output (``*.ome.zarr``): image, label and probability pyramids.

    Layout (OME-Zarr 0.5 on zarr v3 by default, 0.4 on zarr v2 as an option)::

        OUT.ome.zarr/            the input image, multiscale (its scale carried over)
            0, 1, ...            levels: Y and X halved (2 x 2 mean), Z kept
            labels/segmentation  class ids, multiscale (2 x 2 mode), ``image-label``
                                 metadata with the model's class names and colours
            probabilities/       (K, ...) class probabilities, multiscale (2 x 2 mean)
            .segkit_done/        finished blocks, removed when complete

    Every pyramid level is written from each finished block, in memory, before the
    block is recorded: memory stays bounded by the block, and a resumed run rewrites
    exactly the unfinished blocks at every level. A level's chunks never straddle
    two blocks, so dask workers writing blocks in parallel never share a chunk.
    """

    LABELS = "labels/segmentation"
    wants_image = True

    def __init__(self, path, *, version: str = "0.5", shards: bool = False):
        super().__init__(path)
        self.version, self.shards = version, shards

    def create(
        self,
        group_path: str,
        *,
        spatial_shape,
        chunks,
        block,
        dtype,
        lead: str = "",
        lead_size: int = 1,
        scale=None,
        unit=None,
        name=None,
    ):
        """Create one multiscale group (``""``: the root) of the output."""
        import zarr

        from ..core.ome_zarr import create_multiscale, zarr_format
        from ..core.pyramid import level_shapes

        shapes = level_shapes(spatial_shape, max(chunks[-2:]))  # down to one chunk
        spatial_axes = ("z" if len(spatial_shape) == 3 else "") + "yx"
        level_chunks, level_shards = [], []
        for level in range(len(shapes)):
            side = [max(1, min(c, b >> level)) for c, b in zip(chunks[-2:], block, strict=True)]
            level_chunks.append((*((1,) if lead else ()), *chunks[:-2], *side))
            level_shards.append(
                (
                    *((1,) if lead else ()),
                    *chunks[:-2],
                    *(max(s, b >> level) for s, b in zip(side, block, strict=True)),
                )
            )
        root = zarr.open_group(str(self.path), mode="a", zarr_format=zarr_format(self.version))
        group = root.require_group(group_path) if group_path else root
        full = [(*((lead_size,) if lead else ()), *s) for s in shapes]
        create_multiscale(
            group,
            full,
            [
                tuple(min(c, s) for c, s in zip(ch, sh, strict=True))
                for ch, sh in zip(level_chunks, full, strict=True)
            ],
            dtype,
            axes=lead + spatial_axes,
            scale=scale or (1.0,) * len(spatial_shape),
            unit=unit,
            version=self.version,
            shards=level_shards if self.shards else None,
            name=name,
        )
        return len(shapes)

    def write_levels(self, group_path: str, index: tuple, data: np.ndarray, reduce) -> None:
        """Write `data` (level-0 block at `index`) and its downsampled versions at every level."""
        import zarr

        root = zarr.open_group(str(self.path), mode="r+")
        group = root[group_path] if group_path else root
        lead = data.ndim - 2  # channel / class axis before Y, X (Z is an index, not an axis)
        level = 0
        while str(level) in group:
            spatial = [
                slice(i.start >> level, (i.start >> level) + n)
                for i, n in zip(index[-2:], data.shape[-2:], strict=True)
            ]
            group[str(level)][(*(slice(None),) * lead, *index[:-2], *spatial)] = data
            level += 1
            data = reduce(data)

    # -- ZarrSink interface
    def describe(self, *, image_dtype, channels, scale, unit, block, class_names, class_colors):
        """What the layout needs beyond the predictions: the input copy and the classes."""
        self.image = {
            "dtype": image_dtype,
            "channels": channels,
            "scale": scale,
            "unit": unit,
            "block": block,
            "class_names": class_names,
            "class_colors": class_colors,
        }
        return self

    def create_layout(self, spatial_shape, chunks, k, output, prob_dtype, state) -> None:
        import zarr

        from ..core.ome_zarr import add_label_metadata

        image = self.image
        common = {
            "spatial_shape": spatial_shape,
            "chunks": chunks,
            "block": image["block"],
            "scale": image["scale"],
            "unit": image["unit"],
        }
        lead = "c" if image["channels"] > 1 else ""
        self.create(
            "",
            dtype=image["dtype"],
            lead=lead,
            lead_size=image["channels"],
            name="image",
            **common,
        )
        root = zarr.open_group(str(self.path), mode="r+")
        root.attrs["segkit"] = state
        if output in ("labels", "both"):
            self.create(self.LABELS, dtype=labels_dtype(k), name="segmentation", **common)
            add_label_metadata(
                root, "segmentation", image["class_names"], image["class_colors"], self.version
            )
        if output in ("probabilities", "both"):
            self.create(
                "probabilities",
                dtype=prob_dtype,
                lead="c",
                lead_size=k,
                name="probabilities",
                **common,
            )

    def write_block(self, block_id, index, result, image=None) -> None:
        """Write one block at every level of every pyramid, then its marker."""
        import zarr

        from ..core.pyramid import downsample_mean, downsample_mode

        group = zarr.open_group(str(self.path), mode="r+")
        if image is not None:
            self.write_levels("", index, image, downsample_mean)
        if "labels" in group:
            self.write_levels(self.LABELS, index, result.labels, downsample_mode)
        if "probabilities" in group:
            self.write_levels("probabilities", index, result.probabilities, downsample_mean)
        (self.done_dir / str(block_id)).touch()

    def open_results(self, output: str):
        import zarr

        group = zarr.open_group(str(self.path), mode="r")
        arrays = {
            "labels": group[f"{self.LABELS}/0"],
            "probabilities": group["probabilities/0"] if "probabilities" in group else None,
        }
        if output == "both":
            return arrays["labels"], arrays["probabilities"]
        return arrays[output]
