from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from napari_segkit.core.augment import Augmentation
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.models import build_model, load_model
from napari_segkit.training import TrainConfig, TrainingCancelled, fit, prepare_training_set
from napari_segkit.training.loop import train as train_fn


@pytest.fixture(scope="module")
def data():
    train = [make_nuclei((96, 96), seed=s) for s in (1, 2)]
    val = make_nuclei((96, 96), seed=3)
    return (
        prepare_training_set([s.image for s in train], [s.semantic for s in train]),
        prepare_training_set([val.image], [val.semantic]),
    )


def _config(**kw):
    base = {
        "epochs": 3,
        "steps_per_epoch": 12,
        "batch_size": 4,
        "patch_size": 64,
        "lr": 5e-3,
        "augmentation": Augmentation(elastic_sigma=0),
        "seed": 0,
    }
    return TrainConfig(**{**base, **kw})


def _model():
    torch.manual_seed(0)
    return build_model("unet_original", 1, 2, width=8, depth=2)


@pytest.mark.parametrize("loss", ["dice+ce", "border_ce", "lovasz+border_ce"])
def test_a_few_dozen_steps_learn_the_nuclei(tmp_path, data, loss):
    train, val = data
    reports = list(fit(_model(), train, val, _config(loss=loss), out=tmp_path / "m.safetensors"))
    steps = [r for r in reports if not r.end_of_epoch]
    assert len(steps) == 36 and steps[-1].step == 36
    first, last = np.mean([r.loss for r in steps[:6]]), np.mean([r.loss for r in steps[-6:]])
    assert last < 0.8 * first
    epochs = [r for r in reports if r.end_of_epoch]
    # an all-background predictor has nucleus Dice 0; the trained model does much better
    assert max(r.val["dice"][1] for r in epochs) > 0.5
    saved = load_model(tmp_path / "m.safetensors")
    assert (
        saved.info.training["epochs"] >= 1 and saved.info.training["validation"]["dice"][1] > 0.5
    )


def test_cancel_stops_within_one_step(tmp_path, data):
    train, val = data
    seen = []

    def cancel():
        return len(seen) >= 5

    with pytest.raises(TrainingCancelled, match="step 6; no epoch had finished, so no model"):
        for report in fit(
            _model(), train, val, _config(), out=tmp_path / "m.safetensors", cancel=cancel
        ):
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
    # another loss option would compute another run: refused, naming it
    other = _config(loss_options={"ce_weight": 0.5})
    with pytest.raises(ValueError, match=r"loss_options: None -> \{'ce_weight': 0.5\}"):
        next(fit(_model(), train, val, other, out=out, resume=True))
    resumed = list(fit(_model(), train, val, _config(), out=out, resume=True))
    assert resumed[0].step == 13 and resumed[0].epoch == 1
    assert resumed[-1].step == 36
    assert not (tmp_path / "m.safetensors.state.pt").exists()  # finished: nothing to resume


@pytest.mark.parametrize(("keep", "saved_epoch"), [("best", 1), ("last", 3)])
def test_keep_decides_which_epoch_the_file_holds(tmp_path, data, keep, saved_epoch):
    """A frozen network (no batch norm, a vanishing learning rate) scores the same every
    epoch: "best" keeps the first, which no later epoch beats; "last" the schedule's end."""
    train, val = data
    torch.manual_seed(0)
    frozen = build_model("unet_original", 1, 2, width=8, depth=2, batch_norm=False)
    config = _config(lr=1e-12, steps_per_epoch=2, keep=keep)
    reports = list(fit(frozen, train, val, config, out=tmp_path / "m.safetensors"))
    scores = [r.val["mean_dice"] for r in reports if r.end_of_epoch]
    assert len(scores) == 3 and len(set(scores)) == 1
    assert [r.best for r in reports if r.end_of_epoch] == [True, False, False]
    training = load_model(tmp_path / "m.safetensors").info.training
    assert training["epochs"] == saved_epoch and training["config"]["keep"] == keep


