"""Peak memory of 3D zarr-to-zarr prediction does not grow with the volume.

    python benchmarks/bench_predict_memory_3d.py [--planes 64 256] [--side 512]

Writes float32 zarr stacks of `planes` x `side` x `side` (1x and 4x by default), predicts
each into a zarr output with a tiny 3D U-Net (tile 64^3, overlap 0.25, blocks of 32
planes x 512 x 512) in a fresh subprocess, and prints each run's peak resident memory
(ru_maxrss, torch's own few hundred MB included) and the ratio of the largest to the
smallest.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys, time
from napari_segkit.tiling import predict
t = time.perf_counter()
predict(sys.argv[1], sys.argv[2], out=sys.argv[3], tile_size=64, overlap=0.25,
        block_size=512, batch_size=2, output="labels")
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--workdir", default="/tmp/segkit-bench-3d")
    args = parser.parse_args()

    import torch
    import zarr

    from napari_segkit.models import build_model, save_model

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.manual_seed(0)
    model = work / "tiny3d.safetensors"
    save_model(model, build_model("unet3d", 1, 2, width=2, depth=2), tile_size=(64, 64, 64))
    peaks = []
    for n in args.planes:
        volume = work / f"stack_{n}.zarr"
        z = zarr.create_array(
            str(volume), shape=(n, args.side, args.side), dtype="f4", chunks=(16, 256, 256)
        )
        rng = np.random.default_rng(0)
        for i in range(0, n, 16):
            z[i : i + 16] = rng.random((min(16, n - i), args.side, args.side), dtype=np.float32)
        run = subprocess.run(
            [sys.executable, "-c", CHILD, str(model), str(volume), str(work / f"out_{n}.zarr")],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds, peak_kb = run.stdout.split()[-2:]
        size_mb = n * args.side * args.side * 4 / 2**20
        peaks.append(int(peak_kb) / 1024)
        print(
            f"{n} x {args.side} x {args.side} ({size_mb:.0f} MB float32): "
            f"{float(seconds):.1f} s, peak RSS {peaks[-1]:.0f} MB"
        )
    print(f"peak ratio largest / smallest volume: {max(peaks) / min(peaks):.3f}")


if __name__ == "__main__":
    main()
