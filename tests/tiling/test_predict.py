from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
import torch
import zarr
from pixel_model import PixelModel

from napari_segkit.core.errors import IncompleteOutputError
from napari_segkit.core.io import read_stack
from napari_segkit.models import save_model
from napari_segkit.tiling import InputError, OutputExistsError, PredictionCancelled, predict


def whole_image(model, image):
    with torch.no_grad():
        logits = model(torch.as_tensor(image, dtype=torch.float32)[None, None])
    return torch.softmax(logits, 1)[0].numpy()


@pytest.mark.parametrize("shape", [(97, 131), (256, 300), (30, 50), (1, 1), (5, 140)])
def test_centre_crop_tiling_equals_whole_image(tiny_unet, shape):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    tiled = predict(
        tiny_unet,
        image,
        tile_size=64,
        overlap=0.75,
        blend="centre",
        output="probabilities",
        normalization=None,
    )
    np.testing.assert_allclose(tiled, whole_image(tiny_unet, image), atol=1e-5)


def test_gaussian_blending_leaves_no_seams(tiny_unet):
    image = np.random.default_rng(1).random((200, 260), dtype=np.float32)
    tiled = predict(tiny_unet, image, tile_size=64, overlap=0.5, output="probabilities")
    full = whole_image(tiny_unet, image)
    diff = np.abs(tiled - full).max(0)
    assert diff.max() < 0.05
    # no seam: differences along tile borders are no larger than elsewhere on average
    rows = [32 * i for i in range(1, 6)]
    assert diff[rows].mean() < 3 * diff.mean() + 1e-4


@pytest.mark.parametrize("blend", ["gaussian", "linear", "centre"])
@pytest.mark.parametrize("shape", [(37, 53), (130, 70), (8, 8)])
def test_trivial_predictor_is_reproduced_exactly(pixel_model, blend, shape):
    image = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    probs = predict(
        pixel_model,
        image,
        tile_size=32,
        overlap=0.25,
        blend=blend,
        output="probabilities",
        batch_size=3,
    )
    np.testing.assert_allclose(probs, pixel_model.expected(image[None]), atol=1e-6)


def test_inputs_of_every_kind_give_the_same_result(tmp_path):
    model = PixelModel(in_channels=2, num_classes=2)
    rng = np.random.default_rng(3)
    zyxc = rng.normal(size=(3, 41, 57, 2)).astype(np.float32)
    expected = np.stack([model.expected(plane.transpose(2, 0, 1)) for plane in zyxc], axis=1)
    z = zarr.create_array(
        str(tmp_path / "in.zarr"), shape=zyxc.shape, dtype="f4", chunks=(1, 16, 16, 2)
    )
    z[:] = zyxc
    variants = {
        "numpy": (zyxc, None),
        "dask": (da.from_array(zyxc, chunks=(1, 20, 20, 2)), None),
        "zarr": (z, None),
        "channel-first": (np.ascontiguousarray(zyxc.transpose(3, 0, 1, 2)), "CZYX"),
        "path": (str(tmp_path / "in.zarr"), None),
    }
    for name, (image, axes) in variants.items():
        labels, probs = predict(model, image, axes=axes, tile_size=16, overlap=0.5, output="both")
        assert probs.shape == (2, 3, 41, 57), name
        np.testing.assert_allclose(probs, expected, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(labels, expected.argmax(0), err_msg=name)


def test_2d_multichannel_and_binary_models():
    rgb = np.random.default_rng(4).random((40, 50, 3)).astype(np.float32)
    model = PixelModel(in_channels=3, num_classes=3)
    labels = predict(model, rgb, tile_size=32)
    assert labels.shape == (40, 50) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, model.expected(rgb.transpose(2, 0, 1)).argmax(0))
    binary = PixelModel(in_channels=1, num_classes=1)
    gray = rgb[..., 0] - 0.5
    labels, probs = predict(binary, gray, tile_size=32, output="both")
    assert probs.shape == (1, 40, 50)
    np.testing.assert_array_equal(labels, (gray > 0).astype(np.uint8))


def test_probability_dtypes():
    model = PixelModel()
    image = np.random.default_rng(5).normal(size=(30, 30)).astype(np.float32)
    p32 = predict(model, image, tile_size=16, output="probabilities")
    p16 = predict(model, image, tile_size=16, output="probabilities", prob_dtype="float16")
    p8 = predict(model, image, tile_size=16, output="probabilities", prob_dtype="uint8")
    assert p16.dtype == np.float16 and p8.dtype == np.uint8
    np.testing.assert_allclose(p16, p32, atol=1e-3)
    np.testing.assert_allclose(p8 / 255, p32, atol=0.5 / 255 + 1e-6)


def test_tta_on_an_equivariant_model_changes_nothing(tiny_unet):
    image = np.random.default_rng(6).random((48, 48), dtype=np.float32)
    base = predict(PixelModel(), image, tile_size=32, output="probabilities")
    for tta in ("flips", "d4"):
        np.testing.assert_allclose(
            predict(PixelModel(), image, tile_size=32, output="probabilities", tta=tta),
            base,
            atol=1e-6,
        )
    # on a real network D4 averaging is invariant to rotating the input
    rot = predict(
        tiny_unet, np.rot90(image).copy(), tile_size=48, tta="d4", output="probabilities"
    )
    plain = predict(tiny_unet, image, tile_size=48, tta="d4", output="probabilities")
    np.testing.assert_allclose(np.rot90(plain, axes=(1, 2)), rot, atol=1e-5)


