"""The dock widgets in a real headless viewer: created through the manifest, run end to end."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import zarr
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QTimer

from napari_segkit.core.io import read_stack, write_stack
from napari_segkit.core.metrics import segmentation_report
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.core.weight_maps import unet_weight_map
from napari_segkit.models import build_model, save_model
from napari_segkit.tiling import predict

PLUGIN = "napari-segkit"


DOCKS = (
    "Load stack",
    "Predict",
    "Train",
    "Border weights",
    "Evaluate",
    "Export labels",
    "Export model",
)


def dock(viewer, name):
    """The widget, created as a user would: from the Plugins menu (the manifest)."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


@pytest.fixture
def notes():
    """Notifications shown during the test (napari keeps a record of each)."""
    start = len(notification_manager.records)
    return lambda: [str(n.message) for n in notification_manager.records[start:]]


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("unet_original", 1, 3, width=4, depth=2)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, model, class_names=["background", "cell", "edge"], tile_size=(64, 64))
    return path


def _wait(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=timeout)


def test_predict_widget_adds_labels_and_probabilities(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    sample = make_nuclei((70, 90), seed=2)
    viewer.add_image(sample.image, name="cells", scale=(0.5, 0.5))
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path
    widget.outputs.value = "labels + probabilities"
    widget.run()
    _wait(qtbot, widget)
    labels = viewer.layers["cells [tiny] labels"]
    expected = predict(tiny_model_path, sample.image)
    np.testing.assert_array_equal(labels.data, expected)
    assert tuple(labels.scale) == (0.5, 0.5)
    assert list(labels.features["class"]) == ["background", "cell", "edge"]
    probs = [viewer.layers[f"cells [tiny] p({c})"] for c in ("background", "cell", "edge")]
    np.testing.assert_allclose(sum(p.data for p in probs), 1.0, atol=1e-5)


def test_predict_widget_per_class_layers_and_lazy_zarr_output(
    make_napari_viewer, qtbot, tiny_model_path, tmp_path
):
    viewer = make_napari_viewer()
    stack = make_nuclei((3, 64, 64), seed=5).image
    write_stack(tmp_path / "stack.zarr", stack, chunks=(1, 32, 32))
    viewer.add_image(read_stack(tmp_path / "stack.zarr").data, name="stack")  # lazy (dask)
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path
    widget.outputs.value = "labels + one layer per class"
    widget.to_zarr.value = True
    widget.zarr_path.value = tmp_path / "out.zarr"
    widget.run()
    _wait(qtbot, widget)
    labels = viewer.layers["stack [tiny] labels"]
    assert hasattr(labels.data, "dask")  # the result layer is lazy too, read from the zarr
    np.testing.assert_array_equal(np.asarray(labels.data), predict(tiny_model_path, stack))
    for k, name in ((1, "cell"), (2, "edge")):
        np.testing.assert_array_equal(
            np.asarray(viewer.layers[f"stack [tiny] {name}"].data), np.asarray(labels.data) == k
        )
    assert zarr.open_group(tmp_path / "out.zarr", mode="r").attrs["segkit"]["complete"]


def test_predict_widget_ome_zarr_output_is_a_multiscale_labels_layer(
    make_napari_viewer, qtbot, tiny_model_path, tmp_path
):
    viewer = make_napari_viewer()
    image = make_nuclei((700, 600), seed=6).image  # larger than one 512 chunk: 2 levels
    viewer.add_image(image, name="big")
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path
    widget.to_zarr.value = True
    widget.zarr_path.value = tmp_path / "out.ome.zarr"
    widget.run()
    _wait(qtbot, widget)
    labels = viewer.layers["big [tiny] labels"]
    assert labels.multiscale and len(labels.data) >= 2
    np.testing.assert_array_equal(np.asarray(labels.data[0]), predict(tiny_model_path, image))
    assert list(labels.features["class"]) == ["background", "cell", "edge"]


def test_predict_runs_off_the_ui_thread_and_cancels(
    make_napari_viewer, qtbot, tiny_model_path, notes
):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((8, 512, 512), np.float32), name="big")
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path
    widget.tile_size.value = 32  # thousands of tiny tiles: seconds of work
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(10)
    widget.run()
    assert widget.jobs.running
    qtbot.wait(400)  # the UI thread keeps processing events while the worker predicts
    assert widget.jobs.running and len(ticks) >= 10
    widget.jobs.cancel_button.clicked()
    _wait(qtbot, widget, timeout=10_000)
    timer.stop()
    assert any("Predict: prediction cancelled" in n for n in notes())
    assert "big [tiny] labels" not in [layer.name for layer in viewer.layers]
    assert widget.jobs.run_button.enabled and not widget.jobs.cancel_button.enabled


