from __future__ import annotations

import pytest
import torch
from pixel_model import PixelModel

from napari_segkit.models import build_model


@pytest.fixture
def pixel_model():
    return PixelModel()


@pytest.fixture(scope="session")
def tiny_unet():
    torch.manual_seed(0)
    model = build_model("unet_original", 1, 3, width=4, depth=2).eval()
    # non-trivial batch-norm statistics
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 64, 64) * 2 + 0.5)
    return model.eval()
