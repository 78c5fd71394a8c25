"""Sliding-window prediction of a 3D model over a volume: ``(Z, Y, X)`` tiles overlapping
in all three axes, Gaussian (or linear / centre) weights in 3D, test-time flips in 3D.

The volume is processed block by block (a block: a slab of planes and a region of them);
each block gathers every tile of the volume's global tile grid that touches it and blends
only inside itself, so a block's result does not depend on where the blocks are cut, and
memory is bounded by the block plus one batch of tiles -- the same geometry as the 2D
engine (:mod:`napari_segkit.tiling.engine`), one axis more.

In memory, or block by block into a zarr store (:func:`predict_to_zarr_3d`: bounded
memory, resumable, on dask workers too).
"""

from __future__ import annotations

from itertools import product

import numpy as np
import torch

from ..core.errors import InputError
from ..core.tiles import blend_weights, tile_starts
from ..jobs import PredictionCancelled, raise_if_cancelled

#: test-time augmentation in 3D: "flips" averages the 8 combinations of flipping z, y
#: and x; "d4" the 4 in-plane rotations of each (32 transforms)
TTA_3D = {None: 1, "flips": 8, "d4": 32}


def _transforms_3d(tta):
    """(forward, inverse) pairs on ``(N, C, D, H, W)`` tensors."""
    flips = [()] if tta is None else [f for r in range(4) for f in _combinations(r)]
    rotations = [0, 1, 2, 3] if tta == "d4" else [0]
    out = []
    for k in rotations:
        for dims in flips:
            out.append(
                (
                    lambda t, d=dims, k=k: torch.rot90(torch.flip(t, d) if d else t, k, (-2, -1)),
                    lambda t, d=dims, k=k: (
                        torch.flip(torch.rot90(t, -k, (-2, -1)), d)
                        if d
                        else torch.rot90(t, -k, (-2, -1))
                    ),
                )
            )
    return out


def _combinations(r: int):
    from itertools import combinations

    return [tuple(c) for c in combinations((-3, -2, -1), r)]


