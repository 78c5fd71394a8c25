from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from napari_segkit.models import (
    EncoderWeightsError,
    ModelFileError,
    build_model,
    load_model,
    read_model_info,
    save_model,
)


@pytest.fixture
def model():
    torch.manual_seed(1)
    m = build_model("unet_original", 1, 3, width=4, depth=2, upsampling="bilinear")
    # make batch-norm statistics non-trivial, so buffers must be saved too
    m.train()
    m(torch.randn(4, 1, 32, 32) * 3 + 1)
    return m.eval()


def test_round_trip_is_bit_identical(tmp_path, model):
    path = save_model(
        tmp_path / "m.safetensors",
        model,
        class_names=["bg", "cell", "edge"],
        normalization={"mode": "percentile", "low": 2.0, "high": 99.0},
        tile_size=(128, 128),
        overlap=0.5,
        training={"loss": "dice+ce", "epochs": 3, "seed": 0, "metrics": {"dice": 0.9}},
    )
    loaded = load_model(path)
    x = torch.randn(2, 1, 45, 61)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    info = loaded.info
    assert (info.arch, info.in_channels, info.num_classes) == ("unet_original", 1, 3)
    assert info.options == {"width": 4, "depth": 2, "upsampling": "bilinear"}
    assert info.class_names == ["bg", "cell", "edge"] and len(info.class_colors) == 3
    assert info.tile_size == [128, 128] and info.overlap == 0.5
    assert info.training["loss"] == "dice+ce" and "torch" in info.versions
    assert info.format_version == 1
    assert not loaded.model.training
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_tuple_options_survive(tmp_path):
    m = build_model(
        "fcdensenet56",
        1,
        2,
        down_layers=(1, 1, 1, 1, 1),
        bottleneck_layers=1,
        growth_rate=2,
        first_channels=4,
    ).eval()
    loaded = load_model(save_model(tmp_path / "d.safetensors", m))
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), loaded.model(x))


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump({"state_dict": exploit}, f)
    torch.save({"weights": exploit}, tmp_path / "evil_zip.pt")
    for path in (bad, tmp_path / "evil_zip.pt"):
        with pytest.raises(ModelFileError, match="does not unpickle"):
            load_model(path)
    assert not marker.exists()


def test_truncated_and_foreign_files(tmp_path, model):
    path = save_model(tmp_path / "m.safetensors", model)
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="trunc.safetensors"):
        load_model(tmp_path / "trunc.safetensors")
    (tmp_path / "notes.txt").write_text("hello world, not a model")
    with pytest.raises(ModelFileError, match="notes.txt"):
        load_model(tmp_path / "notes.txt")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelFileError, match="not a napari-segkit model"):
        read_model_info(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_model(tmp_path / "missing.safetensors")


def test_failed_save_leaves_no_file(tmp_path, model, monkeypatch):
    import safetensors.torch

    def crash(*args, **kwargs):
        Path(args[1]).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_model", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(tmp_path / "m.safetensors", model)
    assert list(tmp_path.iterdir()) == []


def test_class_name_count_is_checked(tmp_path, model):
    with pytest.raises(ValueError, match="2 class names for a model with 3 output classes"):
        save_model(tmp_path / "m.safetensors", model, class_names=["a", "b"])


def test_encoder_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = build_model("unet", 1, 2, encoder_name="resnet18")
    state = {k: v.contiguous() for k, v in source.net.encoder.state_dict().items()}
    save_file(state, str(tmp_path / "enc.safetensors"))
    torch.save(state, tmp_path / "enc.pth")
    for name in ("enc.safetensors", "enc.pth"):
        target = build_model(
            "fpn", 1, 4, encoder_name="resnet18", encoder_weights=str(tmp_path / name)
        )
        for k, v in state.items():
            assert torch.equal(target.net.encoder.state_dict()[k], v), k
    with pytest.raises(EncoderWeightsError, match=r"enc.safetensors.*(missing|unexpected) keys"):
        build_model(
            "unet",
            1,
            2,
            encoder_name="resnet34",
            encoder_weights=str(tmp_path / "enc.safetensors"),
        )
    with pytest.raises(EncoderWeightsError, match=r"enc.safetensors.*shape mismatches"):
        build_model(
            "unet",
            3,
            2,
            encoder_name="resnet18",
            encoder_weights=str(tmp_path / "enc.safetensors"),
        )
    with pytest.raises(EncoderWeightsError, match="never downloads"):
        build_model("unet", 1, 2, encoder_name="resnet18", encoder_weights="imagenet")


def test_a_header_length_starting_with_0x80_is_still_a_model_file(tmp_path, model):
    """Issue 18.1: 1 file in 32 has a safetensors header length whose first byte is
    pickle's 0x80; such a file is valid and must load (it did not: "a pickle file")."""
    from napari_segkit.models.info import file_kind

    for pad in range(264):  # headers are padded to 8 bytes: the first byte steps by 8
        path = save_model(tmp_path / f"m{pad}.safetensors", model, training={"note": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
        path.unlink()
    else:
        pytest.fail("no padding gave a header length starting with 0x80")
    assert file_kind(path) == "safetensors"
    loaded = load_model(path)
    assert loaded.info.training["note"] == "x" * pad
    # pickles and torch.save zips are still recognised by their own structure
    with open(tmp_path / "p.pkl", "wb") as f:
        pickle.dump({"a": 1}, f, protocol=4)
    torch.save({"a": torch.zeros(1)}, tmp_path / "z.pt")
    assert file_kind(tmp_path / "p.pkl") == "pickle"
    assert file_kind(tmp_path / "z.pt") == "zip"
