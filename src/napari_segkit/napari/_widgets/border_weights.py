"""Border weights widget: show what the U-Net border-weighted loss will emphasise."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox
from napari.layers import Labels, Layer
from napari.utils.notifications import show_error

from ...config import BALANCE_METHODS, LABEL_KINDS, TrainConfig
from ._jobs import JobPanel
from ._layers import layer_choices


class BorderWeightsWidget(Container):
    """Add the U-Net border weight map (Ronneberger et al. 2015) of a Labels layer.

    Instance labels are used as they are; a semantic mask ("semantic", or "auto" on a
    0/1 mask) is first split into connected components. Computed in a worker thread (the
    viewer stays responsive; Cancel drops the result): seconds for large label images.
    The map is added half transparent over the image.
    """

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821 -- napari injects it
        self.viewer = viewer
        d = TrainConfig()
        self.source = ComboBox(label="labels", choices=layer_choices(viewer, Labels))
        self.kind = ComboBox(label="labels are", choices=LABEL_KINDS, value=LABEL_KINDS[0])
        self.w0 = FloatSpinBox(label="w0 (border weight)", value=d.w0, min=0.0, max=100.0)
        self.sigma = FloatSpinBox(label="sigma (pixels)", value=d.sigma, min=0.5, max=100.0)
        self.balance = ComboBox(
            label="class balance", choices=("none", *BALANCE_METHODS), value="none"
        )
        self.jobs = JobPanel("Add weight map")
        self.run_button = self.jobs.run_button
        super().__init__(
            widgets=[self.source, self.kind, self.w0, self.sigma, self.balance, self.jobs]
        )
        self.run_button.changed.connect(self.run)

    def run(self, *_) -> None:
        """Compute the weight map in a worker; it is added as an image layer when done."""
        from ..layers import weight_map_layer

        layer = self.source.value
        if layer is None:
            show_error("Border weights: add or open a labels layer first")
            return
        labels = np.asarray(layer.data)  # a snapshot: painting may go on meanwhile
        options = {
            "w0": self.w0.value,
            "sigma": self.sigma.value,
            "class_weights": None if self.balance.value == "none" else self.balance.value,
            "kind": self.kind.value,
            "name": layer.name,
            "scale": layer.scale,
        }

        def work(progress, cancel):
            progress((0, 1), force=True)
            result = weight_map_layer(labels, **options)
            # the computation has no steps to stop at: a cancel drops its result
            if cancel.is_set():
                from ...jobs import Cancelled

                raise Cancelled("the weight map was not added")
            return result

        self.jobs.start(
            work,
            title="Border weights",
            on_progress=lambda p: self.jobs.set_progress(*p),
            on_done=lambda data: self.viewer.add_layer(Layer.create(*data)),
        )