def fit_tile(tile, shape, divisors) -> tuple[int, int, int]:
    """The tile for a volume: no larger than the volume rounded up to the network's
    multiples (a thin volume is one tile deep, padded like a whole-volume prediction).

    Parameters
    ----------
    tile : (int, int, int)
        The requested (d, h, w).
    shape : (int, int, int)
        The volume's (Z, Y, X).
    divisors : (int, int, int)

    Returns
    -------
    tuple of int
    """
    return tuple(
        min(int(t), -(-n // d) * d) for t, n, d in zip(tile, shape, divisors, strict=True)
    )


class VolumeTiler:
    """Predicts a :class:`~napari_segkit.core.volume.Volume` with a 3D model.

    Parameters
    ----------
    model : torch.nn.Module
        ``(N, C, D, H, W)`` -> ``(N, K, D, H, W)`` logits (a 3D SegmentationModel).
    num_classes : int
    tile : (int, int, int)
    overlap : float
    blend : str
    batch_size : int
    device : torch.device
    tta : None, "flips" or "d4"
    norm_stats : dict or None
        ``{"offset": [C], "scale": [C]}`` (see ``normalization_stats``).
    divisors : (int, int, int)
        The network's multiples: tile starts are aligned to them.
    """

    def __init__(
        self,
        model,
        num_classes,
        tile,
        overlap,
        blend,
        batch_size,
        device,
        tta,
        norm_stats,
        divisors,
    ):
        self.model = model
        self.num_classes = num_classes
        self.tile = tuple(int(t) for t in tile)
        self.overlap = float(overlap)
        self.blend = blend
        self.batch_size = max(1, int(batch_size))
        self.device = device
        self.tta = tta
        self.norm_stats = norm_stats
        self.divisors = tuple(int(d) for d in divisors)

    def plan(self, volume) -> tuple[tuple[int, int, int], list[list[int]]]:
        """(tile, starts per axis) for `volume`."""
        shape = volume.shape[:3]
        tile = fit_tile(self.tile, shape, self.divisors)
        starts = [
            tile_starts(n, t, self.overlap, align=d if t % d == 0 else 1)
            for n, t, d in zip(shape, tile, self.divisors, strict=True)
        ]
        return tile, starts

    def count_tiles(self, volume) -> int:
        """Forward passes (before test-time augmentation) `volume` needs."""
        _, starts = self.plan(volume)
        return int(np.prod([len(s) for s in starts]))

    def probabilities(self, volume, progress=None, cancel=None) -> np.ndarray:
        """Blended class probabilities ``(K, Z, Y, X)`` float32 of the whole volume.

        Parameters
        ----------
        volume : Volume
        progress : callable, optional
            ``progress(done, total)`` in tiles.
        cancel : callable or threading.Event, optional

        Returns
        -------
        ndarray
        """
        whole = tuple(slice(0, n) for n in volume.shape[:3])
        return self.block_probabilities(volume, whole, progress=progress, cancel=cancel)

    def block_tiles(self, volume, block) -> list[tuple[int, int, int]]:
        """Corners of the volume's global tile grid whose tiles touch `block`."""
        tile, starts = self.plan(volume)
        near = [
            [s for s in axis if s < b.stop and s + t > b.start]
            for axis, b, t in zip(starts, block, tile, strict=True)
        ]
        return list(product(*near))

    @torch.inference_mode()
    def block_probabilities(self, volume, block, progress=None, cancel=None) -> np.ndarray:
        """Blended probabilities ``(K, d, h, w)`` of one block ``(zs, ys, xs)``: every tile
        of the global grid that touches it contributes, so the result does not depend on
        where blocks are cut (a block equals the same region of the whole volume).

        Parameters
        ----------
        volume : Volume
        block : tuple of slice
        progress, cancel : optional
            As for :meth:`probabilities`.

        Returns
        -------
        ndarray of float32
        """
        shape = volume.shape[:3]
        tile, starts = self.plan(volume)
        size = tuple(b.stop - b.start for b in block)
        total = np.zeros((self.num_classes, *size), np.float32)
        weight_sum = np.zeros(size, np.float32)
        corners = self.block_tiles(volume, block)
        done = 0
        for i in range(0, len(corners), self.batch_size):
            raise_if_cancelled(cancel, PredictionCancelled, "prediction cancelled")
            batch = corners[i : i + self.batch_size]
            regions = np.stack(
                [
                    volume.read_slab(*(slice(s, s + t) for s, t in zip(c, tile, strict=True)))
                    for c in batch
                ]
            )
            probs = self._forward(regions)
            for corner, p in zip(batch, probs, strict=True):
                at_border = []
                for s, t, n, axis_starts in zip(corner, tile, shape, starts, strict=True):
                    at_border += [s == axis_starts[0], s == axis_starts[-1] or s + t >= n]
                weights = blend_weights(tile, self.blend, self.overlap, tuple(at_border))
                # the part of the tile inside the volume and the block, in tile coordinates
                low = [max(s, b.start) for s, b in zip(corner, block, strict=True)]
                high = [
                    min(s + t, b.stop, n)
                    for s, t, b, n in zip(corner, tile, block, shape, strict=True)
                ]
                inside = tuple(
                    slice(lo - s, hi - s) for lo, hi, s in zip(low, high, corner, strict=True)
                )
                target = tuple(
                    slice(lo - b.start, hi - b.start)
                    for lo, hi, b in zip(low, high, block, strict=True)
                )
                total[(slice(None), *target)] += p[(slice(None), *inside)] * weights[inside]
                weight_sum[target] += weights[inside]
            done += len(batch)
            if progress is not None:
                progress(done, len(corners))
        return total / weight_sum

    def _forward(self, regions: np.ndarray) -> np.ndarray:
        """``(B, C, d, h, w)`` raw -> probabilities ``(B, K, d, h, w)`` float32."""
        x = torch.from_numpy(regions).to(self.device).float()
        x = x.contiguous(memory_format=torch.channels_last_3d)
        if self.norm_stats is not None:
            offset = torch.tensor(self.norm_stats["offset"], device=self.device)
            scale = torch.tensor(self.norm_stats["scale"], device=self.device)
            x = (x - offset[:, None, None, None]) / scale[:, None, None, None]
        transforms = _transforms_3d(self.tta)
        total = None
        for forward, inverse in transforms:
            logits = inverse(self.model(forward(x)).float())
            p = torch.sigmoid(logits) if self.num_classes == 1 else torch.softmax(logits, 1)
            total = p if total is None else total + p
        return (total / len(transforms)).cpu().numpy()


def check_volume_for_3d(volume, name: str) -> None:
    """Refuse inputs a 3D model cannot take, with the reason.

    Parameters
    ----------
    volume : Volume
    name : str
        The model, for the message.

    Returns
    -------
    None

    Raises
    ------
    InputError
        A single plane (a 2D image).
    """
    if volume.shape[0] < 2:
        raise InputError(
            f"{name} is a 3D model: it needs a stack (Z, Y, X), got a single 2D plane of "
            f"shape {tuple(volume.shape[1:3])}; use a 2D model for 2D images"
        )


def resampled_probabilities(tiler, volume, shape, progress=None, cancel=None) -> np.ndarray:
    """Probabilities ``(K, Z, Y, X)`` of `volume` predicted at another voxel `shape`:
    the image is resampled (linearly) to `shape` -- the model's spacing --, predicted,
    and the probabilities resampled (linearly) back, so the labels (their argmax) follow
    smooth boundaries instead of nearest-neighbour steps.

    Parameters
    ----------
    tiler : VolumeTiler
    volume : Volume
    shape : (int, int, int)
        The volume's (Z, Y, X) at the model's spacing.
    progress, cancel : optional
        As for :meth:`VolumeTiler.probabilities`.

    Returns
    -------
    ndarray of float32
    """
    from skimage.transform import resize

    from ..core.volume import Volume

    original = volume.shape[:3]
    image = volume.read_slab(*(slice(0, n) for n in original))
    # linear interpolation both ways; anti-aliasing smooths the image when it shrinks
    zoomed = np.stack(
        [
            resize(c, shape, order=1, mode="edge", preserve_range=True, anti_aliasing=None)
            for c in image
        ]
    ).astype(np.float32)
    resampled = Volume(np.moveaxis(zoomed, 0, -1), axes="ZYXC", in_channels=zoomed.shape[0])
    probabilities = tiler.probabilities(resampled, progress=progress, cancel=cancel)
    out = np.stack(
        [resize(p, original, order=1, mode="edge", anti_aliasing=False) for p in probabilities]
    )
    return np.ascontiguousarray(out / out.sum(0, keepdims=True), dtype=np.float32)


def predict_to_zarr_3d(
    tiler, volume, sink, *, block, output, encode, prepare, progress, cancel, cluster=None
):
    """Predict `volume` block by block into `sink` (a :class:`~.sink.ZarrSink`); blocks
    already written by an interrupted run are skipped.

    Parameters
    ----------
    tiler : VolumeTiler
    volume : Volume
    sink : ZarrSink
    block : (int, int, int)
        Block shape (whole output chunks, so no two blocks share a chunk).
    output : str
        What :meth:`ZarrSink.open_results` returns.
    encode : (bool, str or None)
        Labels wanted, probabilities storage dtype (see :func:`block_result`).
    prepare : callable
        ``prepare(n_blocks) -> finished block ids`` (creates or reopens the store).
    progress : callable, optional
        ``progress(done, total)`` in blocks.
    cancel : optional
    cluster : dict, optional
        ``{"client", "resolved", "image", "axes"}``: run the blocks on a dask cluster (each
        worker loads the model file once).

    Returns
    -------
    zarr array, or (labels, probabilities)
    """
    from ..core.tiles import block_plan
    from ..jobs import report

    blocks = block_plan(volume.shape[:3], block)
    finished = prepare(len(blocks))
    report(progress, len(finished), len(blocks))
    done = len(finished)
    if cluster is not None:
        from .distributed import _run_block_3d, run_on_cluster

        run_on_cluster(
            cluster["client"],
            cluster["resolved"],
            tiler,
            cluster["image"],
            cluster["axes"],
            sink,
            [(region,) for region in blocks],
            [i for i in range(len(blocks)) if i not in finished],
            encode,
            progress,
            cancel,
            done,
            task=_run_block_3d,
        )
        sink.mark_complete()
        return sink.open_results(output)
    for i, region in enumerate(blocks):
        if i in finished:
            continue
        p = tiler.block_probabilities(volume, region, cancel=cancel)
        sink.write_block(i, region, block_result(p, encode))
        done += 1
        report(progress, done, len(blocks))
    sink.mark_complete()
    return sink.open_results(output)


def block_result(probabilities: np.ndarray, encode):
    """What is kept of a block's ``(K, d, h, w)`` probabilities: a BlockResult with its
    labels (when `encode` wants them) and probabilities in the storage dtype (or None).

    Parameters
    ----------
    probabilities : ndarray of float32
    encode : (bool, str or None)
        Labels wanted, probabilities dtype ("float32", "float16", "uint8") or None.

    Returns
    -------
    BlockResult
    """
    from .engine import BlockResult
    from .sink import encode_probabilities, labels_from_probabilities

    want_labels, prob_dtype = encode
    return BlockResult(
        labels=labels_from_probabilities(probabilities) if want_labels else None,
        probabilities=encode_probabilities(probabilities, prob_dtype) if prob_dtype else None,
    )
