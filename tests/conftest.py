"""Shared fixtures: tiny synthetic data, and the one gate to real data in ../shared/data."""

from __future__ import annotations

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
