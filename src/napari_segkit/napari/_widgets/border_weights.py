"""Border weights widget: show what the U-Net border-weighted loss will emphasise."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, FloatSpinBox, PushButton
from napari.layers import Labels, Layer
from napari.utils.notifications import show_error

from ...config import BALANCE_METHODS, LABEL_KINDS, TrainConfig
from ._layers import layer_choices


class BorderWeightsWidget(Container):
    """Add the U-Net border weight map (Ronneberger et al. 2015) of a Labels layer.

    Instance labels are used as they are; a semantic mask ("semantic", or "auto" on a
    0/1 mask) is first split into connected components. Computed on the UI thread:
    the windowed algorithm takes about half a second for 2048 x 2048.
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
        self.run_button = PushButton(text="Add weight map")
        super().__init__(
            widgets=[self.source, self.kind, self.w0, self.sigma, self.balance, self.run_button]
        )
        self.run_button.changed.connect(self.run)

    def run(self, *_):
        """Add the weight map as an image layer; returns it (None after an error)."""
        from ..layers import weight_map_layer

        layer = self.source.value
        if layer is None:
            show_error("Border weights: add or open a labels layer first")
            return None
        try:
            data = weight_map_layer(
                layer.data,
                w0=self.w0.value,
                sigma=self.sigma.value,
                class_weights=None if self.balance.value == "none" else self.balance.value,
                kind=self.kind.value,
                name=layer.name,
                scale=layer.scale,
            )
        except (ValueError, TypeError) as err:
            show_error(f"Border weights: {err}")
            return None
        return self.viewer.add_layer(Layer.create(*data))
