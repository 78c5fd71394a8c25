"""Crash safety (a real SIGKILL), dask.distributed, and the predict CLI."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from napari_segkit.cli import main
from napari_segkit.core.errors import IncompleteOutputError
from napari_segkit.core.io import read_stack, write_stack
from napari_segkit.models import save_model
from napari_segkit.tiling import predict


@pytest.fixture
def model_file(tmp_path, tiny_unet):
    return save_model(
        tmp_path / "tiny.safetensors",
        tiny_unet,
        tile_size=(32, 32),
        normalization={"mode": "none"},
    )


def test_sigkill_then_resume_is_bit_identical(tmp_path, model_file, kill_mid_prediction):
    image = np.random.default_rng(0).random((2, 96, 96), dtype=np.float32)
    out = tmp_path / "killed.zarr"
    options = {"tile_size": 32, "block_size": 32, "output": "both"}
    n_done = kill_mid_prediction(model_file, image, out, blocks=3, pause=0.25, **options)
    assert 3 <= n_done < 18, n_done  # 2 planes x 3 x 3 blocks
    assert zarr.open_group(str(out)).attrs["segkit"]["complete"] is False
    with pytest.raises(IncompleteOutputError):
        read_stack(out, array="labels")

    progress = []
    labels, probs = predict(
        str(model_file),
        image,
        tile_size=32,
        out=out,
        block_size=32,
        output="both",
        progress=lambda d, t: progress.append(d),
    )
    assert progress[0] == n_done
    ref_labels, ref_probs = predict(
        str(model_file),
        image,
        tile_size=32,
        out=tmp_path / "ref.zarr",
        block_size=32,
        output="both",
    )
    np.testing.assert_array_equal(labels[:], ref_labels[:])
    np.testing.assert_array_equal(probs[:], ref_probs[:])  # bit-identical
    assert zarr.open_group(str(out)).attrs["segkit"]["complete"] is True
    assert not (out / ".segkit_done").exists()


def test_dask_local_cluster_equals_local(tmp_path, model_file, local_cluster):
    image = np.random.default_rng(1).random((3, 70, 80), dtype=np.float32)
    write_stack(tmp_path / "image.zarr", image, chunks=(1, 32, 32))
    local = predict(
        str(model_file),
        str(tmp_path / "image.zarr"),
        out=tmp_path / "local.zarr",
        block_size=32,
        output="both",
    )
    with local_cluster(n_workers=2) as client:
        seen = []
        remote = predict(
            str(model_file),
            str(tmp_path / "image.zarr"),
            out=tmp_path / "dask.zarr",
            block_size=32,
            output="both",
            client=client,
            progress=lambda d, t: seen.append((d, t)),
        )
        numpy_input = predict(
            str(model_file),
            image,
            out=tmp_path / "dask_np.zarr",
            block_size=32,
            output="labels",
            client=client,
        )
    assert seen[-1] == (27, 27)
    np.testing.assert_array_equal(remote[0][:], local[0][:])
    np.testing.assert_allclose(remote[1][:], local[1][:], atol=1e-6)
    np.testing.assert_array_equal(numpy_input[:], local[0][:])


def test_cli_predict_zarr_and_tiff(tmp_path, model_file, capsys):
    image = np.random.default_rng(2).random((50, 60), dtype=np.float32)
    write_stack(tmp_path / "in.tif", image)
    assert (
        main(
            [
                "predict",
                str(model_file),
                str(tmp_path / "in.tif"),
                str(tmp_path / "o.zarr"),
                "--output",
                "both",
                "-q",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "predict",
                str(model_file),
                str(tmp_path / "in.tif"),
                str(tmp_path / "o.tif"),
                "--blend",
                "centre",
                "-q",
            ]
        )
        == 0
    )
    expected = predict(str(model_file), image)
    np.testing.assert_array_equal(read_stack(tmp_path / "o.zarr", array="labels").data, expected)
    np.testing.assert_array_equal(
        read_stack(tmp_path / "o.tif").data, predict(str(model_file), image, blend="centre")
    )
    assert "wrote" in capsys.readouterr().out
    # a different tile size into the same zarr refuses, and says how to proceed
    assert (
        main(
            [
                "predict",
                str(model_file),
                str(tmp_path / "in.tif"),
                str(tmp_path / "o.zarr"),
                "--output",
                "both",
                "--tile",
                "16",
                "-q",
            ]
        )
        == 2
    )
    assert "--overwrite" in capsys.readouterr().err
    assert (
        main(["predict", str(model_file), str(tmp_path / "in.tif"), str(tmp_path / "o.png")]) == 2
    )


def test_resume_flag_continues_only_an_unfinished_output(tmp_path, model_file, capsys):
    from napari_segkit.jobs import Cancelled
    from napari_segkit.tiling import OutputExistsError, PredictionCancelled

    image = np.random.default_rng(2).random((2, 64, 64), dtype=np.float32)
    out = tmp_path / "partial.zarr"
    settings = {"tile_size": 32, "block_size": 32, "output": "both"}
    with pytest.raises(PredictionCancelled) as stopped:
        predict(
            str(model_file),
            image,
            out=out,
            cancel=lambda: (
                (out / ".segkit_done").is_dir() and len(os.listdir(out / ".segkit_done")) >= 2
            ),
            **settings,
        )
    assert isinstance(stopped.value, Cancelled)  # front ends tell "stopped" from "failed"
    # resume=False refuses to continue it; resume=True continues it
    with pytest.raises(OutputExistsError, match="unfinished prediction"):
        predict(str(model_file), image, out=out, resume=False, **settings)
    seen = []
    labels, _ = predict(
        str(model_file),
        image,
        out=out,
        resume=True,
        progress=lambda d, t: seen.append(d),
        **settings,
    )
    assert seen[0] >= 2
    ref, _ = predict(str(model_file), image, out=tmp_path / "ref.zarr", **settings)
    np.testing.assert_array_equal(labels[:], ref[:])
    # nothing to resume: a clear error from the library and the CLI, nothing written
    with pytest.raises(FileNotFoundError, match="Nothing to resume"):
        predict(str(model_file), image, out=tmp_path / "none.zarr", resume=True, **settings)
    write_stack(tmp_path / "image.tif", image)
    code = main(
        [
            "predict",
            str(model_file),
            str(tmp_path / "image.tif"),
            str(tmp_path / "cli.zarr"),
            "--resume",
            "-q",
        ]
    )
    assert code == 2 and "Nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "cli.zarr").exists()
