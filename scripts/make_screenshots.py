"""Screenshots of each widget in use, for the README (headless: run under xvfb-run).

    xvfb-run -a python scripts/make_screenshots.py            # writes docs/screenshots/*.png

Every picture is a real napari window: the widget is docked from the plugin's
manifest, filled in and run exactly as a user would; then ``viewer.screenshot``
grabs the window, which is scaled down to keep the files small.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from skimage.transform import resize

from napari_segkit.core.synthetic import make_nuclei

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
PLUGIN = "napari-segkit"
WIDTH = 960  # pixels of the saved PNG


def wait(widget, timeout: float = 600) -> None:
    """Process events until the widget's background job is done."""
    start = time.monotonic()
    while widget.jobs.running and time.monotonic() - start < timeout:
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        QApplication.processEvents()


def shoot(viewer, name: str) -> None:
    for _ in range(10):
        QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
    scale = WIDTH / shot.shape[1]
    small = resize(
        shot, (round(shot.shape[0] * scale), WIDTH), anti_aliasing=True, preserve_range=True
    ).astype(np.uint8)
    OUT.mkdir(parents=True, exist_ok=True)
    iio.imwrite(OUT / f"{name}.png", small, optimize=True)
    print(f"wrote {OUT / name}.png {small.shape[1]} x {small.shape[0]}")


def fresh_viewer():
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 900)
    return viewer


def main() -> None:
    tmp = Path(tempfile.mkdtemp())

    from napari_segkit.core.io import write_stack

    stack = make_nuclei((24, 256, 256), radius=(6.0, 10.0), seed=5).image
    write_stack(tmp / "volume.zarr", stack, chunks=(1, 128, 128), scale=(2.0, 0.5, 0.5))
    viewer = fresh_viewer()
    _, load = viewer.window.add_plugin_dock_widget(PLUGIN, "Load stack")
    load.folder.value = True
    load.path.value = tmp / "volume.zarr"
    load.run()
    viewer.dims.ndisplay = 3
    shoot(viewer, "load")
    viewer.close()

    viewer = fresh_viewer()
    viewer.open_sample(PLUGIN, "nuclei_2d")
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict")
    predict.image.value = viewer.layers["nuclei 2D"]
    predict.outputs.value = "labels + probabilities"
    predict.run()
    wait(predict)
    for layer in viewer.layers:  # probabilities listed; shown: image, labels, instances
        if " p(" in layer.name:
            layer.visible = False
    labels = next(layer for layer in viewer.layers if layer.name.endswith("] labels"))
    labels.opacity = 0.5
    viewer.layers.selection.active = labels
    shoot(viewer, "predict")
    viewer.close()

    viewer = fresh_viewer()
    for seed in (1, 2):
        s = make_nuclei((256, 256), seed=seed)
        viewer.add_image(s.image, name=f"image {seed}")
        viewer.add_labels(s.semantic, name=f"labels {seed}")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    train.image_layers.value = [viewer.layers["image 1"], viewer.layers["image 2"]]
    train.label_layers.value = [viewer.layers["labels 1"], viewer.layers["labels 2"]]
    train.epochs.value, train.steps.value, train.patch_size.value = 8, 15, 128
    train.val_fraction.value = 0.5
    train.class_names.value = "background, nucleus"
    train.out.value = tmp / "screenshot-model.safetensors"
    train.run()
    wait(train)
    for name in ("image 2", "labels 1", "labels 2"):  # show image 1 with the new model's labels
        viewer.layers[name].visible = False
    viewer.layers[-1].opacity = 0.5  # the new model's labels
    shoot(viewer, "train")
    viewer.close()

    viewer = fresh_viewer()
    s = make_nuclei((256, 256), seed=3, touching_fraction=0.7)
    viewer.add_labels(s.instances, name="nuclei", opacity=0.5)
    _, weights = viewer.window.add_plugin_dock_widget(PLUGIN, "Border weights")
    weights.run()
    wait(weights)
    viewer.layers.move(1, 0)  # weight map below the labels
    shoot(viewer, "border_weights")
    viewer.close()

    viewer = fresh_viewer()
    viewer.open_sample(PLUGIN, "nuclei_2d_segmented")
    _, evaluate = viewer.window.add_plugin_dock_widget(PLUGIN, "Evaluate")
    evaluate.prediction.value = viewer.layers["nuclei 2D default model labels"]
    evaluate.truth.value = viewer.layers["nuclei 2D semantic labels"]
    evaluate.run()
    shoot(viewer, "evaluate")
    _, export = viewer.window.add_plugin_dock_widget(PLUGIN, "Export labels")
    export.source.value = viewer.layers["nuclei 2D default model labels"]
    export.format.value = "Kaggle RLE CSV"
    export.path.value = tmp / "submission.csv"
    export.run()
    shoot(viewer, "export")
    viewer.close()


if __name__ == "__main__":
    main()
