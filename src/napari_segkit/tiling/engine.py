"""Batches tiles through a model and blends them into a block of probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.tiles import blend_weights, tile_starts, tiles_for_block
from ..core.volume import Volume
from ..jobs import PredictionCancelled, raise_if_cancelled


def _transforms(tta):
    """(forward, inverse) pairs on (B, K, H, W) tensors."""
    ident = (lambda t: t, lambda t: t)
    if tta is None:
        return [ident]
    flips = [
        ident,
        (lambda t: t.flip(-1), lambda t: t.flip(-1)),
        (lambda t: t.flip(-2), lambda t: t.flip(-2)),
        (lambda t: t.flip(-2, -1), lambda t: t.flip(-2, -1)),
    ]
    if tta == "flips":
        return flips
    rots = [
        (lambda t, k=k: torch.rot90(t, k, (-2, -1)), lambda t, k=k: torch.rot90(t, -k, (-2, -1)))
        for k in (1, 3)
    ]
    transposes = [
        (lambda t: t.transpose(-2, -1), lambda t: t.transpose(-2, -1)),
        (lambda t: t.flip(-2, -1).transpose(-2, -1), lambda t: t.transpose(-2, -1).flip(-2, -1)),
    ]
    return flips + rots + transposes  # the 8 symmetries of the square (D4)


def _disjoint(tiles: list, th: int, tw: int) -> bool:
    """True when no two tiles of the grid overlap (steps at least a tile apart)."""
    ys = sorted({y for y, _ in tiles})
    xs = sorted({x for _, x in tiles})
    return all(b - a >= th for a, b in zip(ys, ys[1:], strict=False)) and all(
        b - a >= tw for a, b in zip(xs, xs[1:], strict=False)
    )


@dataclass
class BlockResult:
    """A finished block as it crosses back to the host: only what will be written."""

    labels: np.ndarray | None  # (h, w) uint8 / uint16 class ids
    probabilities: np.ndarray | None  # (K, h, w) in the requested storage dtype


def _labels(probs: torch.Tensor) -> torch.Tensor:
    """Class ids from ``(K, h, w)`` probabilities, as ``labels_from_probabilities`` does."""
    k = probs.shape[0]
    if k == 1:
        return (probs[0] > 0.5).to(torch.uint8)
    if k == 2:
        return (probs[1] > probs[0]).to(torch.uint8)
    ids = probs.argmax(0)  # the first maximum on ties, as numpy
    return ids.to(torch.uint8) if k <= 256 else ids.to(torch.int32)


def _host_labels(ids: torch.Tensor) -> np.ndarray:
    labels = ids.cpu().numpy()
    return labels.astype(np.uint16) if labels.dtype == np.int32 else labels


def _encoded(probs: torch.Tensor, dtype: str) -> torch.Tensor:
    """Probabilities in their storage dtype, as ``encode_probabilities`` does."""
    if dtype == "uint8":
        return torch.round(probs.clamp(0, 1) * 255).to(torch.uint8)
    return probs.to(torch.float16 if dtype == "float16" else torch.float32)


@dataclass
class BlockInput:
    """A block's input, read and normalised: what the device stage needs."""

    region: np.ndarray  # (C, H, W) float32, covering every tile of the block
    block: tuple[slice, slice]  # rows, columns of the block in the plane
    tiles: list  # (y, x) starts of the tiles overlapping the block
    origin: tuple[int, int]  # plane coordinates of region[:, 0, 0]
    tile: tuple[int, int]  # tile height, width
    plane: tuple[int, int]  # plane height, width


