"""Load widget: open TIFF / OME-TIFF / zarr (pick the array) / slice folders as lazy layers."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, PushButton
from napari.layers import Layer
from napari.utils.notifications import show_error


class LoadWidget(Container):
    """Open a stack through napari-segkit's reader, lazily when large.

    zarr stores and slice folders open as dask arrays at once, whatever their size;
    contrast limits come from one plane, so nothing scans the whole volume.
    """

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821 -- napari injects it
        self.viewer = viewer
        self.folder = CheckBox(label="folder (zarr store, slices, DICOM series)", value=False)
        self.path = FileEdit(label="path", mode="r")
        self.array = ComboBox(label="zarr array", choices=(), visible=False)
        self.run_button = PushButton(text="Load")
        super().__init__(widgets=[self.folder, self.path, self.array, self.run_button])
        self.folder.changed.connect(lambda on: setattr(self.path, "mode", "d" if on else "r"))
        self.path.changed.connect(self._list_arrays)
        self.run_button.changed.connect(self.run)

    def _list_arrays(self, *_) -> None:
        from ...core.io import zarr_arrays

        names = zarr_arrays(self.path.value)
        self.array.choices = names
        self.array.visible = len(names) > 1

    def run(self, *_):
        """Add the stack as a layer; returns the layer (None after an error)."""
        from ...core.io import read_stack
        from ..layers import stack_layer

        path = self.path.value
        array = self.array.value if len(self.array.choices) > 1 else None
        try:
            stack = read_stack(path, array=array)
        except (OSError, ValueError) as err:
            show_error(f"Load: {err}")
            return None
        data, kwargs, layer_type = stack_layer(stack)
        if isinstance(kwargs.get("name"), list):  # one layer per channel
            return self.viewer.add_image(data, **kwargs)
        if array:
            kwargs["name"] = f"{kwargs['name']} [{array}]"
        return self.viewer.add_layer(Layer.create(data, kwargs, layer_type))
