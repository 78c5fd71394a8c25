"""bioimage.io packages: ours pass bioimageio.core's own test for every weight format and
come back with the same predictions; foreign ones run with their own pre- and
post-processing; pickled code is refused without being run."""

from __future__ import annotations

import typing
import zipfile

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.exchange import export_model
from napari_segkit.models import (
    PackageError,
    build_model,
    load_model,
    read_model_info,
    save_model,
)
from napari_segkit.tiling import predict

bioimageio_core = pytest.importorskip("bioimageio.core")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model file, package) of a tiny 3-class U-Net."""
    torch.manual_seed(0)
    model = build_model("unet_original", 1, 3, width=4, depth=2)
    folder = tmp_path_factory.mktemp("bioimageio")
    path = folder / "tiny.safetensors"
    save_model(path, model, class_names=["background", "nucleus", "boundary"], tile_size=(64, 64))
    package = export_model(
        path,
        folder / "tiny.zip",
        authors=["A. Tester"],
        cite=[{"text": "U-Net", "doi": "10.1007/978-3-319-24574-4_28"}],
        test_image=make_nuclei((200, 200), seed=9).image,
        test_size=128,
    )
    return path, package


@pytest.mark.parametrize("weights", ["pytorch_state_dict", "torchscript", "onnx"])
def test_exported_package_passes_bioimageio_core_test(exported, weights):
    summary = bioimageio_core.test_model(exported[1], weight_format=weights)
    failed = [(d.name, d.errors) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed


def test_package_holds_what_the_spec_asks_for(exported):
    with zipfile.ZipFile(exported[1]) as z:
        names = set(z.namelist())
        rdf = yaml.safe_load(z.read("rdf.yaml"))
    assert {"weights.pt", "weights_torchscript.pt", "weights.onnx", "cover.png"} <= names
    assert {"segkit_architecture.py", "test_input.npy", "test_output.npy", "README.md"} <= names
    from bioimageio.spec.model.v0_5 import ModelDescr

    # the spec version the installed bioimageio.spec writes (read, never hard-coded)
    (installed,) = typing.get_args(ModelDescr.model_fields["format_version"].annotation)
    assert rdf["format_version"] == installed
    assert rdf["authors"][0]["name"] == "A. Tester"
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["background", "nucleus", "boundary"]
    assert "scale_range" in [op["id"] for op in rdf["inputs"][0]["preprocessing"]]
    assert rdf["outputs"][0]["axes"][2]["halo"] == 8  # overlap 0.25 of a 64-pixel tile, halved
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "segkit_network"


@pytest.mark.parametrize("weights", ["auto", "torchscript", "onnx"])
def test_export_then_import_predicts_the_same(exported, weights):
    path, package = exported
    original = load_model(path)
    imported = load_model(package, weights=weights)
    assert imported.info.class_names == original.info.class_names
    assert imported.info.normalization == original.info.normalization
    assert read_model_info(package).tile_size == [64, 64]
    image = make_nuclei((130, 150), seed=2).image
    stack = np.stack([make_nuclei((80, 90), seed=s).image for s in (3, 4)])
    for data in (image, stack):
        a = predict(original, data, output="probabilities", runtime="torch")
        b = predict(imported, data, output="probabilities", runtime="torch")
        np.testing.assert_allclose(b, a, atol=1e-5)


def _unpack(package, folder):
    with zipfile.ZipFile(package) as z:
        z.extractall(folder)
    return folder, yaml.safe_load((folder / "rdf.yaml").read_text())


class _Evil:
    """Unpickling this runs a shell command: what a malicious weights file does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_in_weights_is_refused_without_running(exported, tmp_path):
    folder, rdf = _unpack(exported[1], tmp_path / "package")
    marker = tmp_path / "pwned"
    torch.save({"net.first": _Evil(marker)}, folder / "weights.pt")
    # only the pickle-bearing entry left
    for fmt in ("torchscript", "onnx"):
        rdf["weights"].pop(fmt)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(PackageError, match="refused without unpickling"):
        load_model(folder)
    assert not marker.exists()
    # a foreign package's state dict needs its Python source run: refused outright
    rdf.pop("config")
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(PackageError, match="Python source"):
        load_model(folder / "rdf.yaml")
    assert not marker.exists()


