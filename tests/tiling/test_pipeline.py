"""The pipelined engine: same results as block after block, errors and cancel handled,
no thread left behind, stage times reported."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
import zarr

from napari_segkit.core.errors import InputError
from napari_segkit.core.io import write_stack
from napari_segkit.jobs import PredictionCancelled
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


def _segkit_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("segkit-")]


def test_pipelined_equals_block_after_block(tmp_path, model_file):
    from napari_segkit.models import load_model
    from napari_segkit.tiling.prediction import _plane_blocks

    image = np.random.default_rng(0).random((2, 100, 90)).astype(np.float32)
    labels, probs = predict(
        str(model_file), image, tile_size=32, block_size=32, out=tmp_path / "p.zarr", output="both"
    )
    # the sequential reference: the engine's one-call path, block after block
    captured = {}
    predict(load_model(model_file), image, tile_size=32, profile=captured.update)
    from napari_segkit.core.volume import Volume
    from napari_segkit.tiling.engine import TileEngine
    from napari_segkit.tiling.sink import labels_from_probabilities

    module = load_model(model_file).model.eval()
    engine = TileEngine(
        module,
        3,
        (32, 32),
        0.25,
        "gaussian",
        4,
        __import__("torch").device("cpu"),
        None,
        None,
        align=int(module.divisor),
    )
    volume = Volume(image, in_channels=1)
    ref = np.zeros((3, 2, 100, 90), np.float32)
    for z, block in _plane_blocks(volume, 32):
        ref[(slice(None), z, *block)] = engine.block_probabilities(volume, z, block)
    np.testing.assert_allclose(probs[:], ref, atol=1e-6)
    np.testing.assert_array_equal(labels[:], labels_from_probabilities(ref))
    assert captured["blocks"] == 2 and captured["bound_by"] in ("read", "compute", "write")


def test_cancel_leaves_a_resumable_output_and_no_thread(tmp_path, model_file):
    image = np.random.default_rng(1).random((4, 96, 96)).astype(np.float32)
    out = tmp_path / "c.zarr"
    seen = []
    with pytest.raises(PredictionCancelled):
        predict(
            str(model_file),
            image,
            tile_size=32,
            block_size=32,
            out=out,
            progress=lambda d, t: seen.append(d),
            cancel=lambda: len(seen) >= 4,
        )
    assert _segkit_threads() == []
    assert zarr.open_group(str(out), mode="r").attrs["segkit"]["complete"] is False
    labels = predict(str(model_file), image, tile_size=32, block_size=32, out=out)
    reference = predict(str(model_file), image, tile_size=32)
    np.testing.assert_array_equal(labels[:], reference)


def test_an_unreadable_input_chunk_is_a_clear_error_and_nothing_unwritten_is_recorded(
    tmp_path, model_file
):
    from napari_segkit.core.volume import Volume
    from napari_segkit.tiling.prediction import _content_signature

    image = np.random.default_rng(2).random((40, 64, 64)).astype(np.float32)

    class Recording(np.ndarray):  # remembers the planes the input signature reads
        planes: set = set()

        def __getitem__(self, key):
            if isinstance(key, tuple) and isinstance(key[0], int | np.integer):
                Recording.planes.add(int(key[0]))
            return np.asarray(super().__getitem__(key))

    _content_signature(Volume(image.view(Recording), in_channels=1))
    bad = max(set(range(40)) - Recording.planes)  # a plane only the blocks read
    write_stack(tmp_path / "in.zarr", image, chunks=(1, 64, 64))
    chunk = next(
        p
        for p in (tmp_path / "in.zarr").rglob("*")
        if p.is_file() and p.parts[-4:] == ("c", str(bad), "0", "0")
    )
    chunk.write_bytes(b"not a chunk")
    out = tmp_path / "o.zarr"
    with pytest.raises(InputError, match=rf"plane {bad}.*in\.zarr"):
        predict(str(model_file), str(tmp_path / "in.zarr"), tile_size=32, out=out)
    assert _segkit_threads() == []
    reference = predict(str(model_file), image, tile_size=32)
    labels = zarr.open_group(str(out), mode="r")["labels"]
    done = sorted(int(p.name) for p in (out / ".segkit_done").iterdir())
    assert done and bad not in done
    for z in done:  # every block recorded as done holds its result
        np.testing.assert_array_equal(labels[z], reference[z])


def test_a_failing_write_surfaces_in_the_calling_thread(tmp_path, model_file):
    image = np.random.default_rng(3).random((6, 64, 64)).astype(np.float32)
    out = tmp_path / "w.zarr"

    def break_the_disk(done, total):
        chunks = out / "probabilities" / "c"  # probabilities are never all fill values
        if done == 1 and chunks.is_dir():  # later chunk writes now fail (even as root)
            shutil.rmtree(chunks)
            chunks.write_text("not a folder")

    with pytest.raises(OSError):
        predict(
            str(model_file),
            image,
            tile_size=32,
            out=out,
            output="probabilities",
            progress=break_the_disk,
        )
    assert _segkit_threads() == []
    assert zarr.open_group(str(out), mode="r").attrs["segkit"]["complete"] is False
    done = [p.name for p in (out / ".segkit_done").iterdir()]
    assert len(done) < 6


def test_profile_reports_stage_times_and_throughput(tmp_path, model_file):
    from napari_segkit.cli import main

    write_stack(tmp_path / "in.tif", np.zeros((2, 64, 64), np.float32))
    assert (
        main(
            [
                "predict",
                str(model_file),
                str(tmp_path / "in.tif"),
                str(tmp_path / "o.zarr"),
                "--profile",
                "-q",
            ]
        )
        == 0
    )


COMPILE = """
import warnings
import numpy as np, torch
from napari_segkit.models import build_model
from napari_segkit.tiling import predict

torch.manual_seed(0)
model = build_model("unet_original", 1, 2, width=4, depth=2).eval()
image = np.random.default_rng(0).random((96, 80)).astype(np.float32)
eager = predict(model, image, tile_size=64, output="probabilities")
compiled = predict(model, image, tile_size=64, output="probabilities", compile=True)
print("COMPILED DIFF", float(np.abs(compiled - eager).max()))

with warnings.catch_warnings(record=True) as caught:  # a backend that cannot compile
    warnings.simplefilter("always")
    out = predict(model, image, tile_size=64, compile="no-such-backend")
print("FALLBACK", out.shape, any("torch.compile failed" in str(w.message) for w in caught))
"""


def test_compile_runs_compiled_and_falls_back_cleanly(tmp_path):
    """A real torch.compile (in a fresh process: compiling beside napari's GL is avoided)."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", COMPILE], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    diff = float(run.stdout.split("COMPILED DIFF")[1].split()[0])
    assert diff < 1e-4
    assert "FALLBACK (96, 80) True" in run.stdout


def test_batch_size_is_chosen_when_not_given(tmp_path, model_file):
    captured = {}
    image = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    a = predict(str(model_file), image, tile_size=32, out=tmp_path / "a.zarr")
    captured.update(zarr.open_group(str(tmp_path / "a.zarr"), mode="r").attrs["segkit"])
    assert captured["settings"]["batch_size"] == "auto"  # resumes when re-chosen
    b = predict(str(model_file), image, tile_size=32, batch_size=4)
    np.testing.assert_array_equal(a[:], b)  # on a CPU "auto" is 4
