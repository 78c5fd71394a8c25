from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
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


#: predict() in a subprocess, slowed by a pause after every finished block
SLOW_PREDICT = """
import json, sys, time
import numpy as np
import torch
from napari_segkit.tiling import predict
model, image, out, options, pause, threads = sys.argv[1:]
torch.set_num_threads(int(threads))
predict(model, np.load(image), out=out, progress=lambda d, t: time.sleep(float(pause)),
        **json.loads(options))
"""


@pytest.fixture
def kill_mid_prediction(tmp_path):
    """``kill_mid_prediction(model_file, image, out, blocks=N, pause=S, **options)`` runs
    ``predict(model_file, image, out=out, **options)`` in another process, sleeping S seconds
    after each block, SIGKILLs it once N blocks are done (or after 120 s; sooner if it exits)
    and returns how many blocks it finished. The subprocess runs on this process's torch thread count: float32 sums
    split over another number of threads may round differently in the last bit, and the tests
    that use this compare its blocks with this process's bit for bit."""

    def run(model_file, image: np.ndarray, out, *, blocks: int, pause: float, **options) -> int:
        np.save(tmp_path / "killed_input.npy", image)
        (tmp_path / "slow_predict.py").write_text(SLOW_PREDICT)
        arguments = [str(model_file), str(tmp_path / "killed_input.npy"), str(out)]
        arguments += [json.dumps(options), str(pause), str(torch.get_num_threads())]
        proc = subprocess.Popen([sys.executable, str(tmp_path / "slow_predict.py"), *arguments])
        done = out / ".segkit_done"
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if done.is_dir() and len(os.listdir(done)) >= blocks:
                break
            time.sleep(0.05)
        proc.kill()  # SIGKILL (a no-op if it has exited)
        proc.wait()
        return len(os.listdir(done))

    return run
