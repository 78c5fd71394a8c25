"""Export-model widget: a model file as a bioimage.io package, ONNX or TorchScript."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit
from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from ._jobs import JobPanel
from ._layers import layer_choices

FORMATS = {"bioimage.io package (.zip)": "bioimageio", "ONNX (.onnx)": "onnx"}
FORMATS["TorchScript (.pt)"] = "torchscript"
SUFFIXES = {"bioimageio": ".zip", "onnx": ".onnx", "torchscript": ".pt"}
SYNTHETIC = "synthetic nuclei"


class ExportModelWidget(Container):
    """Export a napari-segkit model for Fiji (deepImageJ), ilastik, QuPath, BiaPy or ONNX
    tools -- a thin shell over :func:`napari_segkit.models.export_model`.

    The export runs in a worker (converting and checking every weight format takes
    seconds to a minute); the test tensors and cover of a bioimage.io package come from
    the chosen image layer (the middle plane of a stack) or a synthetic nuclei image.
    """

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821 -- napari injects it
        self.viewer = viewer
        self.model = FileEdit(label="model", mode="r", filter="*.safetensors")
        self.format = ComboBox(label="format", choices=list(FORMATS), value=list(FORMATS)[0])
        self.out = FileEdit(label="save as", mode="w")
        self.authors = LineEdit(label="authors", value="")
        self.license = LineEdit(label="licence", value="CC-BY-4.0")
        self.test_image = ComboBox(label="test image", choices=self._image_choices)
        self.jobs = JobPanel("Export model")
        self.run_button = self.jobs.run_button
        super().__init__(
            widgets=[
                self.model,
                self.format,
                self.out,
                self.authors,
                self.license,
                self.test_image,
                self.jobs,
            ]
        )
        self.run_button.changed.connect(self.run)
        self.format.changed.connect(self._suffix)
        self.model.changed.connect(self._suffix)

    def _image_choices(self, _widget=None):
        return [(SYNTHETIC, None), *layer_choices(self.viewer, Image)()]

    def _suffix(self, *_) -> None:
        """Propose OUT next to the model, with the chosen format's suffix."""
        model = Path(str(self.model.value))
        if model.name and model.suffix == ".safetensors":
            self.out.value = model.with_suffix(SUFFIXES[FORMATS[self.format.value]])

    def run(self, *_) -> None:
        """Export in a worker; a message names the written file."""
        from ...exchange import export_model

        model, out = Path(str(self.model.value)), Path(str(self.out.value))
        if not model.is_file():
            show_error(f"Export model: no model file at '{model}'")
            return
        fmt = FORMATS[self.format.value]
        options = {}
        if fmt == "bioimageio":
            names = [a.strip() for a in self.authors.value.split(",") if a.strip()]
            if names:
                options["authors"] = names
            options["license"] = self.license.value.strip() or "CC-BY-4.0"
            layer = self.test_image.value
            if layer is not None:
                data = np.asarray(layer.data)
                plane = data.ndim > (3 if layer.rgb else 2)
                options["test_image"] = data[data.shape[0] // 2] if plane else data

        def work(progress, cancel):
            progress((0, 1), force=True)
            return export_model(model, out, format=fmt, **options)

        self.jobs.start(
            work,
            title="Export model",
            on_progress=lambda p: self.jobs.set_progress(*p),
            on_done=lambda path: show_info(f"Exported {model.name} to {path}"),
        )
