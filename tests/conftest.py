"""Shared fixtures: tiny synthetic data, and the one gate to real data in ../shared/data."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from napari_segkit.core.synthetic import make_nuclei

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def nuclei_2d():
    return make_nuclei((64, 80), seed=3)


@pytest.fixture(scope="session")
def nuclei_3d():
    return make_nuclei((6, 48, 40), radius=(5.0, 8.0), seed=4)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real data beside the checkout (never copied into the repository)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def held_out_fluorescence(shared_data):
    """A real DSB2018 fluorescence sample the default model never trained on (the first
    of its validation split): ``.image`` (Y, X, 3) uint8, ``.instances``."""
    from napari_segkit.kaggle import read_dsb2018
    from napari_segkit.models import read_model_info
    from napari_segkit.samples import DEFAULT_MODEL

    kinds = read_model_info(DEFAULT_MODEL).training["validation_kinds"]
    first = min(i for i, k in kinds.items() if k == "fluorescence")
    (sample,) = read_dsb2018(shared_data / "dsb2018-train" / "stage1_train", ids=[first])
    return sample


@pytest.fixture(scope="session")
def shrunk_fluorescence(held_out_fluorescence):
    """That image at 40 % of its pixel size (as a 4x weaker objective would show it),
    uint8 RGB: its nuclei lie below the sizes the default model was trained on."""
    import numpy as np
    from skimage.transform import rescale

    image = held_out_fluorescence.image.astype(np.float32)
    return rescale(image, 0.4, channel_axis=-1, preserve_range=True).astype(np.uint8)


@pytest.fixture(autouse=True)
def _restore_environment():
    """Undo what a test leaves in os.environ: dask.distributed's LocalCluster sets
    OMP_NUM_THREADS=1 (and MKL / OpenBLAS) in the parent process and keeps them, so a
    later test's subprocess would run torch on one thread -- and sum in another order
    than the test process (1-ulp differences in "bit-identical" resume checks)."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Undo a test's torch.set_num_threads (the training script's --threads sets it for the
    whole process), so that no test runs on a thread count an earlier one left behind."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def local_cluster():
    """Start a real dask.distributed cluster of processes (one thread each) when called:
    ``with local_cluster(n_workers=2) as client: ...`` (skipped without distributed)."""
    distributed = pytest.importorskip("distributed")

    @contextlib.contextmanager
    def start(n_workers: int = 2):
        with (
            distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client

    return start