def test_model_file_settings_are_the_defaults(tmp_path, tiny_unet):
    path = save_model(
        tmp_path / "m.safetensors",
        tiny_unet,
        class_names=["a", "b", "c"],
        normalization={"mode": "fixed", "mean": [10.0], "std": [2.0]},
        tile_size=(32, 32),
    )
    image = np.random.default_rng(7).normal(10, 2, (50, 60)).astype(np.float32)
    from_file = predict(str(path), image, output="probabilities")
    by_hand = predict(tiny_unet, (image - 10) / 2, tile_size=32, output="probabilities")
    np.testing.assert_allclose(from_file, by_hand, atol=1e-6)


def test_percentile_normalisation_from_a_sample(tiny_unet):
    image = np.random.default_rng(8).random((64, 64), dtype=np.float32)
    norm = {"mode": "percentile", "low": 0.0, "high": 100.0}
    a = predict(tiny_unet, image, tile_size=32, normalization=norm, output="probabilities")
    scaled = predict(
        tiny_unet, image * 1000 + 7, tile_size=32, normalization=norm, output="probabilities"
    )
    np.testing.assert_allclose(a, scaled, atol=1e-4)


def test_progress_and_cancel(tmp_path):
    calls = []
    image = np.zeros((3, 40, 40), np.float32)
    predict(PixelModel(), image, tile_size=16, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3, 3)
    event = threading.Event()
    event.set()
    with pytest.raises(PredictionCancelled):
        predict(PixelModel(), image, tile_size=16, cancel=event)
    with pytest.raises(PredictionCancelled):
        predict(
            PixelModel(),
            image,
            tile_size=16,
            out=tmp_path / "o.zarr",
            block_size=16,
            cancel=lambda: True,
        )
    assert zarr.open_group(str(tmp_path / "o.zarr")).attrs["segkit"]["complete"] is False
    with pytest.raises(IncompleteOutputError, match="unfinished"):
        read_stack(tmp_path / "o.zarr", array="labels")


def test_zarr_output_resumes_after_cancel_and_equals_in_memory(tmp_path, tiny_unet):
    image = np.random.default_rng(9).random((2, 100, 90), dtype=np.float32)
    expected_labels, expected_probs = predict(tiny_unet, image, tile_size=32, output="both")
    out = tmp_path / "o.zarr"
    stop_after = {"n": 0}

    def cancel():
        stop_after["n"] += 1
        return stop_after["n"] > 3

    with pytest.raises(PredictionCancelled):
        predict(
            tiny_unet, image, tile_size=32, output="both", out=out, block_size=32, cancel=cancel
        )
    assert 0 < len(list((out / ".segkit_done").iterdir())) < 24
    seen = []
    labels, probs = predict(
        tiny_unet,
        image,
        tile_size=32,
        output="both",
        out=out,
        block_size=32,
        progress=lambda d, t: seen.append(d),
    )
    assert seen[0] > 0  # started from the finished blocks
    assert labels.chunks == (1, 32, 32)
    np.testing.assert_array_equal(labels[:], expected_labels)
    np.testing.assert_allclose(probs[:], expected_probs, atol=1e-6)
    stack = read_stack(out, array="labels")
    assert stack.data.shape == (2, 100, 90)
    # a completed output is not recomputed
    again = []
    predict(
        tiny_unet,
        image,
        tile_size=32,
        output="both",
        out=out,
        block_size=32,
        progress=lambda d, t: again.append(d),
    )
    assert again == [24]  # 2 planes x 4 x 3 blocks


