"""Peak memory of zarr-to-zarr prediction does not grow with the volume.

    python benchmarks/bench_predict_memory.py [--gb 1 4] [--workdir /tmp/segkit-bench]

Writes float32 zarr volumes of about the given sizes (Z x 4096 x 4096), predicts each
into a zarr output (labels) with a tiny model in a fresh subprocess (tile 1024, no
overlap, blocks of 2048: the settings only change the speed, not what is measured),
and prints each run's peak resident memory (ru_maxrss, torch's own ~0.5 GB
included) and the ratio of the largest to the smallest.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys, time
from napari_segkit.tiling import predict
t = time.perf_counter()
predict(sys.argv[1], sys.argv[2], out=sys.argv[3], tile_size=1024, overlap=0.0, block_size=2048,
        batch_size=2)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_volume(path: Path, n_planes: int, side: int = 4096) -> None:
    import zarr

    z = zarr.create_array(
        str(path), shape=(n_planes, side, side), dtype="f4", chunks=(1, 1024, 1024)
    )
    z.attrs.update({"axes": "ZYX", "scale": [1.0, 1.0, 1.0]})
    rng = np.random.default_rng(0)
    plane = (rng.random((side, side)) * 40 + np.linspace(0, 200, side)).astype(np.float32)
    for i in range(n_planes):
        z[i] = np.roll(plane, i * 7, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--workdir", default="/tmp/segkit-bench")
    args = parser.parse_args()
    import torch

    from napari_segkit.models import build_model, save_model

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.manual_seed(0)
    model = save_model(
        work / "tiny.safetensors",
        build_model("unet_original", 1, 2, width=2, depth=1),
        normalization={"mode": "percentile", "low": 1, "high": 99.8},
    )
    (work / "child.py").write_text(CHILD)
    peaks = {}
    for gb in args.gb:
        n_planes = max(1, int(round(gb * 2**30 / (4 * 4096**2))))
        volume = work / f"in_{gb:g}gb.zarr"
        make_volume(volume, n_planes)
        out = work / f"out_{gb:g}gb.zarr"
        t = time.perf_counter()
        res = subprocess.run(
            [sys.executable, str(work / "child.py"), str(model), str(volume), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds, maxrss_kb = res.stdout.split()[-2:]
        peaks[gb] = int(maxrss_kb) / 1024
        print(
            f"{n_planes} x 4096 x 4096 float32 ({n_planes * 4 * 4096**2 / 2**30:.2f} GiB): predicted in "
            f"{float(seconds):.0f} s (wall {time.perf_counter() - t:.0f} s), peak RSS {peaks[gb]:.0f} MiB"
        )
        shutil.rmtree(volume)
        shutil.rmtree(out)
    small, large = min(peaks), max(peaks)
    print(f"peak RSS ratio {large:g} GB / {small:g} GB volume: {peaks[large] / peaks[small]:.2f}")


if __name__ == "__main__":
    main()
