"""The prepared inference model: folded for SMP modules too, and prepared once per model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segkit.models import load_model, save_model
from napari_segkit.tiling import optimize, predict


def _bn_count(module):
    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def test_a_plain_smp_unet_is_folded_and_agrees():
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    model = smp.Unet(
        "resnet18",
        encoder_weights=None,
        in_channels=1,
        classes=2,
        encoder_depth=3,
        decoder_channels=(32, 16, 8),
    )
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 1, 64, 64))  # non-trivial running statistics
    model.eval()
    prepared = optimize.fuse_for_inference(model, in_channels=1, divisor=8)
    assert _bn_count(model) > 0 and _bn_count(prepared) == 0  # today's trace fell back: all kept
    x = torch.randn(1, 1, 96, 64)
    with torch.inference_mode():
        np.testing.assert_allclose(
            prepared(x.contiguous(memory_format=torch.channels_last)), model(x), atol=1e-4
        )


def test_a_second_predict_call_does_not_prepare_the_model_again(tmp_path, tiny_unet):
    model_file = load_model(save_model(tmp_path / "m.safetensors", tiny_unet, tile_size=(32, 32)))
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    first = predict(model_file, image)
    before = optimize.preparations
    for _ in range(3):
        np.testing.assert_array_equal(predict(model_file, image), first)
    assert optimize.preparations == before  # reused, not prepared 3 more times
    with torch.no_grad():  # weights changed in place (as fine-tuning does): prepared again
        next(model_file.model.parameters()).add_(1.0)
    predict(model_file, image)
    assert optimize.preparations == before + 1
