from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segkit.core.augment import Augmentation
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.models import build_model, load_model
from napari_segkit.training import prepare_training_set
from napari_segkit.training.loop import TrainConfig, TrainingCancelled, fit
from napari_segkit.training.loop import train as train_fn


@pytest.fixture(scope="module")
def data():
    train = [make_nuclei((96, 96), seed=s) for s in (1, 2)]
    val = make_nuclei((96, 96), seed=3)
    return (prepare_training_set([s.image for s in train], [s.semantic for s in train]),
            prepare_training_set([val.image], [val.semantic]))


def _config(**kw):
    base = dict(epochs=3, steps_per_epoch=12, batch_size=4, patch_size=64, lr=5e-3,
                augmentation=Augmentation(elastic_sigma=0), seed=0)
    return TrainConfig(**{**base, **kw})


def _model():
    torch.manual_seed(0)
    return build_model("unet_original", 1, 2, width=8, depth=2)


@pytest.mark.parametrize("loss", ["dice+ce", "border_ce"])
def test_a_few_dozen_steps_learn_the_nuclei(tmp_path, data, loss):
    train, val = data
    reports = list(fit(_model(), train, val, _config(loss=loss), out=tmp_path / "m.safetensors"))
    steps = [r for r in reports if r.val is None]
    assert len(steps) == 36 and steps[-1].step == 36
    first, last = np.mean([r.loss for r in steps[:6]]), np.mean([r.loss for r in steps[-6:]])
    assert last < 0.8 * first
    epochs = [r for r in reports if r.val is not None]
    # an all-background predictor has nucleus Dice 0; the trained model does much better
    assert max(r.val["dice"][1] for r in epochs) > 0.5
    saved = load_model(tmp_path / "m.safetensors")
    assert saved.info.training["epochs"] >= 1 and saved.info.training["validation"]["dice"][1] > 0.5


def test_cancel_stops_within_one_step(tmp_path, data):
    train, val = data
    seen = []

    def cancel():
        return len(seen) >= 5

    with pytest.raises(TrainingCancelled):
        for report in fit(_model(), train, val, _config(), out=tmp_path / "m.safetensors",
                          cancel=cancel):
            seen.append(report)
    assert len(seen) == 5


def test_resume_continues_from_the_saved_epoch(tmp_path, data):
    train, val = data
    out = tmp_path / "m.safetensors"
    gen = fit(_model(), train, val, _config(), out=out)
    for report in gen:
        if report.val is not None:  # stop right after the first epoch's checkpoint
            break
    gen.close()
    assert (tmp_path / "m.safetensors.state.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    resumed = list(fit(_model(), train, val, _config(), out=out, resume=True))
    assert resumed[0].step == 13 and resumed[0].epoch == 1
    assert resumed[-1].step == 36


def test_train_from_layers_like_arrays(tmp_path):
    samples = [make_nuclei((80, 80), seed=s) for s in (5, 6, 7)]
    reports = []
    model_file = train_fn([s.image for s in samples], [s.semantic for s in samples],
                          out=tmp_path / "cells.safetensors", arch_options={"width": 8, "depth": 2},
                          class_names=["background", "nucleus"], epochs=2, steps_per_epoch=8,
                          patch_size=64, lr=5e-3, progress=reports.append)
    assert model_file.info.class_names == ["background", "nucleus"]
    assert model_file.info.training["n_val_planes"] == 1
    assert any(r.val is not None for r in reports)
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        train_fn([samples[0].image], [samples[0].semantic], out=tmp_path / "x.safetensors",
                 class_names=["a", "b", "c"], epochs=1)


def test_kfold_returns_k_models_and_a_report(tmp_path):
    from napari_segkit.training import train_kfold

    samples = [make_nuclei((64, 64), seed=s) for s in (8, 9, 10)]
    report = train_kfold([s.image for s in samples], [s.semantic for s in samples], k=3,
                         out_dir=tmp_path / "folds", arch_options={"width": 4, "depth": 2},
                         epochs=1, steps_per_epoch=4, patch_size=32)
    assert len(report["models"]) == 3 and len(report["folds"]) == 3
    for path in report["models"]:
        assert load_model(path).info.training["n_val_planes"] == 1
    assert len(report["mean_dice"]) == 2 and all(np.isfinite(report["std_iou"]))
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        train_kfold([samples[0].image], [samples[0].semantic], k=5, out_dir=tmp_path / "x")