@dataclass
class TileEngine:
    """Everything needed to turn an input region into blended class probabilities.

    Attributes
    ----------
    model : torch.nn.Module
        ``(N, C, H, W)`` -> ``(N, K, H, W)`` logits; K = 1 means sigmoid.
    num_classes : int
    tile : (int, int)
    overlap : float
    blend : str
    batch_size : int
    device : torch.device
    tta : None, "flips" or "d4"
    norm_stats : dict or None
        From :func:`~napari_segkit.core.volume.normalization_stats`.
    amp : bool
        Autocast (fp16 / bf16) on CUDA.
    align : int
        Tile starts are multiples of this (the model's ``divisor``), when the tile is.
    """

    model: torch.nn.Module
    num_classes: int
    tile: tuple[int, int]
    overlap: float
    blend: str
    batch_size: int
    device: torch.device
    tta: str | None
    norm_stats: dict | None
    amp: bool = True
    amp_dtype: torch.dtype = torch.float16
    align: int = 1  # the model's spatial divisor: tile starts are multiples of it
    optimized: bool = False  # model had batch norm folded (workers of a cluster do the same)
    # device-side caches, filled on first use (not copied by dataclasses.replace)
    _weight_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _norm_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _pinned: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def block_probabilities(
        self, volume: Volume, z: int, block: tuple[slice, slice], cancel=None
    ) -> np.ndarray:
        """Blended probabilities ``(K, h, w)`` float32 of one block of plane `z`.

        Tiles come from the plane's global grid (so the result does not depend on
        how the plane is cut into blocks); each tile overlapping the block is
        predicted and its weighted probabilities summed into the block.
        """
        return self.compute_block(self.read_block(volume, z, block), cancel)

    def _block_tiles(self, volume: Volume, block: tuple[slice, slice]):
        """The tile shape and the tiles (top-left corners) that overlap `block`."""
        _, ny, nx, _ = volume.shape
        th, tw = self.plane_tile(ny, nx)
        align = self.align if th % self.align == 0 and tw % self.align == 0 else 1
        starts_y = tile_starts(max(ny, th), th, self.overlap, align)
        starts_x = tile_starts(max(nx, tw), tw, self.overlap, align)
        return (th, tw), tiles_for_block(block, starts_y, starts_x, (th, tw))

    def count_tiles(self, volume: Volume, block: tuple[slice, slice]) -> int:
        """How many tiles (network inputs, before TTA) predicting `block` takes.

        Parameters
        ----------
        volume : Volume
        block : (slice, slice)

        Returns
        -------
        int
        """
        return len(self._block_tiles(volume, block)[1])

    def read_block(self, volume: Volume, z: int, block: tuple[slice, slice]) -> BlockInput:
        """Stage 1 (a reader thread may run it): the block's normalised input region.

        Returns
        -------
        BlockInput
            The region ``(C, H, W)`` float32 covering every tile that overlaps the
            block, and the tile geometry.
        """
        _, ny, nx, _ = volume.shape
        (th, tw), tiles = self._block_tiles(volume, block)
        ys = slice(min(y for y, _ in tiles), max(y for y, _ in tiles) + th)
        xs = slice(min(x for _, x in tiles), max(x for _, x in tiles) + tw)
        # the image's own dtype: a uint8 region is a quarter of its float32 copy to read and
        # to send to a GPU; the conversion and normalisation run on the device
        region = volume.read(z, ys, xs, dtype=None)
        if region.dtype.kind not in "biuf" or region.dtype.itemsize > 4 or region.dtype == bool:
            region = region.astype(np.float32)
        if region.dtype.kind == "f" and not np.isfinite(region).all():
            raise ValueError(
                f"image contains NaN or infinite values (plane {z}, rows "
                f"{ys.start}:{ys.stop}, columns {xs.start}:{xs.stop})"
            )
        return BlockInput(
            np.ascontiguousarray(region), block, tiles, (ys.start, xs.start), (th, tw), (ny, nx)
        )

    @torch.inference_mode()
    def compute_block(self, data: BlockInput, cancel=None, encode=None, on_batch=None):
        """Stage 2: predict the block's tiles and blend them on the model's device.

        Tiles are accumulated into the block's probability buffer with torch on the
        device, with weights built once per tile shape and border case and kept there;
        only the finished block crosses back to the host: one synchronisation per
        block, not per batch.

        Parameters
        ----------
        data : BlockInput
        cancel : Event or callable, optional
        encode : (bool, str or None), optional
            ``(labels wanted, probabilities dtype or None)``: the outputs are computed
            on the device and only they cross to the host (labels as uint8/uint16,
            probabilities in the requested dtype).
        on_batch : callable, optional
            ``on_batch(n)`` after each batch of `n` tiles (fine-grained progress).

        Returns
        -------
        ndarray of float32, shape (K, h, w), or a BlockResult when `encode` is given
        """
        block, tiles, (y_org, x_org) = data.block, data.tiles, data.origin
        (th, tw), (ny, nx) = data.tile, data.plane
        k = max(self.num_classes, 1)
        bh, bw = block[0].stop - block[0].start, block[1].stop - block[1].start
        # tiles that do not overlap each other cover every pixel once: their probabilities
        # are the result as they are (weights would divide out), so skip the weighting
        disjoint = len(tiles) == 1 or _disjoint(tiles, th, tw)
        acc = torch.zeros((k, bh, bw), dtype=torch.float32, device=self.device)
        wsum = None if disjoint else torch.zeros((bh, bw), dtype=torch.float32, device=self.device)
        region = self._normalized(torch.from_numpy(data.region))
        for i in range(0, len(tiles), self.batch_size):
            raise_if_cancelled(cancel, PredictionCancelled, "prediction cancelled")
            batch = tiles[i : i + self.batch_size]
            x = torch.stack(
                [
                    region[:, y - y_org : y - y_org + th, x0 - x_org : x0 - x_org + tw]
                    for y, x0 in batch
                ]
            )
            probs = self._probabilities_backing_off(x)
            if on_batch is not None:
                on_batch(len(batch))
            for (y, x0), p in zip(batch, probs, strict=True):
                # overlap of this tile with the block, in tile and block coordinates
                y_lo, y_hi = max(y, block[0].start), min(y + th, block[0].stop, ny)
                x_lo, x_hi = max(x0, block[1].start), min(x0 + tw, block[1].stop, nx)
                if y_lo >= y_hi or x_lo >= x_hi:
                    continue
                t_sl = (slice(y_lo - y, y_hi - y), slice(x_lo - x0, x_hi - x0))
                b_sl = (
                    slice(y_lo - block[0].start, y_hi - block[0].start),
                    slice(x_lo - block[1].start, x_hi - block[1].start),
                )
                if disjoint:
                    acc[(slice(None), *b_sl)] = p[(slice(None), *t_sl)]
                    continue
                at_border = (y == 0, y + th >= ny, x0 == 0, x0 + tw >= nx)
                w = self._weights((th, tw), at_border)[t_sl]
                acc[(slice(None), *b_sl)] += p[(slice(None), *t_sl)] * w
                wsum[b_sl] += w
        probs = acc if disjoint else acc / wsum
        if encode is None:
            return probs.cpu().numpy()
        want_labels, prob_dtype = encode
        return BlockResult(
            labels=_host_labels(_labels(probs)) if want_labels else None,
            probabilities=_encoded(probs, prob_dtype).cpu().numpy() if prob_dtype else None,
        )

    def _probabilities_backing_off(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_probabilities`, halving the batch on a CUDA out-of-memory error."""
        try:
            return self._probabilities(x)
        except torch.cuda.OutOfMemoryError:
            if x.shape[0] == 1:
                raise
            torch.cuda.empty_cache()
            self.batch_size = max(1, x.shape[0] // 2)  # later batches use the smaller size
            half = x.shape[0] // 2
            return torch.cat(
                [
                    self._probabilities_backing_off(x[:half]),
                    self._probabilities_backing_off(x[half:]),
                ]
            )

    def _to_device(self, region: torch.Tensor) -> torch.Tensor:
        """A host region on the device. On CUDA: through a pinned buffer reused across
        blocks, copied on a side stream that the compute stream then waits for."""
        if self.device.type != "cuda":
            return region.to(self.device)
        cache = self._pinned
        key = (tuple(region.shape), region.dtype)
        if key not in cache:
            cache.clear()  # one buffer: blocks of a run share their shape
            cache[key] = (
                torch.empty(region.shape, dtype=region.dtype).pin_memory(),
                torch.cuda.Stream(self.device),
                None,
            )
        pinned, stream, last_copy = cache[key]
        if last_copy is not None:
            last_copy.synchronize()  # the previous copy out of this buffer has finished
        pinned.copy_(region)
        with torch.cuda.stream(stream):
            on_device = pinned.to(self.device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(stream)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        on_device.record_stream(torch.cuda.current_stream(self.device))
        cache[key] = (pinned, stream, done)
        return on_device

    def _normalized(self, region: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` of the image's dtype -> float32 normalised, on the device."""
        region = self._to_device(region).float()
        if self.norm_stats is None:
            return region
        cache = self._norm_cache
        if self.device not in cache:
            cache[self.device] = tuple(
                torch.tensor(self.norm_stats[key], dtype=torch.float32, device=self.device)[
                    :, None, None
                ]
                for key in ("offset", "scale")
            )
        offset, scale = cache[self.device]
        return (region - offset) / scale

    def _weights(self, tile: tuple[int, int], at_border: tuple) -> torch.Tensor:
        """The blend weights of a tile, on the device; built once per shape and border case."""
        cache = self._weight_cache
        key = (tile, at_border)
        if key not in cache:
            weights = blend_weights(tile, self.blend, self.overlap, at_border)  # read-only
            cache[key] = torch.tensor(weights, dtype=torch.float32, device=self.device)
        return cache[key]

    def plane_tile(self, ny: int, nx: int) -> tuple[int, int]:
        """The tile for a plane: no larger than the plane rounded up to the model's multiple
        (a small image is one tile padded like a whole-image prediction, not reflected far;
        a tile larger than the image never allocates more than the image needs)."""

        def fit(t, n):
            return min(t, -(-n // self.align) * self.align)

        return fit(self.tile[0], ny), fit(self.tile[1], nx)

    @torch.inference_mode()
    def predict_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """``(B, C, th, tw)`` float32 -> probabilities ``(B, K, th, tw)`` float32."""
        return self._probabilities(torch.from_numpy(tiles)).cpu().numpy()

    def _probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, th, tw)`` host tensor -> probabilities on the device (no host copy)."""
        if self.optimized and self.device.type in ("cpu", "cuda"):
            x = x.contiguous(memory_format=torch.channels_last)  # matches the optimised weights
        if x.device != self.device:
            if self.device.type == "cuda":
                x = x.pin_memory().to(self.device, non_blocking=True)
            else:
                x = x.to(self.device)
        use_amp = self.amp and self.device.type == "cuda"
        total = None
        transforms = _transforms(self.tta)
        for forward, inverse in transforms:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=use_amp):
                logits = self.model(forward(x))
            logits = inverse(logits.float())
            probs = torch.sigmoid(logits) if self.num_classes == 1 else torch.softmax(logits, 1)
            total = probs if total is None else total + probs
        # NCHW and contiguous: blending slices one tile at a time
        return (total / len(transforms)).contiguous()
