"""Train widget: a form over :func:`napari_segkit.train`, with a live plot, run off the UI thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    Select,
    SpinBox,
)
from napari.layers import Image, Labels, Layer
from napari.utils.notifications import show_error, show_info

from ...config import (
    CLASS_WEIGHT_METHODS,
    COLOR_MODES,
    DEFAULT_ARCH,
    DEFAULT_NORMALIZATION,
    TARGETS,
    TrainConfig,
    parse_options,
)
from ...core.augment import Augmentation
from ...losses.table import loss_names
from ._jobs import JobPanel
from ._layers import layer_choices
from ._plot import CurvePlot


class TrainWidget(Container):
    """Train a model from (Image, Labels) layer pairs: the i-th selected image goes with
    the i-th selected labels layer (in layer-list order).

    With "sparse labels" 0 means unlabeled (scribbles train correctly) and classes are
    1..K. "Continue from model" fine-tunes an existing model file (human in the loop:
    correct the labels, retrain a few epochs, predict again). Target "boundary" reads
    the labels layers as instances (one id per object) and trains background /
    interior / boundary, so touching objects come out split (an instances layer is
    added after training).
    """

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821 -- napari injects it
        from ...models import list_architectures
        from ...runtime import import_torch_compiler_safely

        import_torch_compiler_safely()  # on the UI thread, before any training starts
        self.viewer = viewer
        d = TrainConfig()
        self.image_layers = Select(label="images", choices=layer_choices(viewer, Image))
        self.label_layers = Select(label="labels", choices=layer_choices(viewer, Labels))
        self.sparse = CheckBox(label="sparse labels (0 = unlabeled)", value=False)
        self.target = ComboBox(label="target", choices=TARGETS, value=TARGETS[0])
        self.target.tooltip = (
            "semantic: the labels' class ids as they are; boundary: the labels are instances "
            "(one id per object), learnt as background / interior / boundary so that "
            "touching objects can be split"
        )
        self.color = ComboBox(label="colour input", choices=COLOR_MODES, value=COLOR_MODES[0])
        self.color.tooltip = (
            "as-is: the model takes the images' channels; gray: one channel, RGB images read "
            "as their luminance; rgb: three channels, gray images read as three copies"
        )
        self.invert = CheckBox(label="invert bright backgrounds", value=False)
        self.invert.tooltip = (
            "bright-field / stained images (bright background) are inverted when normalised, "
            "so one model handles them and fluorescence alike"
        )
        self.class_names = LineEdit(label="class names (optional)", value="")
        self.class_names.native.setPlaceholderText("background, nucleus, ...")
        self.arch = ComboBox(
            label="architecture",
            value=DEFAULT_ARCH,
            choices=[(a["name"], a["name"]) for a in list_architectures()],
        )
        self.arch.native.setToolTip(
            "\n".join(f"{a['name']}: {a['description']}" for a in list_architectures())
        )
        self.loss = ComboBox(label="loss", choices=loss_names(), value=d.loss)
        self.loss_options = LineEdit(label="loss options (optional)", value="")
        self.loss_options.native.setPlaceholderText("per_image=true, ce_weight=0.5")
        self.loss_options.tooltip = (
            "the loss's own options as KEY=VALUE, separated by commas (as segkit train "
            "--loss-option): e.g. per_image=true for the Lovasz losses"
        )
        self.class_weighting = ComboBox(
            label="class weights",
            value=None,
            choices=[("none", None), *((m, m) for m in CLASS_WEIGHT_METHODS)],
        )
        self.epochs = SpinBox(label="epochs", value=d.epochs, min=1, max=10000)
        self.steps = SpinBox(label="steps per epoch", value=d.steps_per_epoch, min=1, max=100000)
        self.patch_size = SpinBox(
            label="patch size", value=d.patch_size, min=16, max=2048, step=16
        )
        self.batch_size = SpinBox(label="batch size", value=d.batch_size, min=1, max=256)
        self.zoom = FloatSpinBox(label="random zoom up to", value=1.0, min=1.0, max=4.0, step=0.1)
        # image quality unlike the training images' (core.augment.Augmentation; 0: off)
        self.blur = FloatSpinBox(
            label="random blur up to (px)", value=0.0, min=0.0, max=5.0, step=0.5
        )
        self.noise = FloatSpinBox(
            label="random noise up to", value=0.0, min=0.0, max=0.5, step=0.01
        )
        self.val_fraction = FloatSpinBox(
            label="validation fraction", value=d.val_fraction, min=0.0, max=0.5, step=0.05
        )
        self.out = FileEdit(
            label="save model to",
            mode="w",
            filter="*.safetensors",
            value=str(Path.home() / "segkit-model.safetensors"),
        )
        self.overwrite = CheckBox(label="overwrite an existing model file", value=False)
        self.continue_from = CheckBox(label="continue from model", value=False)
        self.init = FileEdit(
            label="model to fine-tune", mode="r", filter="*.safetensors", visible=False
        )
        self.predict_after = CheckBox(label="predict the first image when done", value=True)
        self.plot = CurvePlot()
        self.summary = Label(value="")
        self.jobs = JobPanel("Train")
        super().__init__(
            widgets=[
                self.image_layers,
                self.label_layers,
                self.sparse,
                self.target,
                self.color,
                self.invert,
                self.class_names,
                self.arch,
                self.loss,
                self.loss_options,
                self.class_weighting,
                self.epochs,
                self.steps,
                self.patch_size,
                self.batch_size,
                self.zoom,
                self.blur,
                self.noise,
                self.val_fraction,
                self.out,
                self.overwrite,
                self.continue_from,
                self.init,
                self.predict_after,
                self.jobs,
                self.summary,
            ]
        )
        self.native.layout().addWidget(self.plot)
        self.continue_from.changed.connect(lambda on: setattr(self.init, "visible", bool(on)))
        self.jobs.run_button.changed.connect(self.run)

    def options(self) -> dict:
        """The form's values as :func:`~napari_segkit.train` keyword arguments.

        Returns
        -------
        dict
            Keyword arguments of :func:`~napari_segkit.train`, without the data.

        Raises
        ------
        ValueError
            Loss options that are not KEY=VALUE pairs.
        """
        weighting = self.class_weighting.value
        names = [n.strip() for n in self.class_names.value.split(",") if n.strip()]
        normalization = dict(DEFAULT_NORMALIZATION)
        if self.invert.value:
            normalization["invert"] = "auto"
        ranges = {}
        if self.zoom.value > 1.0:  # patches zoomed between 1/z and z (1: off)
            ranges["zoom"] = (1.0 / self.zoom.value, self.zoom.value)
        if self.blur.value > 0:  # every patch blurred, sigma between 0 and the value
            ranges["blur_sigma"] = (0.0, self.blur.value)
        if self.noise.value > 0:  # noise of a standard deviation between 0 and the value
            ranges["noise_std"] = (0.0, self.noise.value)
        augmentation = {"augmentation": Augmentation(**ranges)} if ranges else {}
        return {
            **augmentation,
            "class_names": names or None,
            "target": self.target.value,
            "color": self.color.value,
            "normalization": normalization,
            "arch": self.arch.value,
            "loss": self.loss.value,
            "loss_options": parse_options(self.loss_options.value, "loss"),
            "sparse": self.sparse.value,
            "class_weights": weighting,
            "epochs": self.epochs.value,
            "steps_per_epoch": self.steps.value,
            "patch_size": self.patch_size.value,
            "batch_size": self.batch_size.value,
            "val_fraction": self.val_fraction.value,
            "out": str(self.out.value),
            "overwrite": self.overwrite.value,
            "init": str(self.init.value) if self.continue_from.value else None,
        }

    def run(self, *_) -> None:
        """Check the layer pairs, then train in a worker thread."""
        images, labels = list(self.image_layers.value), list(self.label_layers.value)
        problem = _pair_problem(images, labels)
        if problem:
            show_error(f"Train: {problem}")
            return
        from ...training.loop import check_config

        try:
            options = self.options()
            # a misspelt or reserved loss option fails here, naming the options the loss
            # takes, rather than in the worker after the data are prepared
            check_config(TrainConfig(loss=options["loss"], loss_options=options["loss_options"]))
        except ValueError as error:
            show_error(f"Train: {error}")
            return
        if options["target"] == "semantic" and not options["sparse"]:
            from ...core.guards import instance_like

            n_names = len(options["class_names"]) if options["class_names"] else None
            for layer in labels:
                if problem := instance_like(layer.data, n_names):
                    show_error(f"Train: labels '{layer.name}': {problem}")
                    return
        if not options["out"].endswith(".safetensors"):
            show_error(f"Train: the model file must end in .safetensors, got '{options['out']}'")
            return
        planes = sum(1 if layer.data.ndim == 2 else layer.data.shape[0] for layer in labels)
        if planes == 1 and options["val_fraction"] > 0:
            show_info(
                f"Train: one image, so validation uses a held-out strip of it "
                f"({options['val_fraction']:.0%} of its longer side), not seen in training"
            )
        from ...models.registry import get_architecture

        if get_architecture(options["arch"]).spatial_dims == 3 and labels[0].data.ndim == 3:
            # a 3D model records the voxel spacing it learnt at: the layer's scale
            options["spacing"] = tuple(float(s) for s in labels[0].scale[-3:])
        # snapshot the layers: the user may keep painting while the model trains
        image_data = [np.array(layer.data) for layer in images]
        label_data = [np.array(layer.data) for layer in labels]
        target = images[0]
        predict_after = self.predict_after.value
        self.plot.clear()

        def work(progress, cancel):
            from ...tiling import predict
            from ...training import train

            model_file = train(
                image_data,
                label_data,
                cancel=cancel,
                progress=lambda r: progress(r, force=r.end_of_epoch),
                **options,
            )
            if not predict_after:
                return model_file, None, None
            if not model_file.info.splits_touching:
                return model_file, predict(model_file, image_data[0], cancel=cancel), None
            from .predict import _instances

            prediction, probs = predict(model_file, image_data[0], cancel=cancel, output="both")
            return model_file, prediction, _instances(probs, model_file.info)

        self.jobs.start(
            work,
            title="Train",
            on_progress=self._on_report,
            on_done=lambda result: self._done(target, *result),
        )

    def _on_report(self, report) -> None:
        self.jobs.set_progress(report.step, report.total_steps)
        if not report.end_of_epoch:
            self.plot.add("train loss", report.step, report.loss)
            return
        if report.val is not None:
            self.plot.add("val loss", report.step, report.val["loss"])
            self.plot.add("val mean Dice", report.step, report.val["mean_dice"])
            self.summary.value = (
                f"epoch {report.epoch + 1}: val Dice "
                + " ".join(f"{d:.3f}" for d in report.val["dice"])
                + ("  (best, saved)" if report.best else "")
            )

    def _done(self, image_layer, model_file, prediction, objects) -> None:
        from ..layers import instances_layer, model_prediction_layers
        from .predict import offer_model

        show_info(f"Train: saved {model_file.path}")
        last = self.summary.value  # the last epoch's scores stay visible
        self.summary.value = f"{last}\nsaved {Path(model_file.path).name}".strip()
        # the next round of the loop is one click away: Predict uses the new model, and
        # "continue from model" offers it
        offer_model(self.viewer, model_file.path)
        self.init.value = str(model_file.path)
        name = f"{image_layer.name} [{Path(model_file.path).stem}]"
        if prediction is not None:
            for t in model_prediction_layers(
                prediction,
                model_file.info,
                name=name,
                scale=image_layer.scale[-prediction.ndim :],
            ):
                self.viewer.add_layer(Layer.create(*t))
        if objects is not None:
            scale = image_layer.scale[-objects.ndim :]
            self.viewer.add_layer(Layer.create(*instances_layer(objects, name=name, scale=scale)))


def _pair_problem(images, labels) -> str | None:
    """What is wrong with the selected (image, labels) pairs, or None."""
    if not images or not labels:
        return "select at least one image layer and one labels layer"
    if len(images) != len(labels):
        return (
            f"{len(images)} image layer(s) but {len(labels)} labels layer(s) selected; "
            "they are paired in order"
        )
    for image, label in zip(images, labels, strict=False):
        spatial = image.data.shape[:-1] if image.rgb else image.data.shape
        if tuple(spatial) != tuple(label.data.shape):
            return (
                f"image '{image.name}' {tuple(image.data.shape)} and labels '{label.name}' "
                f"{tuple(label.data.shape)} differ in shape"
            )
    return None
