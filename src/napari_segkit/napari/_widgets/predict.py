"""Predict widget: a form over :func:`napari_segkit.predict`, run off the UI thread."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    SpinBox,
)
from napari.layers import Image, Layer
from napari.utils.notifications import show_error, show_info, show_warning

from ...config import BLEND_MODES, DEVICE_CHOICES, TTA_MODES, PredictDefaults
from ._jobs import JobPanel
from ._layers import layer_choices

REGIONS = ("whole image", "current slice", "current view")

#: the "object size" choices: how predict_objects' object_diameter is set
OBJECT_SIZES = (
    ("as the model was trained (no rescaling)", None),
    ("estimate; rescale if outside the trained sizes", "auto"),
    ("diameter below (pixels)", "given"),
)

OUTPUTS = {
    "labels": "labels",
    "labels + probabilities": "both",
    "labels + one layer per class": "labels",
}


#: the Predict widgets open, per viewer: a model just trained is selected in them
_OPEN: weakref.WeakSet = weakref.WeakSet()
#: model files used or trained in this session, newest first (the picker lists them)
_RECENT: list = []


def remember_model(path) -> None:
    """Put `path` first in the session's recently used models (at most 8)."""
    path = str(path)
    if path in _RECENT:
        _RECENT.remove(path)
    _RECENT.insert(0, path)
    del _RECENT[8:]
    for widget in list(_OPEN):
        try:
            widget.picker.reset_choices()
        except RuntimeError:  # its viewer was closed: the Qt widget is gone
            _OPEN.discard(widget)


def _known_models(*_) -> list:
    """Picker entries: the bundled models, then the recently used ones."""
    from ...samples import DEFAULT_MODEL, SYNTHETIC_MODEL

    entries = [
        ("bundled: nuclei, any image kind (DSB2018)", str(DEFAULT_MODEL)),
        ("bundled: nuclei, synthetic (2 classes)", str(SYNTHETIC_MODEL)),
    ]
    entries += [(f"recent: {Path(p).name}", p) for p in _RECENT if Path(p).exists()]
    seen, unique = set(), []
    for label, path in entries:
        if path not in seen and Path(path).exists():
            seen.add(path)
            unique.append((label, path))
    return unique


def describe_model(info) -> str:
    """A few lines about a model file: classes, channels, colour mode, tile, pixel size,
    how its instances are made (with the post-processing tuned for it), training data."""
    names = ", ".join(info.class_names) if info.class_names else f"{info.num_classes}"
    channels = f"{info.in_channels} channel{'s' if info.in_channels > 1 else ''}"
    if info.color != "as-is":
        channels += f" ({info.color}: gray and colour images)"
    trained = info.training.get("dataset") or info.training.get("target", "")
    pixel = info.training.get("pixel_size")
    lines = [
        f"{info.arch}, classes: {names}",
        f"{channels}, tile {info.tile_size[0]}",
        f"pixel size: {pixel if pixel else 'not recorded'}",
    ]
    objects = info.instance_options()
    tuned = [
        f"{name} {objects[key]:g}"
        for key, name in (
            ("threshold", "threshold"),
            ("seed_threshold", "seeds"),
            ("min_size", "min px"),
        )
        if key in objects
    ]
    how = "watershed" if objects["watershed"] else "connected components"
    lines.append(f"instances: {how}" + (f" ({', '.join(tuned)}: tuned)" if tuned else ""))
    if trained:
        lines.append(f"trained on: {trained}")
    return "\n".join(lines)


def offer_model(viewer, path) -> None:
    """Select the model file `path` in every Predict widget of `viewer` (after training)."""
    remember_model(path)
    for widget in list(_OPEN):
        if _unwrapped(widget.viewer) is _unwrapped(viewer):
            try:
                widget.model.value = str(path)
            except RuntimeError:  # closed meanwhile
                _OPEN.discard(widget)


def _unwrapped(viewer):
    """The viewer behind napari's PublicOnlyProxy (each widget gets its own proxy)."""
    return getattr(viewer, "__wrapped__", viewer)


