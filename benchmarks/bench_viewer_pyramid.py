"""napari on a big label image: plain zarr (full resolution only) vs the OME-Zarr pyramid.

    xvfb-run -a python benchmarks/bench_viewer_pyramid.py --size 16384 --repeat 3

Writes a SIZE x SIZE uint8 label image twice -- a plain zarr array (chunks 512) and an
OME-Zarr 0.5 label pyramid built as napari-segkit's outputs are (2 x 2 mode per level,
chunks 512) -- then, in a fresh napari viewer for each, times (a) the first draw of the
whole image (napari's default view: zoomed out) and (b) a draw after zooming into a
512 x 512 region. Every draw is forced with ``viewer.screenshot`` and timed from the
layer's addition, so lazy chunk reads count. Prints the times and the plain/pyramid
ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _pattern(y0, y1, x0, x1):
    y, x = np.mgrid[y0:y1, x0:x1]
    return (((y // 97) + (x // 89)) % 4).astype(np.uint8)


def write_plain(path: Path, size: int, block: int) -> None:
    import zarr

    z = zarr.open_array(str(path), mode="w", shape=(size, size), chunks=(512, 512), dtype="u1")
    for y in range(0, size, block):
        for x in range(0, size, block):
            z[y : y + block, x : x + block] = _pattern(
                y, min(y + block, size), x, min(x + block, size)
            )


def write_pyramid(path: Path, size: int, block: int) -> None:
    import zarr

    from napari_segkit.core.ome_zarr import add_label_metadata, create_multiscale
    from napari_segkit.core.pyramid import downsample_mode, level_shapes

    shapes = level_shapes((size, size), 512)
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    create_multiscale(
        root,
        shapes,
        [(min(512, s[0]), min(512, s[1])) for s in shapes],
        "u1",
        axes="yx",
        scale=(1.0, 1.0),
        unit=None,
        version="0.5",
        name="image",
    )
    group = root.require_group("labels/segmentation")
    create_multiscale(
        group,
        shapes,
        [(min(512, s[0]), min(512, s[1])) for s in shapes],
        "u1",
        axes="yx",
        scale=(1.0, 1.0),
        unit=None,
        version="0.5",
        name="segmentation",
    )
    add_label_metadata(
        root,
        "segmentation",
        ["a", "b", "c", "d"],
        ["#000000", "#e6194b", "#3cb44b", "#4363d8"],
        "0.5",
    )
    for y in range(0, size, block):
        for x in range(0, size, block):
            data = _pattern(y, min(y + block, size), x, min(x + block, size))
            for level in range(len(shapes)):
                ys, xs = y >> level, x >> level
                group[str(level)][ys : ys + data.shape[0], xs : xs + data.shape[1]] = data
                data = downsample_mode(data)


def time_draws(data, size: int) -> tuple[float, float]:
    import napari

    viewer = napari.Viewer(show=False)
    viewer.window._qt_window.resize(1200, 900)
    started = time.perf_counter()
    viewer.add_labels(data, name="labels")
    viewer.screenshot(canvas_only=True)  # first draw: the whole image, zoomed out
    first = time.perf_counter() - started
    viewer.camera.center = (size / 2, size / 2)
    viewer.camera.zoom = viewer.camera.zoom * (size / 512)  # a 512 x 512 region
    started = time.perf_counter()
    viewer.screenshot(canvas_only=True)
    zoomed = time.perf_counter() - started
    viewer.close()
    return first, zoomed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--repeat", type=int, default=3, help="best of N viewers each")
    parser.add_argument("--work", help="folder for the two stores (default: a temp folder)")
    args = parser.parse_args()

    import dask.array as da
    import zarr

    work = Path(args.work or tempfile.mkdtemp(prefix="segkit-pyramid-"))
    plain, pyramid = work / "plain.zarr", work / "pyramid.ome.zarr"
    block = 2048
    t = time.perf_counter()
    write_plain(plain, args.size, block)
    write_pyramid(pyramid, args.size, block)
    print(f"wrote both stores in {time.perf_counter() - t:.1f} s ({args.size} x {args.size})")
    group = zarr.open_group(str(pyramid / "labels" / "segmentation"), mode="r")
    levels = [da.from_zarr(group[str(i)]) for i in range(len(list(group.array_keys())))]
    results = {"plain": [], "pyramid": []}
    for _ in range(args.repeat):  # alternate, best of N
        results["plain"].append(time_draws(da.from_zarr(str(plain)), args.size))
        results["pyramid"].append(time_draws(levels, args.size))
    best = {k: (min(r[0] for r in v), min(r[1] for r in v)) for k, v in results.items()}
    (pf, pz), (mf, mz) = best["plain"], best["pyramid"]
    print(
        f"first draw (zoomed out): plain zarr {pf:.2f} s, OME-Zarr pyramid {mf:.2f} s, "
        f"ratio plain/pyramid {pf / mf:.1f}"
    )
    print(
        f"zoomed-in draw (512 x 512): plain zarr {pz:.2f} s, OME-Zarr pyramid {mz:.2f} s, "
        f"ratio plain/pyramid {pz / mz:.1f}"
    )
    print(f"pyramid levels: {len(levels)}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
