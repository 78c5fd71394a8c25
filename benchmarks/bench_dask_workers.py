"""Throughput of zarr-to-zarr prediction on a dask LocalCluster with 1 and 2 workers.

    python benchmarks/bench_dask_workers.py [--planes 8]

Each worker is a process with one torch thread; prints megapixels per second for each
worker count and the speed-up of 2 workers over 1 (this machine has 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=8)
    parser.add_argument("--workdir", default="/tmp/segkit-bench-dask")
    args = parser.parse_args()
    import torch
    from distributed import Client, LocalCluster

    from napari_segkit.core.io import write_stack
    from napari_segkit.models import build_model, save_model
    from napari_segkit.tiling import predict

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.manual_seed(0)
    model = save_model(
        work / "m.safetensors",
        build_model("unet_original", 1, 2, width=8, depth=3),
        normalization={"mode": "none"},
    )
    image = np.random.default_rng(0).random((args.planes, 1024, 1024), dtype=np.float32)
    write_stack(work / "in.zarr", image, chunks=(1, 512, 512))
    rates = {}
    for n_workers in (1, 2):
        with (
            LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            predict(
                str(model),
                str(work / "in.zarr"),
                out=work / "warm.zarr",
                block_size=512,
                tile_size=256,
                client=client,
                overwrite=True,
            )  # workers load the model
            t = time.perf_counter()
            predict(
                str(model),
                str(work / "in.zarr"),
                out=work / f"out{n_workers}.zarr",
                block_size=512,
                tile_size=256,
                client=client,
            )
            seconds = time.perf_counter() - t
        rates[n_workers] = image.size / seconds / 1e6
        print(f"{n_workers} worker(s): {seconds:.1f} s, {rates[n_workers]:.2f} Mpx/s")
    print(f"speed-up 2 workers / 1 worker: {rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