class PredictWidget(Container):
    """Segment an image layer with a model file, tile by tile.

    The bundled default model is preselected. With a zarr output path the result is
    written block by block (bounded memory; an interrupted run resumes) and added as
    a lazy layer -- the way to go for volumes larger than memory. "Instances" adds a
    labels layer with one id per object: touching objects are split by a watershed for
    a boundary model (ticked by default for one), connected components otherwise.
    """

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821 -- napari injects it
        from ...samples import DEFAULT_MODEL

        self.viewer = viewer
        d = PredictDefaults()
        self.image = ComboBox(label="image", choices=layer_choices(viewer, Image))
        self.model = FileEdit(
            label="model",
            mode="r",
            filter="*.safetensors *.zip *.onnx *.pt *.yaml",
            value=str(DEFAULT_MODEL) if DEFAULT_MODEL.exists() else "",
        )
        self.tile_size = SpinBox(label="tile size (0: model's)", value=0, min=0, max=8192, step=32)
        self.overlap = FloatSpinBox(label="overlap", value=d.overlap, min=0.0, max=0.9, step=0.05)
        self.blend = ComboBox(label="blending", choices=BLEND_MODES, value=d.blend)
        self.tta = ComboBox(
            label="test-time augmentation",
            choices=[(mode or "none", mode) for mode in TTA_MODES],
            value=d.tta,
        )
        self.device = ComboBox(label="device", choices=DEVICE_CHOICES, value=d.device)
        self.picker = ComboBox(label="known models", choices=_known_models)
        self.picker.tooltip = "the bundled models and those used or trained in this session"
        self.model_info = Label(value="")
        self.region = ComboBox(label="region", choices=REGIONS, value=REGIONS[0])
        self.region.tooltip = (
            "whole image; the plane shown (a stack's current slice); or only what the "
            "canvas shows (current view: seconds for quick feedback before a long run)"
        )
        self.outputs = ComboBox(label="add", choices=tuple(OUTPUTS), value="labels")
        self.instances = CheckBox(label="instances (split touching objects)", value=False)
        self.instances.tooltip = (
            "also add a labels layer with one id per object: a watershed from the interior "
            "class for models trained with target 'boundary', connected components otherwise"
        )
        self.object_size = ComboBox(label="object size", choices=OBJECT_SIZES, value=None)
        self.object_size.tooltip = (
            "for images at another pixel size than the training images: the objects' "
            "diameter is estimated from a first prediction (or given), and an image whose "
            "objects are smaller or larger than those the model was trained on is rescaled "
            "to them, predicted, and the result resized back (needs a model file that "
            "records its training object sizes, as models trained on instances do)"
        )
        self.diameter = FloatSpinBox(
            label="object diameter (px)", value=20.0, min=1.0, max=2000.0, step=1.0, visible=False
        )
        self.to_zarr = CheckBox(label="write to zarr (large volumes)", value=False)
        self.zarr_path = FileEdit(
            label="zarr output (.ome.zarr: multiscale)",
            mode="w",
            filter="*.zarr",
            visible=False,
            value=str(Path.home() / "segkit-result.ome.zarr"),
        )
        self.zarr_path.tooltip = (
            "OME-Zarr 0.5 (ends in .ome.zarr): image, labels and probabilities as multiscale "
            "pyramids that napari, Fiji/MoBIE and neuroglancer draw fast at every zoom; a plain "
            ".zarr holds full-resolution arrays only"
        )
        self.overwrite = CheckBox(label="overwrite existing output", value=False, visible=False)
        self.jobs = JobPanel("Predict")
        super().__init__(
            widgets=[
                self.image,
                self.picker,
                self.model,
                self.model_info,
                self.region,
                self.tile_size,
                self.overlap,
                self.blend,
                self.tta,
                self.device,
                self.outputs,
                self.instances,
                self.object_size,
                self.diameter,
                self.to_zarr,
                self.zarr_path,
                self.overwrite,
                self.jobs,
            ]
        )
        self._size_choice = "auto"  # the object size to give back when zarr is unticked
        self.to_zarr.changed.connect(self._toggle_zarr)
        self.object_size.changed.connect(
            lambda how: setattr(self.diameter, "visible", how == "given")
        )
        self.model.changed.connect(self._model_chosen)
        self.picker.changed.connect(
            lambda path: setattr(self.model, "value", path) if path else None
        )
        self.jobs.run_button.changed.connect(self.run)
        self._model_chosen(self.model.value)
        _OPEN.add(self)

    def _model_chosen(self, path) -> None:
        """Tick "instances" for a boundary model (the point of training one)."""
        from ...models import read_model_info

        try:
            info = read_model_info(path)
        except (OSError, ValueError):
            self.model_info.value = ""
            return  # reported when Run is pressed
        self.instances.value = info.splits_touching
        self.model_info.value = describe_model(info)
        self._offer_object_size(info)

    def _offer_object_size(self, info, choice: str = "auto") -> None:
        """Rescaling by object size needs the sizes the model was trained on, and works in
        memory. Offered, it starts at `choice`: "auto" for a newly chosen model, since a
        layer's pixel size in the model's terms is unknown and "auto" leaves images whose
        objects are in the trained range alone (README: -0.001 mean AP at DSB2018's own
        scale, +0.05 at half of it)."""
        sizes = info.trained_diameters() if info.spatial_dims == 2 else None
        offered = sizes is not None and not self.to_zarr.value
        self.object_size.enabled = offered
        self.object_size.value = choice if offered else None
        if sizes is not None and choice == "auto":
            self.diameter.value = round(sum(sizes) / 2)

    def _toggle_zarr(self, on: bool) -> None:
        from ...models import read_model_info

        self.zarr_path.visible = self.overwrite.visible = bool(on)
        if on:  # the user's choice, given back (with its diameter) when unticked
            self._size_choice = self.object_size.value if self.object_size.enabled else "auto"
        try:
            self._offer_object_size(read_model_info(self.model.value), self._size_choice)
        except (OSError, ValueError):
            self.object_size.enabled, self.object_size.value = False, None

    def run(self, *_) -> None:
        """Check the form, then predict in a worker thread (errors become notifications)."""
        from ...models import read_model_info

        layer = self.image.value
        if layer is None:
            show_error("Predict: add or open an image layer first")
            return
        model_path = self.model.value
        try:
            info = read_model_info(model_path)  # metadata only: a quick check on the UI thread
        except (OSError, ValueError) as err:
            show_error(f"Predict: cannot use the model: {err}")
            return
        out = None
        if self.to_zarr.value:
            out = str(self.zarr_path.value)
            if not out.rstrip("/").endswith(".zarr"):
                show_error(f"Predict: the zarr output must end in .zarr, got '{out}'")
                return
        settings = self.settings()
        data = layer.data[0] if layer.multiscale else layer.data
        data, offset = self._region(layer, data)
        if out is not None and any(offset):
            show_error("Predict: a zarr output is for the whole image; choose 'whole image'")
            return
        per_class = self.outputs.value == "labels + one layer per class"
        if layer.rgb and info.in_channels == 1 and info.color == "as-is":
            # a one-channel model on a colour layer: its luminance, said once
            settings["color"] = "gray"
            show_info(
                f"Predict: '{layer.name}' is RGB and the model takes one channel: "
                "predicting on its luminance"
            )
        want_instances = self.instances.value
        object_diameter = self.object_diameter()
        show_probabilities = settings["output"] == "both"
        if want_instances or object_diameter is not None:
            settings["output"] = "both"  # instances are made from the probabilities
        if object_diameter is not None and out is not None:
            show_error(
                "Predict: rescaling by object size works in memory; untick 'write to zarr' "
                "or choose object size 'as the model was trained'"
            )
            return
        if out is None and (problem := _too_big_for_memory(data, info, settings, layer.rgb)):
            show_error(f"Predict: {problem}")
            return
        summary = []  # what predict_objects found, said when done

        def work(progress, cancel):
            # all torch work (building the model too) stays on the worker thread: torch keeps
            # one OpenMP thread team per calling thread, and a second team on the UI thread
            # competes with the worker's for the cores (measured: ~1.3x slower predictions)
            from ...models import load_model
            from ...tiling import predict, predict_objects

            # per batch of tiles, not per block: a 2D image up to 4096^2 is one block
            tiles = {
                "tile_progress": lambda d, t: progress((d, t), force=d in (0, t)),
                "cancel": cancel,
            }
            if out is None and (want_instances or object_diameter is not None):
                options = {k: v for k, v in settings.items() if k != "output"}
                found = predict_objects(
                    load_model(model_path), data, object_diameter=object_diameter,
                    **tiles, **options,
                )  # fmt: skip
                if object_diameter is not None or found.renormalized:
                    summary.append(found.describe())
                result = (
                    (found.labels, found.probabilities) if show_probabilities else found.labels
                )
                return result, found.instances if want_instances else None
            result = predict(load_model(model_path), data, out=out, **tiles, **settings)
            objects = _instances(result[1], info) if want_instances else None
            if want_instances and not show_probabilities:
                result = result[0]
            return result, objects

        name = f"{layer.name} [{Path(model_path).stem}]"  # which model made the layers
        remember_model(model_path)

        def done(result):
            self._add_result(layer, name, info, *result, per_class, offset=offset)
            if summary:
                show_info(f"Predict ({name}): {summary[0]}")

        self.jobs.start(
            work,
            title="Predict",
            on_progress=lambda p: self.jobs.set_progress(*p, unit="tiles"),
            on_done=done,
        )

    def object_diameter(self) -> float | str | None:
        """The form's object size as ``predict_objects``' `object_diameter`."""
        how = self.object_size.value
        return float(self.diameter.value) if how == "given" else how

    def settings(self) -> dict:
        """The form's values as :func:`~napari_segkit.predict` keyword arguments."""
        return {
            "tile_size": self.tile_size.value or None,
            "overlap": self.overlap.value,
            "blend": self.blend.value,
            "tta": self.tta.value,
            "device": self.device.value,
            "output": OUTPUTS[self.outputs.value],
            "overwrite": self.overwrite.value,
        }

    def _region(self, layer, data):
        """The part of `data` to predict, and its offset in pixels per spatial axis."""
        spatial = data.ndim - (1 if layer.rgb else 0)
        offset = [0] * spatial
        if self.region.value == "whole image":
            return data, offset
        index = [slice(None)] * data.ndim
        if spatial == 3:  # a stack: the plane the viewer shows
            point = layer.world_to_data(self.viewer.dims.point)
            z = int(
                np.clip(round(float(point[-3 if not layer.rgb else -4])), 0, data.shape[0] - 1)
            )
            index[0], offset[0] = slice(z, z + 1), z
        if self.region.value == "current view" and not layer.multiscale:
            corners = np.asarray(layer.corner_pixels)  # visible data extent, per axis
            for axis in (-2, -1):
                a = axis - (1 if layer.rgb else 0)
                lo = int(np.clip(corners[0][axis], 0, data.shape[a] - 1))
                hi = int(np.clip(corners[1][axis] + 1, lo + 1, data.shape[a]))
                index[a], offset[axis] = slice(lo, hi), lo
        return data[tuple(index)], offset

    def _add_result(
        self, layer, name, info, result, objects, per_class: bool, offset=None
    ) -> None:
        from ..layers import instances_layer, model_prediction_layers

        labels, probs = result if isinstance(result, tuple) else (result, None)
        labels, probs = _lazy_if_zarr(labels), _lazy_if_zarr(probs)
        if self.to_zarr.value and str(self.zarr_path.value).endswith(".ome.zarr"):
            labels = _multiscale_labels(self.zarr_path.value) or labels
            per_class = False  # one Labels layer per class of a pyramid: not offered
        for t in model_prediction_layers(
            labels,
            info,
            probs,
            name=name,
            scale=layer.scale[-_ndim(labels) :],
            per_class=per_class,
        ):
            _place(t, layer, offset)
            self.viewer.add_layer(Layer.create(*t))
        fractions = info.training.get("class_fractions")
        if fractions and isinstance(labels, np.ndarray):
            from ...core.guards import unusual_prediction

            if problem := unusual_prediction(labels, fractions, list(info.class_names)):
                show_warning(f"Predict ({name}): {problem}")
        if objects is not None:
            scale = layer.scale[-objects.ndim :]
            t = instances_layer(objects, name=name, scale=scale)
            _place(t, layer, offset)
            self.viewer.add_layer(Layer.create(*t))