def test_unsupported_processing_is_named(exported, tmp_path):
    folder, rdf = _unpack(exported[1], tmp_path / "package")
    rdf.pop("config")  # foreign: its pre-processing is read, not ours
    rdf["inputs"][0]["preprocessing"] = [{"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}}]
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(PackageError, match="'clip'"):
        load_model(folder, weights="onnx")


class _ChannelsLast(nn.Module):
    """A foreign network: (b, y, x, c) in and out, two independent (sigmoid) channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 5, padding=2)

    def forward(self, x):
        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def test_foreign_package_runs_with_its_own_processing(tmp_path):
    """Channels last, zero-mean-unit-variance pre-processing, sigmoid post-processing:
    our tiled prediction equals bioimageio.core's on the package (per pixel, the two
    sigmoid channels normalised to sum to one, which is how we show them)."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as m

    torch.manual_seed(1)
    net = _ChannelsLast().eval()
    torch.jit.save(torch.jit.script(net), tmp_path / "net.pt")
    image = make_nuclei((96, 96), seed=6).image.astype(np.float32)
    x = image[None, :, :, None]
    normalised = (x - x.mean()) / (x.std() + 1e-6)
    with torch.inference_mode():
        y = torch.sigmoid(net(torch.from_numpy(normalised))).numpy()
    np.save(tmp_path / "in.npy", x)
    np.save(tmp_path / "out.npy", y)
    (tmp_path / "README.md").write_text("# foreign\n\n## Validation\n\nnone\n")
    size = m.ParameterizedSize(min=16, step=16)
    descr = m.ModelDescr(
        name="foreign channels-last",
        description="a tiny test model",
        authors=[m.Author(name="Someone Else")],
        cite=[m.CiteEntry(text="test", doi="10.1007/978-3-319-24574-4_28")],
        license=m.LicenseId("MIT"),
        documentation=m.FileDescr(source=tmp_path / "README.md"),
        inputs=[
            m.InputTensorDescr(
                id=m.TensorId("raw"),
                axes=[
                    m.BatchAxis(),
                    m.SpaceInputAxis(id=m.AxisId("y"), size=size),
                    m.SpaceInputAxis(id=m.AxisId("x"), size=size),
                    m.ChannelAxis(channel_names=["gray"]),
                ],
                test_tensor=m.FileDescr(source=tmp_path / "in.npy"),
                preprocessing=[m.ZeroMeanUnitVarianceDescr(kwargs=m.ZeroMeanUnitVarianceKwargs())],
            )
        ],
        outputs=[
            m.OutputTensorDescr(
                id=m.TensorId("masks"),
                axes=[
                    m.BatchAxis(),
                    *(
                        m.SpaceOutputAxis(
                            id=m.AxisId(a),
                            size=m.SizeReference(tensor_id=m.TensorId("raw"), axis_id=m.AxisId(a)),
                        )
                        for a in "yx"
                    ),
                    m.ChannelAxis(channel_names=["foreground", "contour"]),
                ],
                test_tensor=m.FileDescr(source=tmp_path / "out.npy"),
                postprocessing=[m.SigmoidDescr(id="sigmoid")],
            )
        ],
        weights=m.WeightsDescr(
            torchscript=m.TorchscriptWeightsDescr(
                source=tmp_path / "net.pt", pytorch_version=m.Version("2.0")
            )
        ),
    )
    package = save_bioimageio_package(descr, output_path=tmp_path / "foreign.zip")
    model = load_model(package)
    assert model.info.class_names == ["foreground", "contour"]
    assert model.info.normalization["mode"] == "meanstd"
    ours = predict(model, image, output="probabilities", tile_size=96, overlap=0.25)
    np.testing.assert_allclose(ours, y[0].transpose(2, 0, 1) / y[0].sum(-1), atol=1e-4)
