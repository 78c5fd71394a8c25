"""Regression tests for the reliability sweep (issue 18) that do not fit the bad-input table."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from napari_segkit.core.io import write_stack
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.kaggle.datasets import read_rle_csv
from napari_segkit.models import build_model, save_model
from napari_segkit.tiling import predict
from napari_segkit.training import train


def _model_file(tmp_path):
    torch.manual_seed(0)
    model = build_model("unet_original", 1, 2, width=4, depth=2)
    return save_model(tmp_path / "m.safetensors", model, tile_size=(32, 32))


@pytest.mark.parametrize(("epochs", "steps"), [(1, 10), (2, 5), (10, 1), (1, 1), (1, 3)])
def test_any_number_of_steps_trains(tmp_path, epochs, steps):
    """10 total steps divided by zero in the one-cycle warm-up."""
    sample = make_nuclei((48, 48), seed=1)
    result = train(
        [sample.image],
        [sample.semantic],
        out=tmp_path / "m.safetensors",
        epochs=epochs,
        steps_per_epoch=steps,
        batch_size=1,
        patch_size=32,
        val_fraction=0,
        arch_options={"width": 4, "depth": 2},
    )
    assert result.info.training["epochs"] == epochs


def test_resume_may_extend_the_epochs(tmp_path):
    sample = make_nuclei((48, 48), seed=1)
    options = {
        "steps_per_epoch": 2,
        "batch_size": 1,
        "patch_size": 32,
        "val_fraction": 0,
        "arch_options": {"width": 4, "depth": 2},
    }
    out = tmp_path / "m.safetensors"
    stop = {"n": 0}

    def cancel():
        stop["n"] += 1
        return stop["n"] > 2  # after the first epoch was saved

    from napari_segkit.jobs import TrainingCancelled

    with pytest.raises(TrainingCancelled):
        train([sample.image], [sample.semantic], out=out, epochs=2, cancel=cancel, **options)
    reports = []
    train(
        [sample.image],
        [sample.semantic],
        out=out,
        epochs=3,
        resume=True,
        progress=reports.append,
        **options,
    )
    epochs = [r.epoch for r in reports if r.end_of_epoch]
    assert epochs == [1, 2]  # continued at epoch 2 of 3, not from scratch


def test_stale_partial_files_of_a_killed_save_are_removed(tmp_path):
    leftover = tmp_path / ".m.safetensors.0badc0de.partial"
    leftover.write_bytes(b"x" * 1000)
    state_leftover = tmp_path / ".m.safetensors.state.pt.12345678.partial"
    state_leftover.write_bytes(b"x")
    sample = make_nuclei((48, 48), seed=1)
    train(
        [sample.image],
        [sample.semantic],
        out=tmp_path / "m.safetensors",
        epochs=1,
        steps_per_epoch=1,
        batch_size=1,
        patch_size=32,
        val_fraction=0,
        arch_options={"width": 4, "depth": 2},
    )
    assert not leftover.exists() and not state_leftover.exists()


def test_a_deleted_chunk_of_a_zarr_input_is_reported(tmp_path):
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32) + 1
    write_stack(tmp_path / "in.zarr", image, chunks=(32, 32))
    chunks = sorted(
        p
        for p in (tmp_path / "in.zarr").rglob("*")
        if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs")
    )
    chunks[0].unlink()
    with pytest.warns(UserWarning, match="1 of 4 chunks .* absent"):
        predict(_model_file(tmp_path), str(tmp_path / "in.zarr"), tile_size=32)


def test_a_complete_zarr_input_gives_no_warning(tmp_path):
    write_stack(tmp_path / "in.zarr", np.ones((64, 64), np.float32), chunks=(32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(_model_file(tmp_path), str(tmp_path / "in.zarr"), tile_size=32)


def test_two_identical_cli_runs_both_succeed(tmp_path):
    write_stack(tmp_path / "in.tif", np.zeros((48, 48), np.uint16))
    model = _model_file(tmp_path)
    for _ in range(2):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "napari_segkit.cli",
                "predict",
                str(model),
                str(tmp_path / "in.tif"),
                str(tmp_path / "o.zarr"),
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr


def test_errors_that_need_no_torch_come_before_torch_loads(tmp_path):
    write_stack(tmp_path / "in.tif", np.zeros((48, 48), np.uint16))
    (tmp_path / "out.tif").write_bytes(b"existing")
    model = _model_file(tmp_path)
    code = (
        "import sys\n"
        "from napari_segkit.cli import main\n"
        f"rc = main(['predict', {str(model)!r}, {str(tmp_path / 'in.tif')!r}, "
        f"{str(tmp_path / 'out.tif')!r}])\n"
        "print('RC', rc, 'TORCH', 'torch' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "RC 2 TORCH False" in run.stdout, run.stdout + run.stderr
    assert "already exists" in run.stderr


def test_cluster_without_distributed_names_the_extra(monkeypatch):
    from napari_segkit.cli import _dask_client

    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ValueError, match=r"napari-segkit\[distributed\]"):
        _dask_client("local:2")


def test_a_traced_model_that_falls_back_prints_nothing(capfd):
    smp = pytest.importorskip("segmentation_models_pytorch")
    model = smp.Unet(
        "resnet18",
        encoder_weights=None,
        in_channels=1,
        classes=2,
        encoder_depth=3,
        decoder_channels=(32, 16, 8),
    )
    model.in_channels, model.num_classes = 1, 2
    predict(model, np.random.default_rng(0).random((64, 64)).astype(np.float32), tile_size=64)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_csv_with_a_byte_order_mark_reads(tmp_path, encoding):
    import tifffile

    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", np.zeros((4, 4), np.uint8))
    (tmp_path / "t.csv").write_bytes("ImageId,EncodedPixels\na,1 2\n".encode(encoding))
    (sample,) = read_rle_csv(tmp_path / "t.csv")
    assert sample.id == "a" and sample.labels.sum() == 2