def test_train_from_layers_like_arrays(tmp_path):
    samples = [make_nuclei((80, 80), seed=s) for s in (5, 6, 7)]
    reports = []
    model_file = train_fn(
        [s.image for s in samples],
        [s.semantic for s in samples],
        out=tmp_path / "cells.safetensors",
        arch_options={"width": 8, "depth": 2},
        class_names=["background", "nucleus"],
        epochs=2,
        steps_per_epoch=8,
        patch_size=64,
        lr=5e-3,
        progress=reports.append,
    )
    assert model_file.info.class_names == ["background", "nucleus"]
    assert model_file.info.training["n_val_planes"] == 1
    assert any(r.val is not None for r in reports)
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        train_fn(
            [samples[0].image],
            [samples[0].semantic],
            out=tmp_path / "x.safetensors",
            class_names=["a", "b", "c"],
            epochs=1,
        )


def test_kfold_returns_k_models_and_a_report(tmp_path):
    from napari_segkit.training import train_kfold

    samples = [make_nuclei((64, 64), seed=s) for s in (8, 9, 10)]
    report = train_kfold(
        [s.image for s in samples],
        [s.semantic for s in samples],
        k=3,
        out_dir=tmp_path / "folds",
        arch_options={"width": 4, "depth": 2},
        epochs=1,
        steps_per_epoch=4,
        patch_size=32,
    )
    assert len(report["models"]) == 3 and len(report["folds"]) == 3
    for path in report["models"]:
        assert load_model(path).info.training["n_val_planes"] == 1
    assert len(report["mean_dice"]) == 2 and all(np.isfinite(report["std_iou"]))
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        train_kfold([samples[0].image], [samples[0].semantic], k=5, out_dir=tmp_path / "x")


def test_weighted_ce_computes_class_weights_from_the_training_labels(tmp_path, data):
    from napari_segkit.core.weight_maps import compute_class_weights
    from napari_segkit.training.data import IGNORE_INDEX

    train, val = data
    list(
        fit(
            _model(),
            train,
            val,
            _config(loss="weighted_ce", epochs=1, steps_per_epoch=2),
            out=tmp_path / "m.safetensors",
        )
    )
    saved = load_model(tmp_path / "m.safetensors").info.training["config"]["class_weights"]
    expected = compute_class_weights(
        list(train.targets), 2, method="inverse", ignore_index=IGNORE_INDEX
    )
    np.testing.assert_allclose(saved, expected, rtol=1e-5)
    assert saved[1] > saved[0] > 0  # nuclei are the rarer class and weigh more
    list(
        fit(
            _model(),
            train,
            val,
            _config(loss="dice+ce", class_weights="median", epochs=1, steps_per_epoch=2),
            out=tmp_path / "med.safetensors",
        )
    )
    median = load_model(tmp_path / "med.safetensors").info.training["config"]["class_weights"]
    np.testing.assert_allclose(
        median,
        compute_class_weights(list(train.targets), 2, method="median", ignore_index=IGNORE_INDEX),
        rtol=1e-5,
    )


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_learning_rate_schedules(tmp_path, data, schedule):
    train, _ = data
    lrs = [
        r.lr
        for r in fit(
            _model(),
            train,
            None,
            _config(schedule=schedule, epochs=2, steps_per_epoch=25, patch_size=32, lr=1e-2),
            out=tmp_path / "m.safetensors",
        )
        if not r.end_of_epoch
    ]
    assert len(lrs) == 50 and lrs[-1] < 1e-4  # both anneal to ~0 by the last step
    if schedule == "onecycle":  # warm-up over the first 10 % of the steps, then decay
        # (the rate reported after step i is the one for step i + 1: the peak after step 4)
        assert lrs[0] < 0.5e-2 and np.argmax(lrs) == 3 and abs(max(lrs) - 1e-2) < 1e-6
    else:  # decay only, from the full rate
        assert lrs[0] > 0.99e-2 and np.all(np.diff(lrs) <= 0)


