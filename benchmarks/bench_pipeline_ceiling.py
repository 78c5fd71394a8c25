"""The engine around the model: zarr -> zarr with a near-zero-cost model vs the I/O floor.

    python benchmarks/bench_pipeline_ceiling.py --shape 8 2048 2048 --repeat 3

Input: a uint8 zarr volume (chunks 1 x 512 x 512). segkit predicts it into zarr labels
with a model whose "forward" is ``cat([x, 1 - x])`` (two logits, no arithmetic worth
timing), so what is measured is everything around a model: reading, tiling, blending,
argmax, writing. The floor is the same data through dask alone: read, threshold at
0.5, write uint8 labels to zarr with the same chunks. Both alternate, best of N; the
ratio of throughputs (segkit / floor) is printed with the Mpx/s of each.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


class CatModel(torch.nn.Module):
    """Two logits per pixel from one channel, at (almost) no cost."""

    in_channels, num_classes = 1, 2

    def forward(self, x):
        return torch.cat([x, 1 - x], dim=1)


def make_input(path: Path, shape) -> None:
    import zarr

    z = zarr.open_array(str(path), mode="w", shape=shape, chunks=(1, 512, 512), dtype="u1")
    rng = np.random.default_rng(0)
    for i in range(shape[0]):
        z[i] = rng.integers(0, 2, size=shape[1:], dtype=np.uint8)


def floor(src: Path, out: Path) -> float:
    import dask.array as da

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    labels = (da.from_zarr(str(src)) > 0.5).astype(np.uint8)
    da.to_zarr(labels, str(out), overwrite=True)
    return time.perf_counter() - started


def segkit(src: Path, out: Path, tile: int, overlap: float, profile: list) -> float:
    from napari_segkit import predict, read_stack

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    predict(
        CatModel(),
        read_stack(src),
        out=out,
        tile_size=tile,
        overlap=overlap,
        normalization=None,
        optimize=False,
        blend="gaussian",
        batch_size=4,
        profile=profile.append,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[8, 2048, 2048])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="segkit-ceiling-"))
    src = work / "in.zarr"
    make_input(src, tuple(args.shape))
    mpx = np.prod(args.shape) / 1e6
    best_floor = best_segkit = np.inf
    profiles: list = []
    for _ in range(args.repeat):
        best_floor = min(best_floor, floor(src, work / "floor.zarr"))
        best_segkit = min(
            best_segkit, segkit(src, work / "segkit.zarr", args.tile, args.overlap, profiles)
        )
    last = profiles[-1]
    print(
        f"{args.shape[0]} x {args.shape[1]} x {args.shape[2]} uint8 ({mpx:.1f} Mpx), tile "
        f"{args.tile}, overlap {args.overlap}: floor (dask read/threshold/write) "
        f"{mpx / best_floor:.1f} Mpx/s, segkit {mpx / best_segkit:.1f} Mpx/s, "
        f"ratio {best_floor / best_segkit:.2f}"
    )
    print(
        f"segkit stages (last run): read {last['read_s']:.2f} s, compute {last['compute_s']:.2f}"
        f" s, write {last['write_s']:.2f} s, wall {last['wall_s']:.2f} s, bound by "
        f"{last['bound_by']}"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