def _place(layer_tuple, source, offset) -> None:
    """Put a result of a region where the region lies in the source layer."""
    if offset and any(offset):
        n = len(offset)
        scale = np.asarray(source.scale[-n:], float)
        base = np.asarray(source.translate[-n:], float)
        layer_tuple[1]["translate"] = tuple(base + scale * np.asarray(offset, float))


def _instances(probabilities, info):
    """One id per object, as the model file says (watershed for a boundary model, its
    tuned post-processing when recorded; connected components otherwise)."""
    from ...core.instances import instances_from_prediction

    return instances_from_prediction(probabilities, **info.instance_options())


def _multiscale_labels(path) -> list | None:
    """The label pyramid of an OME-Zarr output (all levels, lazily), for a multiscale layer."""
    from ...core.io import read_multiscale

    labels = read_multiscale(path)["labels"].get("segmentation")
    return labels["levels"] if labels and len(labels["levels"]) > 1 else None


def _ndim(data) -> int:
    return (data[0] if isinstance(data, list) else data).ndim


def _lazy_if_zarr(array):
    """zarr arrays (from a zarr output) become dask arrays: the layer stays lazy."""
    if array is None or type(array).__module__.split(".")[0] != "zarr":
        return array
    import dask.array as da

    return da.from_zarr(array)


def _too_big_for_memory(data, info, settings, rgb: bool) -> str | None:
    """Why an in-memory result would not fit (then a zarr output is the way), or None."""
    import numpy as np
    import psutil

    spatial = int(np.prod(data.shape[:-1] if rgb or data.ndim == 4 else data.shape))
    per_pixel = 1 + (4 * max(info.num_classes, 1) if settings["output"] == "both" else 0)
    need, free = spatial * per_pixel, psutil.virtual_memory().available
    if need <= free // 2:
        return None
    return (
        f"the result would need {need / 2**30:.1f} GiB in memory ({free / 2**30:.1f} GiB "
        "available); tick 'write to zarr' to write it block by block instead"
    )
