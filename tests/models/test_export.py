"""ONNX and TorchScript exports: every registered architecture, checked against PyTorch,
and the exported files loaded back and run by the tile engine like model files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.exchange import export_model
from napari_segkit.models import (
    ExportError,
    ModelFileError,
    build_model,
    get_architecture,
    list_architectures,
    load_model,
    read_model_info,
    save_model,
)
from napari_segkit.models.export import TOLERANCE, to_onnx, to_torchscript
from napari_segkit.tiling import predict

pytest.importorskip("onnxruntime")

#: SMP's pyramid-pooling decoders: adaptive pooling bins depend on the input size
NOT_ONNX_EXPORTABLE = {"pspnet", "upernet"}
ARCHITECTURES = [a["name"] for a in list_architectures()]


def _tiny(name: str, in_channels=1, num_classes=3):
    torch.manual_seed(0)
    return build_model(
        name, in_channels, num_classes, **get_architecture(name).tiny_options
    ).eval()


def _other_input(model, n: int) -> torch.Tensor:
    """A size the export was not traced at: (N, 1, H, W), or (N, 1, D, H, W) in 3D."""
    if model.spatial_dims == 3:
        dz, dy, dx = model.divisors
        return torch.randn(n, 1, 3 * dz, 5 * dy, 3 * dx)
    d = model.divisor
    return torch.randn(n, 1, 4 * max(d, 32), 5 * max(d, 32))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_onnx_export_of_every_architecture_matches_pytorch(name):
    import onnxruntime as ort

    model = _tiny(name)
    if name in NOT_ONNX_EXPORTABLE:
        with pytest.raises(ExportError, match=name):
            to_onnx(model)
        return
    data, difference = to_onnx(model)
    assert difference <= TOLERANCE
    # independently of the export's own check: another size, batch 3, channels 1
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = _other_input(model, 3)
    with torch.inference_mode():
        expected = torch.softmax(model.net(x), 1).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - expected).max() <= TOLERANCE


def test_an_export_that_disagrees_with_pytorch_is_refused():
    """The check behind every export can fail: a real ONNX graph of the same architecture
    with other weights (what a wrongly frozen step amounts to) is refused, naming the gap."""
    import onnxruntime as ort

    from napari_segkit.models.export import check_against_torch

    model = _tiny("unet")
    torch.manual_seed(1)
    other = build_model("unet", 1, 3, **get_architecture("unet").tiny_options).eval()
    data, _ = to_onnx(other)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    with pytest.raises(ExportError, match=r"'unet' differs from PyTorch by .* \(> 0.001\)"):
        check_against_torch(model, lambda x: session.run(None, {"input": x})[0], "ONNX")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_torchscript_export_of_every_architecture_matches_pytorch(name):
    model = _tiny(name, num_classes=1)  # one sigmoid channel
    scripted, difference = to_torchscript(model)
    assert difference <= TOLERANCE
    x = _other_input(model, 2)
    with torch.inference_mode():
        assert torch.allclose(scripted(x), torch.sigmoid(model.net(x)), atol=TOLERANCE)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("unet_original", 1, 3, width=4, depth=2)
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    save_model(
        path,
        model,
        class_names=["background", "cell", "edge"],
        tile_size=(64, 64),
        training={"authors": ["A. Tester"]},
    )
    return path


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_exported_file_loads_and_predicts_like_the_model_file(model_path, tmp_path, suffix):
    out = export_model(model_path, tmp_path / f"tiny{suffix}")
    info = read_model_info(out)
    assert info.class_names == ["background", "cell", "edge"]
    assert info.tile_size == [64, 64]
    original, exported = load_model(model_path), load_model(out)
    assert type(exported.model).__name__ == "ExchangedModel"
    image = make_nuclei((90, 110), seed=1).image
    stack = np.stack([make_nuclei((70, 80), seed=s).image for s in (2, 3)])
    for data in (image, stack):
        a = predict(original, data, output="probabilities", runtime="torch")
        b = predict(exported, data, output="probabilities")
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_exports_refuse_bad_requests(model_path, tmp_path):
    with pytest.raises(ValueError, match="cannot tell the export format"):
        export_model(model_path, tmp_path / "model.bin")
    with pytest.raises(ValueError, match="format="):
        export_model(model_path, tmp_path / "m.zip", format="keras")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_model(model_path, tmp_path / "missing" / "m.onnx")
    with pytest.raises(ValueError, match="bioimage.io packages only"):
        export_model(model_path, tmp_path / "m.onnx", authors=["x"])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_foreign_onnx_without_description_is_refused(tmp_path):
    model = _tiny("unet_original")
    path = tmp_path / "foreign.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.net, (torch.zeros(1, 1, 64, 64),), str(path), dynamo=False)
    with pytest.raises(ModelFileError, match="without napari-segkit's description"):
        load_model(path)


def test_onnxruntime_runtime_equals_pytorch_and_resumes_the_same_output(model_path, tmp_path):
    image = make_nuclei((150, 170), seed=4).image
    model = load_model(model_path)
    a = predict(model, image, output="probabilities", runtime="torch")
    b = predict(model, image, output="probabilities", runtime="onnxruntime")
    np.testing.assert_allclose(b, a, atol=1e-4)
    # the output records the model's weights, not the runtime: a zarr written with one
    # runtime is the same output for the other (no "other settings" refusal)
    out = tmp_path / "seg.zarr"
    predict(model, image, out=out, runtime="torch")
    again = predict(model, image, out=out, runtime="onnxruntime")
    np.testing.assert_array_equal(np.asarray(again), predict(model, image, runtime="torch"))
    with pytest.raises(ValueError, match="runtime="):
        predict(model, image, runtime="tensorrt")


def test_auto_runtime_falls_back_to_pytorch_for_unexportable_architectures(monkeypatch):
    from napari_segkit.tiling import prediction

    monkeypatch.setattr(prediction, "ONNXRUNTIME_MIN_PIXELS", 1)  # any image is "large"
    model = _tiny("pspnet")
    model.in_channels, model.num_classes = 1, 3
    image = make_nuclei((64, 64), seed=5).image.astype(np.float32)
    with pytest.warns(UserWarning, match="running with PyTorch"):
        auto = predict(model, image, output="probabilities", runtime="auto")
    np.testing.assert_allclose(
        auto, predict(model, image, output="probabilities", runtime="torch")
    )
    with pytest.raises(ExportError, match="pspnet"):
        predict(model, image, runtime="onnxruntime")


def test_exported_model_runs_on_a_dask_cluster(model_path, tmp_path, local_cluster):
    """Workers load the .onnx export themselves (a session cannot be pickled to them)."""
    onnx_path = export_model(model_path, tmp_path / "tiny.onnx")
    image = make_nuclei((80, 96), seed=7).image
    local = predict(str(onnx_path), image, out=tmp_path / "local.zarr", block_size=32)
    with local_cluster(n_workers=1) as client:
        remote = predict(
            str(onnx_path), image, out=tmp_path / "dask.zarr", block_size=32, client=client
        )
    np.testing.assert_array_equal(remote[:], local[:])