def test_other_settings_refuse_unless_overwrite(tmp_path):
    image = np.zeros((20, 20), np.float32)
    out = tmp_path / "o.zarr"
    predict(PixelModel(), image, tile_size=16, out=out)
    with pytest.raises(OutputExistsError, match="other settings.*overwrite"):
        predict(PixelModel(), image, tile_size=8, out=out)
    assert zarr.open_group(str(out)).attrs["segkit"]["settings"]["tile_size"] == [16, 16]
    predict(PixelModel(), image, tile_size=8, out=out, overwrite=True)
    assert zarr.open_group(str(out)).attrs["segkit"]["settings"]["tile_size"] == [8, 8]
    (tmp_path / "user.zarr").mkdir()
    (tmp_path / "user.zarr" / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a napari-segkit prediction"):
        predict(PixelModel(), image, tile_size=8, out=tmp_path / "user.zarr")
    assert (tmp_path / "user.zarr" / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("image", "kwargs", "error", "match"),
    [
        (np.zeros(10, np.float32), {}, InputError, "2 to 4 dimensions"),
        (np.zeros((2, 2, 2, 2, 2), np.float32), {}, InputError, "2 to 4 dimensions"),
        (np.zeros((0, 10), np.float32), {}, InputError, "empty"),
        (np.zeros((10, 10, 3), np.float32), {}, InputError, "expects 1 channel"),
        (np.full((10, 10), np.nan, np.float32), {}, ValueError, "NaN"),
        (np.zeros((10, 10), np.float32), {"axes": "ZX"}, InputError, "axes"),
        (np.zeros((10, 10), np.float32), {"output": "mask"}, ValueError, "output must be one of"),
        (np.zeros((10, 10), np.float32), {"tta": "rot"}, ValueError, "tta must be one of"),
        (np.zeros((10, 10), np.float32), {"overlap": 1.0}, ValueError, "overlap"),
        (np.zeros((10, 10), np.float32), {"device": "cuda"}, ValueError, "no CUDA"),
    ],
)
def test_bad_input_is_a_clear_error(image, kwargs, error, match):
    with pytest.raises(error, match=match):
        predict(PixelModel(), image, tile_size=8, **kwargs)


def test_nan_in_a_zarr_run_leaves_no_complete_output(tmp_path):
    image = np.zeros((40, 40), np.float32)
    image[35, 35] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict(
            PixelModel(),
            image,
            tile_size=8,
            out=tmp_path / "o.zarr",
            block_size=16,
            normalization=None,
        )
    assert zarr.open_group(str(tmp_path / "o.zarr")).attrs["segkit"]["complete"] is False


def test_unwritable_output_path(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises((FileNotFoundError, NotADirectoryError, PermissionError)):
        predict(PixelModel(), np.zeros((8, 8), np.float32), out=tmp_path / "afile" / "o.zarr")
    with pytest.raises(FileNotFoundError):
        predict(PixelModel(), np.zeros((8, 8), np.float32), out=tmp_path / "no" / "o.zarr")
    with pytest.raises(ValueError, match=r"\.zarr path"):
        predict(PixelModel(), np.zeros((8, 8), np.float32), out=tmp_path / "o.tif")


def test_batch_norm_folding_keeps_results_and_the_users_model():
    import copy

    from napari_segkit.models import build_model
    from napari_segkit.tiling.optimize import fuse_for_inference

    torch.manual_seed(3)
    model = build_model("unet", 1, 2, encoder_name="resnet18").eval()
    before = copy.deepcopy(model.state_dict())
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-4, rtol=1e-4)
    image = np.random.default_rng(10).random((70, 90), dtype=np.float32)
    np.testing.assert_allclose(
        predict(model, image, tile_size=64, output="probabilities"),
        predict(model, image, tile_size=64, output="probabilities", optimize=False),
        atol=1e-4,
    )


def test_batch_norm_folding_falls_back_when_a_trace_specialises_a_branch():
    """A sub-module with an optional input traces "successfully" with the branch taken;
    the fused copy would fail on the call without it, so the plain copy is used."""
    from torch import nn

    from napari_segkit.tiling.optimize import fuse_for_inference

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2)

        def forward(self, x, skip=None):
            if skip is not None:
                x = x + skip
            return self.bn(self.conv(x))

    class Net(nn.Module):
        in_channels, num_classes = 2, 2

        def __init__(self):
            super().__init__()
            self.a, self.b = Block(), Block()

        def forward(self, x):
            return self.b(self.a(x))  # no skip given: the traced graph would add a None

    torch.manual_seed(0)
    net = Net().eval()
    fused = fuse_for_inference(net)
    x = torch.randn(1, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net(x))
    image = np.random.default_rng(1).random((2, 20, 24), dtype=np.float32)
    np.testing.assert_allclose(
        predict(net, image, axes="CYX", output="probabilities"),
        predict(net, image, axes="CYX", output="probabilities", optimize=False),
        atol=1e-6,
    )


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"
)
def test_cpu_and_gpu_agree_within_tolerance():
    """The CUDA path (autocast fp16, pinned non-blocking copies, channels-last) vs the CPU."""
    from napari_segkit.models import build_model

    torch.manual_seed(0)
    model = build_model("unet", 1, 3, encoder_name="resnet18").eval()
    image = np.random.default_rng(4).random((300, 420), dtype=np.float32)
    cpu = predict(model, image, tile_size=128, device="cpu", output="probabilities")
    gpu = predict(model, image, tile_size=128, device="cuda", output="probabilities")
    np.testing.assert_allclose(gpu, cpu, atol=2e-2)  # fp16 autocast
    exact = predict(model, image, tile_size=128, device="cuda", amp=False, output="probabilities")
    np.testing.assert_allclose(exact, cpu, atol=1e-3)
    assert (np.argmax(gpu, 0) == np.argmax(cpu, 0)).mean() > 0.99


def test_tile_progress_counts_every_batch_of_tiles():
    """Finer than per-block progress (issue 19.3): one block of 3 x 3 tiles, batch 2."""
    calls = []
    image = np.zeros((40, 40), np.float32)
    predict(
        PixelModel(),
        image,
        tile_size=16,
        overlap=0.0,
        batch_size=2,
        tile_progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[0] == (0, 9) and calls[-1] == (9, 9)
    assert [d for d, _ in calls] == [0, 2, 4, 6, 8, 9]