def test_predict_errors_are_notifications(make_napari_viewer, qtbot, tmp_path, notes):
    viewer = make_napari_viewer()
    widget = dock(viewer, "Predict")
    widget.run()  # no image layer
    viewer.add_image(np.zeros((32, 32, 2), np.float32), name="two channels", rgb=False)
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    widget.model.value = tmp_path / "bad.safetensors"
    widget.run()  # unreadable model file
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_model(path, build_model("unet_original", 1, 2, width=4, depth=2))
    widget.model.value = path
    viewer.layers.clear()
    viewer.add_image(np.full((32, 32), np.nan, np.float32), name="nan")
    widget.run()  # NaN pixels: fails in the worker, reported, no layer
    _wait(qtbot, widget)
    shown = notes()
    assert any("add or open an image layer" in n for n in shown)
    assert any("cannot use the model" in n for n in shown)
    assert any("Predict failed" in n and "NaN" in n for n in shown)
    assert [layer.name for layer in viewer.layers] == ["nan"]


def _training_layers(viewer):
    for seed in (1, 2):
        sample = make_nuclei((64, 64), seed=seed)
        viewer.add_image(sample.image, name=f"image {seed}")
        viewer.add_labels(sample.semantic, name=f"labels {seed}")


def test_train_widget_trains_plots_and_predicts(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _training_layers(viewer)
    widget = dock(viewer, "Train")
    widget.image_layers.value = [viewer.layers["image 1"], viewer.layers["image 2"]]
    widget.label_layers.value = [viewer.layers["labels 1"], viewer.layers["labels 2"]]
    widget.epochs.value, widget.steps.value = 2, 3
    widget.patch_size.value, widget.batch_size.value = 32, 2
    widget.val_fraction.value = 0.5
    widget.class_names.value = "background, nucleus"
    widget.out.value = tmp_path / "new.safetensors"
    widget.run()
    _wait(qtbot, widget)
    assert (tmp_path / "new.safetensors").exists()
    # step reports are thinned to <= 10 per second on their way to the UI; epoch ends never
    steps = [x for x, _ in widget.plot.series["train loss"]]
    assert 1 <= len(steps) <= 6 and steps == sorted(steps) and set(steps) <= set(range(1, 7))
    assert (
        len(widget.plot.series["val mean Dice"]) == 2 and len(widget.plot.series["val loss"]) == 2
    )
    result = viewer.layers["image 1 [new] labels"]
    assert result.data.shape == (64, 64) and set(np.unique(result.data)) <= {0, 1}
    assert list(result.features["class"]) == ["background", "nucleus"]
    # fine-tune the new model (human in the loop) from the same form
    widget.continue_from.value = True
    widget.init.value = tmp_path / "new.safetensors"
    widget.out.value = tmp_path / "tuned.safetensors"
    widget.epochs.value = 1
    widget.run()
    _wait(qtbot, widget)
    from napari_segkit.models import load_model

    assert load_model(tmp_path / "tuned.safetensors").info.training["fine_tuned_from"]


def test_boundary_training_on_colour_layers_then_instances_in_predict(
    make_napari_viewer, qtbot, tmp_path
):
    """Issue 16: the Train widget trains a gray, boundary-target model from an RGB layer
    and an instances layer; the Predict widget ticks "instances" for it by itself and
    adds a layer with one id per object."""
    viewer = make_napari_viewer()
    sample = make_nuclei((64, 64), seed=5)
    scaled = (255 * (sample.image - sample.image.min()) / np.ptp(sample.image)).astype(np.uint8)
    viewer.add_image(np.repeat(scaled[..., None], 3, axis=-1), name="rgb", rgb=True)
    viewer.add_labels(sample.instances, name="nuclei")
    widget = dock(viewer, "Train")
    widget.image_layers.value = [viewer.layers["rgb"]]
    widget.label_layers.value = [viewer.layers["nuclei"]]
    widget.target.value, widget.color.value, widget.invert.value = "boundary", "gray", True
    widget.loss.value, widget.loss_options.value = "lovasz+border_ce", "per_image=true"
    widget.zoom.value, widget.blur.value, widget.noise.value = 1.5, 1.5, 0.05
    widget.epochs.value, widget.steps.value = 1, 2
    widget.patch_size.value, widget.batch_size.value = 32, 2
    widget.val_fraction.value = 0.0
    widget.out.value = tmp_path / "b.safetensors"
    widget.run()
    _wait(qtbot, widget)
    from napari_segkit.models import read_model_info

    info = read_model_info(tmp_path / "b.safetensors")
    assert info.num_classes == 3 and info.color == "gray" and info.in_channels == 1
    assert info.training["target"] == "boundary" and info.normalization["invert"] == "auto"
    augmentation = info.training["config"]["augmentation"]
    assert augmentation["zoom"] == pytest.approx([1 / 1.5, 1.5])
    assert augmentation["blur_sigma"] == [0.0, 1.5] and augmentation["noise_std"] == [0.0, 0.05]
    assert info.training["config"]["loss"] == "lovasz+border_ce"
    assert info.training["config"]["loss_options"] == {"per_image": True}
    assert viewer.layers["rgb [b] instances"].data.shape == (64, 64)
    predict_widget = dock(viewer, "Predict")
    predict_widget.model.value = tmp_path / "b.safetensors"
    assert predict_widget.instances.value  # a boundary model: instances by default
    predict_widget.image.value = viewer.layers["rgb"]
    predict_widget.run()
    _wait(qtbot, predict_widget)
    objects = viewer.layers[-1].data  # "rgb [b] instances [1]": Predict's
    assert objects.shape == (64, 64) and objects.dtype.kind in "iu"
    assert viewer.layers[-1].name.startswith("rgb [b] instances")
    assert not any("probabilities" in layer.name for layer in viewer.layers)


def test_train_widget_cancel_and_errors(make_napari_viewer, qtbot, tmp_path, notes):
    viewer = make_napari_viewer()
    widget = dock(viewer, "Train")
    widget.run()  # nothing selected
    _training_layers(viewer)
    viewer.add_labels(np.zeros((10, 10), np.uint8), name="small labels")
    widget.image_layers.value = [viewer.layers["image 1"]]
    widget.label_layers.value = [viewer.layers["small labels"]]
    widget.run()  # shape mismatch
    widget.label_layers.value = [viewer.layers["labels 1"]]
    widget.epochs.value, widget.steps.value, widget.patch_size.value = 100, 50, 32
    widget.val_fraction.value = 0.0
    widget.out.value = tmp_path / "c.safetensors"
    widget.loss.value = "lovasz+border_ce"
    for bad in ("per_imag=true", "ignore_index=3", "per_image"):
        widget.loss_options.value = bad
        widget.run()  # refused before anything runs
        assert not widget.jobs.running and not (tmp_path / "c.safetensors").exists()
    widget.loss.value, widget.loss_options.value = "dice+ce", ""
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    widget.run()
    qtbot.waitUntil(lambda: len(widget.plot.series.get("train loss", [])) >= 1, timeout=30_000)
    qtbot.wait(300)
    assert widget.jobs.running and len(ticks) >= 10  # the UI thread stays free while it trains
    timer.stop()
    widget.jobs.cancel()
    _wait(qtbot, widget, timeout=10_000)
    shown = notes()
    assert any("select at least one image layer" in n for n in shown)
    assert any("differ in shape" in n for n in shown)
    assert any(
        "no option 'per_imag'; it takes lovasz_weight, ce_weight, per_image" in n for n in shown
    )
    assert any("cannot set ignore_index" in n for n in shown)
    assert any("loss option 'per_image' is not KEY=VALUE" in n for n in shown)
    assert any("Train: training cancelled" in n for n in shown)
    assert len(widget.plot.series["train loss"]) < 100 * 50


def test_border_weights_widget_matches_the_library(make_napari_viewer, qtbot):
    """Computed on a worker (issue 19.5): the UI thread keeps ticking meanwhile."""
    viewer = make_napari_viewer()
    sample = make_nuclei((60, 70), seed=3)
    viewer.add_labels(sample.instances, name="nuclei")
    widget = dock(viewer, "Border weights")
    widget.w0.value, widget.sigma.value = 8.0, 4.0
    widget.run()
    _wait(qtbot, widget)
    layer = viewer.layers[-1]
    np.testing.assert_allclose(layer.data, unet_weight_map(sample.instances, w0=8.0, sigma=4.0))
    assert layer.colormap.name == "turbo" and layer.contrast_limits[1] == pytest.approx(
        float(layer.data.max())
    )
    assert layer.opacity < 1  # the image stays visible below it
    # a large label image: the viewer keeps processing events while the map is computed
    big = make_nuclei((1024, 1024), seed=4).instances
    viewer.add_labels(big, name="big")
    widget.source.value = viewer.layers["big"]
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(10)
    widget.run()
    assert widget.jobs.running
    _wait(qtbot, widget)
    timer.stop()
    assert viewer.layers[-1].data.shape == (1024, 1024) and len(ticks) >= 3


def test_evaluate_widget_reports_known_dice(make_napari_viewer):
    viewer = make_napari_viewer()
    truth = np.zeros((10, 10), np.uint8)
    truth[:5] = 1
    pred = np.zeros((10, 10), np.uint8)
    pred[:5, :5] = 1  # half the foreground found: Dice(1) = 2*25 / (50 + 25) = 2/3
    viewer.add_labels(truth, name="truth")
    viewer.add_labels(pred, name="pred")
    widget = dock(viewer, "Evaluate")
    widget.prediction.value = viewer.layers["pred"]
    widget.truth.value = viewer.layers["truth"]
    report = widget.run()
    assert report["dice"][1] == pytest.approx(2 / 3)
    assert report == segmentation_report(truth, pred, 2)
    assert "1\t0.6667" in widget.report_text and "truth \\ prediction" in widget.report_text
    # a real table (sortable) and the confusion matrix as a heat map
    assert widget.scores.native.isSortingEnabled()
    rows = widget.scores.data.to_list()
    assert [str(rows[1][0]), *rows[1][1:]] == ["1", 0.6667, 0.5] and rows[-1][0] == "mean"
    assert widget.confusion.data.to_list() == [[50, 0], [25, 25]]
    cells = widget.confusion.native
    assert cells.item(0, 0).background().color() != cells.item(0, 1).background().color()
    widget.copy()
    from qtpy.QtWidgets import QApplication

    assert QApplication.clipboard().text() == widget.report_text


def test_export_widget_round_trips(make_napari_viewer, tmp_path, notes):
    viewer = make_napari_viewer()
    labels = make_nuclei((40, 50), seed=4).instances
    viewer.add_labels(labels, name="nuclei", scale=(2.0, 2.0))
    widget = dock(viewer, "Export labels")
    for fmt, name in (("TIFF", "out"), ("zarr", "out")):
        widget.format.value = fmt
        widget.path.value = tmp_path / name
        path = widget.run()
        back = read_stack(path)
        np.testing.assert_array_equal(np.asarray(back.data), labels)
        assert tuple(back.scale) == (2.0, 2.0)
    widget.format.value = "TIFF"
    widget.path.value = tmp_path / "out"
    assert widget.run() is None  # exists: not replaced without "overwrite"
    assert any("overwrite" in n for n in notes())


def test_load_widget_picks_a_zarr_array_lazily(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    group = zarr.open_group(tmp_path / "volume.zarr", mode="w")
    group.create_array("raw", shape=(4, 32, 32), chunks=(1, 32, 32), dtype="uint16")[:] = 7
    group.create_array("mask", shape=(4, 32, 32), chunks=(1, 32, 32), dtype="uint8")[:] = 1
    widget = dock(viewer, "Load stack")
    widget.folder.value = True
    widget.path.value = tmp_path / "volume.zarr"
    assert set(widget.array.choices) == {"raw", "mask"} and not widget.array.native.isHidden()
    widget.array.value = "raw"
    layer = widget.run()
    assert hasattr(layer.data, "dask") and layer.data.shape == (4, 32, 32)
    assert int(layer.data[0, 0, 0]) == 7


def test_export_widget_writes_a_submission_csv(make_napari_viewer, tmp_path):
    from napari_segkit.kaggle import read_submission

    viewer = make_napari_viewer()
    labels = np.zeros((2, 20, 30), np.uint8)
    labels[0, 2:8, 3:9] = 1
    labels[1, 10:15, 20:25] = 2
    viewer.add_labels(labels, name="pred")
    widget = dock(viewer, "Export labels")
    widget.format.value = "Kaggle RLE CSV"
    widget.path.value = tmp_path / "sub"
    path = widget.run()
    assert path.name == "sub.csv"
    masks = read_submission(path, {"pred_0": (20, 30), "pred_1": (20, 30)})
    np.testing.assert_array_equal(masks["pred_0"], labels[0] > 0)
    np.testing.assert_array_equal(masks["pred_1"], labels[1] > 0)
    # File > Open brings it back (issue 19.6): the sizes are in the sidecar beside it
    (reopened,) = viewer.open(str(path), plugin="napari-segkit")
    assert reopened.name == "pred [1]" or reopened.name.startswith("pred")
    np.testing.assert_array_equal(reopened.data, labels > 0)
    widget.per_class.value, widget.overwrite.value = True, True
    widget.run()
    (by_class,) = viewer.open(str(path), plugin="napari-segkit")
    np.testing.assert_array_equal(by_class.data, labels)  # class ids survive


def test_rle_csv_opens_as_image_and_labels_layers(make_napari_viewer, tmp_path):
    from skimage.io import imsave

    from napari_segkit.core.rle import rle_encode

    sample = make_nuclei((40, 40), seed=9)
    (tmp_path / "images").mkdir()
    imsave(tmp_path / "images" / "cells.png", sample.image.astype(np.uint8), check_contrast=False)
    rows = [f"cells,{rle_encode(sample.instances == n)}" for n in np.unique(sample.instances)[1:]]
    (tmp_path / "train.csv").write_text("ImageId,EncodedPixels\n" + "\n".join(rows) + "\n")
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "train.csv", plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == ["cells", "cells masks"]
    np.testing.assert_array_equal(viewer.layers["cells masks"].data > 0, sample.instances > 0)


def test_sample_segmented_by_the_default_model(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei_2d_segmented")
    names = [layer.name for layer in viewer.layers]
    assert names == [
        "nuclei 2D",
        "nuclei 2D semantic labels",
        "nuclei 2D default model labels",
        "nuclei 2D default model instances",
    ]
    truth = viewer.layers["nuclei 2D semantic labels"].data
    pred = viewer.layers["nuclei 2D default model labels"].data
    # the default model (real DSB2018 nuclei) on the synthetic sample it never saw
    assert segmentation_report(truth > 0, pred > 0, 2)["dice"][1] > 0.9
    objects = viewer.layers["nuclei 2D default model instances"].data
    assert objects.max() > 10 and ((objects > 0) == (pred > 0)).mean() > 0.95


def test_predict_widget_preselects_the_bundled_model(make_napari_viewer):
    from napari_segkit.samples import DEFAULT_MODEL

    widget = dock(make_napari_viewer(), "Predict")
    assert widget.model.value == DEFAULT_MODEL
    # and says how it makes instances: the post-processing tuned for it and recorded
    assert "instances: watershed (threshold 0.6, seeds 0.5, min px 30: tuned)" in (
        widget.model_info.value
    )


def test_training_from_the_console_of_a_running_viewer(tmp_path):
    """In a fresh process with a GL context (as in napari's console), train() must not crash
    importing triton's LLVM next to Mesa's (a segfault before the fix)."""
    import subprocess
    import sys

    script = f"""
import napari, numpy as np
viewer = napari.Viewer(show=False)
viewer.add_image(np.zeros((8, 8)))
viewer.screenshot()  # the GL context is live
from napari_segkit import make_nuclei, train
s = [make_nuclei((48, 48), seed=i) for i in (1, 2)]
train([x.image for x in s], [x.semantic for x in s], out={str(tmp_path / "m.safetensors")!r},
      arch_options={{"width": 4, "depth": 2}}, epochs=1, steps_per_epoch=2, patch_size=32)
print("trained")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained" in result.stdout


def test_predict_rescales_small_nuclei_to_the_models_object_size(
    make_napari_viewer, qtbot, notes, shrunk_fluorescence, tiny_model_path
):
    """A real DSB2018 image at 40 % of its pixel size: "object size: estimate" magnifies
    it for the default model and adds labels and instances at the image's own size, as
    predict_objects does from the console."""
    from napari_segkit.samples import DEFAULT_MODEL
    from napari_segkit.tiling import predict_objects

    small = shrunk_fluorescence
    viewer = make_napari_viewer()
    viewer.add_image(small, name="small", rgb=True)
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path  # records no training object sizes
    assert not widget.object_size.enabled
    widget.model.value = DEFAULT_MODEL
    assert widget.object_size.enabled and widget.instances.value
    assert widget.object_size.value == "auto"  # the default for a model that records sizes
    widget.run()
    _wait(qtbot, widget)
    expected = predict_objects(DEFAULT_MODEL, small, object_diameter="auto")
    assert expected.scale > 1.5
    name = "small [nuclei_dsb2018]"
    np.testing.assert_array_equal(viewer.layers[f"{name} labels"].data, expected.labels)
    np.testing.assert_array_equal(viewer.layers[f"{name} instances"].data, expected.instances)
    assert any(f"magnified {expected.scale:.2f}x" in n for n in notes())
    # a zarr output is written block by block, not rescaled in memory: the choice goes
    # away while "write to zarr" is ticked, and comes back with it unticked
    widget.to_zarr.value = True
    assert not widget.object_size.enabled and widget.object_size.value is None
    widget.object_size.value = "auto"  # from the console: refused with the reason
    widget.run()
    assert any("works in memory" in n for n in notes()) and not widget.jobs.running
    widget.to_zarr.value = False
    assert widget.object_size.enabled and widget.object_size.value == "auto"
    # the user's own choice survives ticking and unticking "write to zarr"
    widget.object_size.value, widget.diameter.value = "given", 12.0
    widget.to_zarr.value = True
    assert widget.object_size.value is None
    widget.to_zarr.value = False
    assert widget.object_size.value == "given" and widget.diameter.value == 12.0
    assert widget.object_diameter() == 12.0


def test_predict_refuses_an_in_memory_result_larger_than_memory(
    make_napari_viewer, notes, tiny_model_path
):
    import dask.array as da

    viewer = make_napari_viewer()
    # 10,000 planes of 2000 x 2000: 40 G pixels, lazy (napari reads one plane to show it)
    huge = da.zeros((10_000, 2000, 2000), dtype=np.uint8, chunks=(1, 2000, 2000))
    viewer.add_image(huge, name="huge", contrast_limits=(0, 1), multiscale=False)
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path
    widget.run()
    assert not widget.jobs.running
    assert any("tick 'write to zarr'" in n for n in notes())


def test_every_dock_scrolls_and_fits_a_laptop_screen(make_napari_viewer):
    """Issue 19.1: each dock asks for at most MAX_DOCK_HEIGHT pixels and scrolls the rest
    (the Train form alone is taller than a 1366 x 768 screen leaves)."""
    from qtpy.QtWidgets import QScrollArea

    from napari_segkit.napari._widgets._dock import MAX_DOCK_HEIGHT

    viewer = make_napari_viewer()
    docks = {}
    for name in DOCKS:
        widget = docks[name] = dock(viewer, name)
        assert isinstance(widget, QScrollArea)
        assert widget.sizeHint().height() <= MAX_DOCK_HEIGHT
        assert widget.minimumSizeHint().height() < 200
    train = docks["Train"]
    assert train.widget().sizeHint().height() > MAX_DOCK_HEIGHT  # so it does scroll
    assert train.form.native is train.widget() and train.epochs is train.form.epochs


def test_instance_labels_are_refused_for_semantic_training(make_napari_viewer, tmp_path, notes):
    """Issue 19.2: an instance Labels layer (one id per object) would train one class per
    object; the widget refuses it and the library warns, naming the remedy."""
    from napari_segkit.training import train

    viewer = make_napari_viewer()
    sample = make_nuclei((96, 96), radius=(4.0, 6.0), seed=6)
    assert sample.instances.max() > 16
    viewer.add_image(sample.image, name="img")
    viewer.add_labels(sample.instances, name="objects")
    widget = dock(viewer, "Train")
    widget.image_layers.value = [viewer.layers["img"]]
    widget.label_layers.value = [viewer.layers["objects"]]
    widget.out.value = tmp_path / "m.safetensors"
    widget.run()
    assert not widget.jobs.running and not (tmp_path / "m.safetensors").exists()
    assert any("look like instance labels" in n and "boundary" in n for n in notes())
    with pytest.warns(UserWarning, match="look like instance labels"):
        train(
            [sample.image], [sample.instances], out=tmp_path / "w.safetensors",
            epochs=1, steps_per_epoch=1, patch_size=32, val_fraction=0,
            arch_options={"width": 4, "depth": 2},
        )  # fmt: skip
    # a semantic mask of the same image passes without a word
    widget.target.value = "semantic"
    from napari_segkit.core.guards import instance_like

    assert instance_like(sample.semantic) is None


def test_evaluate_guards_same_layer_and_instance_truth(make_napari_viewer, notes):
    viewer = make_napari_viewer()
    sample = make_nuclei((96, 96), radius=(4.0, 6.0), seed=6)
    viewer.add_labels(sample.semantic, name="pred")
    viewer.add_labels(sample.instances, name="truth")
    widget = dock(viewer, "Evaluate")
    widget.prediction.value = viewer.layers["pred"]
    assert widget.truth.value is viewer.layers["truth"]  # never the same layer by default
    widget.truth.value = viewer.layers["pred"]
    assert widget.run() is None and any("both prediction and ground truth" in n for n in notes())
    widget.truth.value = viewer.layers["truth"]
    report = widget.run()  # instance truth: foreground vs background, not 30 classes
    assert report["classes"] == ["background", "foreground"] and report["dice"][1] == 1.0
    assert "instance labels" in widget.report_text and "instance labels" in widget.note.value


def test_the_trained_model_is_offered_for_the_next_round(
    make_napari_viewer, qtbot, tmp_path, notes
):
    """Issue 19.4: after training, Predict selects the new model and Train offers it to
    continue from; result layers name the model; one image validates on a held-out strip."""
    viewer = make_napari_viewer()
    sample = make_nuclei((96, 96), seed=2)
    viewer.add_image(sample.image, name="img")
    viewer.add_labels(sample.semantic, name="mask")
    predict_widget = dock(viewer, "Predict")
    widget = dock(viewer, "Train")
    widget.image_layers.value = [viewer.layers["img"]]
    widget.label_layers.value = [viewer.layers["mask"]]
    widget.epochs.value, widget.steps.value = 1, 2
    widget.patch_size.value, widget.batch_size.value = 32, 2
    widget.val_fraction.value = 0.4
    widget.out.value = tmp_path / "round1.safetensors"
    widget.run()
    _wait(qtbot, widget)
    assert str(predict_widget.model.value) == str(tmp_path / "round1.safetensors")
    # the picker lists the bundled models and the one just trained, with what it is
    picker = predict_widget.picker.native
    labels = [picker.itemText(i) for i in range(picker.count())]
    assert labels[0].startswith("bundled: nuclei") and "recent: round1.safetensors" in labels
    assert "classes:" in predict_widget.model_info.value
    assert "1 channel" in predict_widget.model_info.value
    assert "instances: connected components" in predict_widget.model_info.value
    assert str(widget.init.value) == str(tmp_path / "round1.safetensors")
    assert "img [round1] labels" in [layer.name for layer in viewer.layers]
    assert "val Dice" in widget.summary.value  # the last epoch's scores stay in view
    from napari_segkit.models import read_model_info

    info = read_model_info(tmp_path / "round1.safetensors")
    assert info.training["n_val_planes"] == 1  # the held-out strip
    # the next round into the same file is refused, with a versioned name to use instead
    mtime = (tmp_path / "round1.safetensors").stat().st_mtime_ns
    widget.run()
    _wait(qtbot, widget)
    assert any("save as 'round1-v2.safetensors'" in n for n in notes())
    assert (tmp_path / "round1.safetensors").stat().st_mtime_ns == mtime
    assert len(info.training["class_fractions"]) == 2


def test_an_rgb_layer_reaches_a_one_channel_model(
    make_napari_viewer, qtbot, tiny_model_path, notes
):
    """Issue 19.7: RGB images segment from the GUI (the luminance, for a gray model)."""
    viewer = make_napari_viewer()
    gray = make_nuclei((64, 64), seed=8).image
    scaled = (255 * (gray - gray.min()) / np.ptp(gray)).astype(np.uint8)
    viewer.add_image(np.repeat(scaled[..., None], 3, axis=-1), name="colour", rgb=True)
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path
    widget.run()
    _wait(qtbot, widget)
    labels = viewer.layers["colour [tiny] labels"].data
    np.testing.assert_array_equal(labels, predict(tiny_model_path, scaled))
    assert any("predicting on its luminance" in n for n in notes())


def test_every_field_has_a_tooltip_and_paths_show_their_file_name(make_napari_viewer, tmp_path):
    from magicgui.widgets import FileEdit, Label, Table
    from magicgui.widgets.bases import ButtonWidget, ValueWidget
    from qtpy.QtWidgets import QLineEdit

    viewer = make_napari_viewer()
    docks = {}
    for name in DOCKS:
        docks[name] = dock(viewer, name)
        form = docks[name].form
        for attr, field in vars(form).items():
            shown_only = (ButtonWidget, Label, Table)  # buttons, status lines, results
            is_field = isinstance(field, (ValueWidget, FileEdit))
            if is_field and not isinstance(field, shown_only):
                assert field.tooltip, f"{name}: '{attr}' has no tooltip"
    train = docks["Train"]
    deep = tmp_path / "a" / "very" / "long" / "folder" / "name" / "cells-v3.safetensors"
    train.out.value = deep
    line = train.out.native.findChild(QLineEdit)
    assert line.cursorPosition() == len(line.text())  # the file name is in view
    assert str(deep) in train.out.tooltip
    assert isinstance(train.out, FileEdit)


def test_predict_the_current_slice_or_view_for_quick_feedback(
    make_napari_viewer, qtbot, tiny_model_path
):
    """Issue 19.4: the plane shown (or the visible part) only, placed where it lies."""
    viewer = make_napari_viewer()
    stack = make_nuclei((4, 64, 64), seed=5).image
    layer = viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5))
    viewer.dims.set_point(0, 2 * 2.0)  # world z of plane 2
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path
    widget.region.value = "current slice"
    widget.run()
    _wait(qtbot, widget)
    result = viewer.layers["stack [tiny] labels"]
    assert result.data.shape == (1, 64, 64)
    np.testing.assert_allclose(result.translate, (4.0, 0.0, 0.0))
    np.testing.assert_array_equal(result.data[0], predict(tiny_model_path, stack[2]))
    widget.region.value = "current view"
    widget.run()
    _wait(qtbot, widget)
    view = viewer.layers[-1]
    assert view.data.shape[0] == 1 and view.data.shape[1] <= 64 and view.data.shape[2] <= 64
    assert layer.corner_pixels is not None


def test_progress_starts_at_zero_and_moves_per_tile_batch(
    make_napari_viewer, qtbot, tiny_model_path
):
    """Issue 19.3: a single 2048^2 image is one block; the bar still moves per tile batch,
    starts at 0 (not at the last job's 100 %) and the status says tiles/s and time left."""
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((2048, 2048), np.float32), name="big")
    widget = dock(viewer, "Predict")
    widget.model.value = tiny_model_path
    widget.jobs.bar.max, widget.jobs.bar.value = 10, 10  # a finished job's full bar
    seen, statuses = [], []
    timer = QTimer()
    timer.timeout.connect(
        lambda: (seen.append(widget.jobs.bar.value), statuses.append(widget.jobs.status.value))
    )
    widget.run()
    assert widget.jobs.bar.value == 0
    timer.start(20)
    _wait(qtbot, widget, timeout=120_000)
    timer.stop()
    moving = sorted({v for v in seen if v > 0})
    assert len(moving) > 2, seen[:20]
    assert any("tiles/s" in s and "left" in s for s in statuses)


def test_the_training_plot_legend_fits_a_narrow_dock(qtbot):
    from napari_segkit.napari._widgets._plot import CurvePlot

    plot = CurvePlot()
    qtbot.addWidget(plot)
    for name in ("train loss", "val loss", "val mean Dice"):
        plot.add(name, 1, 0.5)
    for width in (180, 260, 600):
        entries = plot.legend_layout(width)
        assert len(entries) == 3
        assert all(rect.right() <= width for _, rect in entries)
    assert len({rect.top() for _, rect in plot.legend_layout(180)}) > 1  # wrapped
    plot.resize(180, 200)
    plot.grab()  # paints without error


def test_a_large_csv_opens_its_first_images_with_a_notice(make_napari_viewer, tmp_path, notes):
    from skimage.io import imsave

    from napari_segkit.core.rle import rle_encode
    from napari_segkit.napari._reader import MAX_CSV_IMAGES

    (tmp_path / "images").mkdir()
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    rows = []
    for i in range(MAX_CSV_IMAGES + 6):
        imsave(tmp_path / "images" / f"im{i:02d}.png", np.zeros((8, 8), np.uint8),
               check_contrast=False)  # fmt: skip
        rows.append(f"im{i:02d},{rle_encode(mask)}")
    (tmp_path / "big.csv").write_text("ImageId,EncodedPixels\n" + "\n".join(rows) + "\n")
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="opening the first"):
        viewer.open(tmp_path / "big.csv", plugin=PLUGIN)
    assert len(viewer.layers) == 2 * MAX_CSV_IMAGES
    assert any(f"lists {MAX_CSV_IMAGES + 6} images" in n for n in notes())


def test_a_prediction_unlike_the_training_data_is_flagged(
    make_napari_viewer, qtbot, tmp_path, notes
):
    """Issue 19.2: a model that labels most of an image with a class that covered 5 % of
    its training pixels (the nuclei model on an EM slice) warns; a usual result does not."""
    torch.manual_seed(0)
    paths = {}
    for name, bias in (("odd", (0.0, 20.0)), ("usual", (20.0, 0.0))):
        model = build_model("unet_original", 1, 2, width=4, depth=2)
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        with torch.no_grad():
            last.bias.copy_(torch.tensor(bias))
        paths[name] = save_model(
            tmp_path / f"{name}.safetensors",
            model,
            class_names=["background", "nucleus"],
            tile_size=(64, 64),
            training={"class_fractions": [0.95, 0.05]},
        )
    viewer = make_napari_viewer()
    viewer.add_image(make_nuclei((64, 64), seed=1).image, name="em")
    widget = dock(viewer, "Predict")
    for name in ("usual", "odd"):
        widget.model.value = paths[name]
        widget.run()
        _wait(qtbot, widget)
    flagged = [n for n in notes() if "unlike the model's training images" in n]
    assert len(flagged) == 1 and "[odd]" in flagged[0] and "'nucleus'" in flagged[0]


def test_export_model_widget_writes_a_package_that_loads(
    make_napari_viewer, qtbot, tmp_path, tiny_model_path, notes
):
    pytest.importorskip("bioimageio.core")
    from napari_segkit.models import load_model

    viewer = make_napari_viewer()
    viewer.add_image(make_nuclei((100, 120), seed=5).image, name="cells")
    widget = dock(viewer, "Export model")
    widget.model.value = tiny_model_path
    assert str(widget.out.value).endswith("tiny.zip")  # next to the model, format's suffix
    widget.format.value = "ONNX (.onnx)"
    assert str(widget.out.value).endswith("tiny.onnx")
    widget.format.value = "bioimage.io package (.zip)"
    widget.out.value = tmp_path / "cells.zip"
    widget.authors.value = "A. Tester, B. Tester"
    widget.test_image.value = viewer.layers["cells"]
    widget.run()
    _wait(qtbot, widget, timeout=180_000)
    assert any("Exported tiny.safetensors" in n for n in notes())
    imported = load_model(tmp_path / "cells.zip")
    assert imported.info.class_names == ["background", "cell", "edge"]
    # the package segments in the Predict widget like the model file it came from
    predict_widget = dock(viewer, "Predict")
    for model in (tiny_model_path, tmp_path / "cells.zip"):
        predict_widget.model.value = model
        predict_widget.run()
        _wait(qtbot, predict_widget)
    package_labels, file_labels = viewer.layers[-1].data, viewer.layers[-2].data
    np.testing.assert_array_equal(package_labels, file_labels)
    # a missing model file: a message, no job
    widget.model.value = tmp_path / "missing.safetensors"
    widget.run()
    assert not widget.jobs.running
    assert any("no model file" in n for n in notes())


def test_train_widget_trains_a_3d_model_on_a_stack_layer(make_napari_viewer, qtbot, tmp_path):
    """A 3D architecture on a stack: 3D patches, the layer's scale recorded as the voxel
    spacing, and the new model's 3D prediction added over the stack."""
    from napari_segkit.models import read_model_info

    viewer = make_napari_viewer()
    sample = make_nuclei((10, 40, 40), radius=(4.0, 7.0), seed=31)
    viewer.add_image(sample.image, name="stack", scale=(2.0, 0.5, 0.5))
    viewer.add_labels(sample.semantic, name="nuclei", scale=(2.0, 0.5, 0.5))
    widget = dock(viewer, "Train")
    widget.image_layers.value = [viewer.layers["stack"]]
    widget.label_layers.value = [viewer.layers["nuclei"]]
    widget.arch.value = "unet3d"
    widget.epochs.value, widget.steps.value = 1, 2
    widget.patch_size.value, widget.batch_size.value = 16, 1
    widget.val_fraction.value = 0.0
    widget.out.value = tmp_path / "stack3d.safetensors"
    widget.run()
    _wait(qtbot, widget)
    info = read_model_info(tmp_path / "stack3d.safetensors")
    assert info.spatial_dims == 3 and info.spacing == [2.0, 0.5, 0.5]
    assert viewer.layers[-1].data.shape == (10, 40, 40)