def test_dice_plus_border_ce_uses_the_weight_maps(tmp_path, data):
    train, val = data
    reports = list(
        fit(
            _model(),
            train,
            val,
            _config(loss="dice+border_ce", epochs=2),
            out=tmp_path / "m.safetensors",
        )
    )
    assert max(r.val["dice"][1] for r in reports if r.val is not None) > 0.4


def test_bad_settings_fail_before_training(tmp_path, data):
    train, _ = data
    for bad, match in [
        ({"loss": "focal"}, "Unknown loss 'focal'"),
        ({"schedule": "step"}, "Unknown schedule 'step'"),
        ({"class_weights": "balanced"}, "class_weights must be"),
        ({"class_weights": [1.0, 2.0, 3.0]}, "3 class weights for 2 classes"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"keep": "final"}, "keep must be one of best, last"),
        ({"loss": "lovasz", "loss_options": {"per_imag": True}}, "takes no option 'per_imag'"),
        ({"loss_options": {"ignore_index": 3}}, "cannot set ignore_index"),
        ({"loss_options": {"squared": True}}, "squared: it is set by the squared_dice"),
        ({"loss": "lovasz", "loss_options": {"per_image": "no"}}, "per_image must be true or"),
    ]:
        with pytest.raises(ValueError, match=match):
            next(fit(_model(), train, None, _config(**bad), out=tmp_path / "m.safetensors"))
    assert not (tmp_path / "m.safetensors").exists()


def test_explicit_validation_and_fine_tuning_in_one_call(tmp_path):
    samples = [make_nuclei((80, 80), seed=s) for s in (11, 12, 13)]
    images, labels = [s.image for s in samples], [s.semantic for s in samples]
    first = train_fn(
        images[:2],
        labels[:2],
        validation=([images[2]], [labels[2]]),
        out=tmp_path / "first.safetensors",
        arch_options={"width": 8, "depth": 2},
        class_names=["background", "nucleus"],
        epochs=1,
        steps_per_epoch=6,
        patch_size=64,
        lr=5e-3,
    )
    assert first.info.training["n_train_planes"] == 2 and first.info.training["n_val_planes"] == 1
    # human in the loop: the corrected labels retrain the same network a few more steps
    tuned = train_fn(
        images[:2],
        labels[:2],
        init=tmp_path / "first.safetensors",
        out=tmp_path / "tuned.safetensors",
        epochs=1,
        steps_per_epoch=4,
        patch_size=64,
        lr=1e-3,
        val_fraction=0,
    )
    assert tuned.info.arch == first.info.arch and tuned.info.options == first.info.options
    assert tuned.info.class_names == ["background", "nucleus"]
    assert tuned.info.training["fine_tuned_from"].endswith("first.safetensors")
    before = dict(first.model.state_dict())
    changed = [
        k
        for k, v in tuned.model.state_dict().items()
        if v.dtype.is_floating_point and not torch.equal(v, before[k])
    ]
    assert changed  # started from the first model's weights and moved on
    three_class = [np.where(lab > 0, 2, 0) for lab in labels[:2]]
    with pytest.raises(ValueError, match="cannot fine-tune: the model .* predicts 2 classes"):
        train_fn(
            images[:2],
            three_class,
            num_classes=3,
            init=first,
            out=tmp_path / "x.safetensors",
            epochs=1,
        )


@contextlib.contextmanager
def registered_loss(name, module, **spec_options):
    """`module` in the loss table as `name` while the block runs (a test-only loss)."""
    from napari_segkit.losses import LOSSES, LossSpec, register_loss

    register_loss(LossSpec(name, module, name, **spec_options))
    try:
        yield name
    finally:
        del LOSSES[name]


