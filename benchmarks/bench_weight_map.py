"""U-Net border weight map: the straightforward method vs napari-segkit's windowed one.

    python benchmarks/bench_weight_map.py

1. 768 x 768, about 300 touching objects: both methods in the same run; prints the
   time ratio (reference / ours) and the max abs difference.
2. 2048 x 2048, about 2,000 objects: ours alone (the reference would need one
   2048 x 2048 float64 distance map per object, ~67 GB); prints time and peak
   memory (tracemalloc: numpy's allocations) as a multiple of the image size.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
from scipy import ndimage as ndi

from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.core.weight_maps import unet_weight_map


def reference(instances, w0=10.0, sigma=5.0):
    """One full distance transform per object, all kept, sorted per pixel."""
    ids = np.unique(instances)[1:]
    dists = np.stack([ndi.distance_transform_edt(instances != i) for i in ids])
    dists.sort(axis=0)
    border = w0 * np.exp(-((dists[0] + dists[1]) ** 2) / (2 * sigma**2))
    return 1 + np.where(instances == 0, border, 0)


def timed(fn, *args, repeat=1):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return out, best


def main() -> None:
    small = make_nuclei((768, 768), n_nuclei=350, radius=(8, 14), touching_fraction=0.8, seed=0)
    n_small = len(np.unique(small.instances)) - 1
    ref, t_ref = timed(reference, small.instances)
    ours, t_ours = timed(unet_weight_map, small.instances, repeat=3)
    print(
        f"768 x 768, {n_small} objects: reference {t_ref:.2f} s, ours {t_ours:.3f} s, "
        f"speed-up {t_ref / t_ours:.0f}x, max abs diff {np.abs(ours - ref).max():.2e}"
    )

    big = make_nuclei((2048, 2048), n_nuclei=2100, radius=(6, 12), touching_fraction=0.6, seed=1)
    n_big = len(np.unique(big.instances)) - 1
    tracemalloc.start()
    _, t_big = timed(unet_weight_map, big.instances)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    image_bytes = big.instances.size * 4  # one float32 image
    print(
        f"2048 x 2048, {n_big} objects: ours {t_big:.2f} s, peak memory {peak / 2**20:.0f} MiB "
        f"= {peak / image_bytes:.1f} x one float32 image"
    )


if __name__ == "__main__":
    main()