def test_a_loss_added_to_the_table_trains_without_other_edits(tmp_path):
    """Adding a loss is one table entry: train() builds it, passes what it asks for."""
    calls = []

    class ToyL1(torch.nn.Module):
        def __init__(self, ignore_index=None):
            super().__init__()
            self.ignore_index = ignore_index

        def forward(self, logits, target, weight_map):
            calls.append(tuple(weight_map.shape))
            valid = target != self.ignore_index
            onehot = torch.nn.functional.one_hot(target.clamp_min(0), logits.shape[1])
            error = (logits.softmax(1) - onehot.movedim(-1, 1).float()).abs().sum(1)
            return (error * weight_map * valid).mean()

    with registered_loss("toy_l1", ToyL1, weight_map=True, class_weights="never"):
        sample = make_nuclei((64, 64), seed=7)
        result = train_fn(
            [sample.image],
            [sample.semantic],
            out=tmp_path / "toy.safetensors",
            loss="toy_l1",
            epochs=1,
            steps_per_epoch=1,
            batch_size=2,
            patch_size=32,
            val_fraction=0,
            arch_options={"width": 4, "depth": 2},
        )
    assert calls == [(2, 32, 32)]  # called once, with the border weight map it asked for
    assert result.info.training["config"]["loss"] == "toy_l1"


def test_border_weights_of_a_boundary_target_separate_touching_objects(tmp_path):
    """Two touching squares are one foreground region; with the boundary target the
    border weights come from their interiors, so the pixels between them weigh most."""
    seen = []

    class RecordingCE(torch.nn.Module):
        def __init__(self, ignore_index=None):
            super().__init__()
            self.ignore_index = ignore_index

        def forward(self, logits, target, weight_map):
            seen.append((target.clone(), weight_map.clone()))
            return torch.nn.functional.cross_entropy(
                logits, target, ignore_index=self.ignore_index
            )

    touching = np.zeros((32, 32), np.int32)
    touching[6:26, 2:16], touching[6:26, 16:30] = 1, 2
    image = (touching > 0).astype(np.float32) + 0.1
    with registered_loss("recording_ce", RecordingCE, weight_map=True, class_weights="never"):
        train_fn(
            [image],
            [touching],
            out=tmp_path / "b.safetensors",
            target="boundary",
            loss="recording_ce",
            epochs=1,
            steps_per_epoch=1,
            batch_size=1,
            patch_size=32,
            val_fraction=0,
            w0=10,
            sigma=5,
            arch_options={"width": 4, "depth": 2},
        )
    ((target, weights),) = seen
    boundary = weights[target == 2]
    # the boundary pixels where the squares touch weigh most (from the whole foreground
    # region, every weight would be 1: one object, no second-nearest one)
    assert boundary.max() > 5
    assert np.median(boundary) < 2  # the outer edges, far from the other square, do not


def test_boundary_target_trains_a_three_class_model_from_instances(tmp_path):
    sample = make_nuclei((64, 64), seed=7)
    result = train_fn(
        [sample.image],
        [sample.instances],
        out=tmp_path / "b.safetensors",
        target="boundary",
        epochs=1,
        steps_per_epoch=1,
        batch_size=2,
        patch_size=32,
        val_fraction=0,
        arch_options={"width": 4, "depth": 2},
    )
    assert result.info.num_classes == 3
    assert result.info.class_names == ["background", "interior", "boundary"]
    assert result.info.training["target"] == "boundary"
    # the training objects' sizes, for predicting at other pixel sizes (object_diameter)
    from napari_segkit.core.object_size import median_diameter

    d = median_diameter(sample.instances)
    assert result.info.training["object_diameter"] == {
        "median": round(d, 1),
        "low": round(d, 1),
        "high": round(d, 1),
        "images": 1,
    }
    assert result.info.trained_diameters() == (round(d, 1), round(d, 1))
    with pytest.raises(ValueError, match="target must be one of"):
        train_fn(
            [sample.image], [sample.instances], out=tmp_path / "x.safetensors", target="edges"
        )


def test_kfold_with_boundary_targets_records_each_folds_validation_images(tmp_path):
    from napari_segkit.training import train_kfold

    samples = [make_nuclei((64, 64), seed=s) for s in (11, 12, 13, 14)]
    report = train_kfold(
        [s.image for s in samples],
        [s.instances for s in samples],
        k=2,
        out_dir=tmp_path / "folds",
        target="boundary",
        image_ids=["a", "b", "c", "d"],
        arch_options={"width": 4, "depth": 2},
        epochs=1,
        steps_per_epoch=2,
        patch_size=32,
    )
    held_out = []
    for fold, path in enumerate(report["models"]):
        info = load_model(path).info
        assert info.num_classes == 3 and info.training["target"] == "boundary"
        assert info.training["fold"] == fold and info.training["k"] == 2
        assert info.training["object_diameter"]["images"] == 4  # all images, every fold
        held_out += info.training["validation_ids"]
    assert sorted(held_out) == ["a", "b", "c", "d"]  # every image held out exactly once


def test_a_gray_model_with_auto_inversion_segments_colour_and_bright_field_alike(tmp_path):
    """Issue 16.3: one gray model reads an RGBA copy and an inverted (bright-field looking)
    copy of an image as it reads the image; the model file says how it reads images."""
    from napari_segkit.tiling import predict

    samples = [make_nuclei((96, 96), seed=s) for s in (21, 22)]
    rgb = [np.repeat(s.image[..., None], 3, axis=-1) for s in samples]  # colour input
    invert = {"mode": "percentile", "low": 1.0, "high": 99.8, "invert": "auto"}
    model = train_fn(
        rgb,
        [s.semantic for s in samples],
        out=tmp_path / "g.safetensors",
        color="gray",
        normalization=invert,
        epochs=2,
        steps_per_epoch=10,
        batch_size=4,
        patch_size=64,
        lr=5e-3,
        val_fraction=0,
        arch_options={"width": 8, "depth": 2},
    )
    assert model.info.in_channels == 1 and model.info.color == "gray"
    assert model.info.normalization["invert"] == "auto" and model.info.format_version == 2
    test = make_nuclei((96, 96), seed=23).image
    scaled = (255 * (test - test.min()) / np.ptp(test)).astype(np.uint8)
    rgba = np.concatenate(
        [np.repeat(scaled[..., None], 3, -1), np.full((96, 96, 1), 255, np.uint8)], -1
    )
    gray_labels = predict(model, scaled)
    assert gray_labels.any()
    assert (predict(model, rgba) == gray_labels).mean() > 0.999
    # the bright-field look (dark nuclei, bright background) is inverted before the model
    assert (predict(model, 255 - scaled) == gray_labels).mean() > 0.98
    # a colour-unaware model of the same kind would refuse the RGBA image
    plain = train_fn(
        [s.image for s in samples],
        [s.semantic for s in samples],
        out=tmp_path / "p.safetensors",
        epochs=1,
        steps_per_epoch=1,
        patch_size=32,
        val_fraction=0,
        arch_options={"width": 4, "depth": 2},
    )
    assert plain.info.color == "as-is" and plain.info.format_version == 1
    with pytest.raises(ValueError, match="channel"):
        predict(plain, rgba)


def test_a_single_image_validates_on_a_held_out_strip():
    from napari_segkit.training import prepare_training_set
    from napari_segkit.training.loop import split_validation

    sample = make_nuclei((200, 80), seed=4)
    data = prepare_training_set([sample.image], [sample.semantic])
    train, val = split_validation(data, 0.2)
    assert train.images[0].shape == (1, 160, 80) and val.images[0].shape == (1, 40, 80)
    np.testing.assert_array_equal(
        np.concatenate([train.targets[0], val.targets[0]]), data.targets[0]
    )
    assert split_validation(data, 0.0)[1] is None
    assert split_validation(data, 0.1)[1] is None  # a 20-row strip is too thin to score
