"""Export widget: a Labels layer to TIFF, zarr or a Kaggle RLE CSV (atomic, no silent overwrite)."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, PushButton
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info

from ._layers import layer_choices

#: format name -> file suffix
FORMATS = {"TIFF": ".tif", "zarr": ".zarr", "Kaggle RLE CSV": ".csv"}


class ExportWidget(Container):
    """Save a Labels layer (with its scale) to TIFF or zarr, or as a submission CSV.

    The CSV holds one row per plane (id = the layer name, plus ``_<z>`` for stacks)
    and per foreground class with "one row per class", in Kaggle's column-major RLE.

    Files are written under a temporary name and renamed when complete; an existing
    file is only replaced with "overwrite" (and then kept as a backup until the new
    one is complete).
    """

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821 -- napari injects it
        self.viewer = viewer
        self.source = ComboBox(label="labels", choices=layer_choices(viewer, Labels))
        self.format = ComboBox(label="format", choices=tuple(FORMATS), value="TIFF")
        self.path = FileEdit(label="save to", mode="w")
        self.overwrite = CheckBox(label="overwrite", value=False)
        self.per_class = CheckBox(label="CSV: one row per class", value=False)
        self.run_button = PushButton(text="Export")
        super().__init__(
            widgets=[
                self.source,
                self.format,
                self.path,
                self.per_class,
                self.overwrite,
                self.run_button,
            ]
        )
        self.run_button.changed.connect(self.run)

    def target(self):
        """The output path, with the format's suffix added when missing."""
        path, suffix = self.path.value, FORMATS[self.format.value]
        name = str(path)
        if not name.lower().endswith((suffix, ".tiff", ".ome.tif")):
            path = path.with_name(path.name + suffix)
        return path

    def run(self, *_):
        """Write the file; returns its path (None after an error)."""
        from ...core.io import write_labels

        layer = self.source.value
        if layer is None:
            show_error("Export: choose a labels layer")
            return None
        if not self.path.value or str(self.path.value) in ("", "."):
            show_error("Export: choose where to save")
            return None
        path = self.target()
        try:
            if self.format.value == "Kaggle RLE CSV":
                _write_rle_csv(
                    path, layer, per_class=self.per_class.value, overwrite=self.overwrite.value
                )
            else:
                write_labels(
                    path, layer.data, scale=tuple(layer.scale), overwrite=self.overwrite.value
                )
        except (OSError, ValueError) as err:
            show_error(f"Export: {err}")
            return None
        show_info(f"Export: wrote {path}")
        return path


def _write_rle_csv(path, layer, *, per_class: bool, overwrite: bool) -> None:
    import numpy as np

    from ...kaggle import submission_rows, write_csv

    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' already exists; tick overwrite to replace it")
    data = np.asarray(layer.data)
    planes = (
        [(layer.name, data)]
        if data.ndim == 2
        else [(f"{layer.name}_{z}", plane) for z, plane in enumerate(data)]
    )
    rows = [["ImageId", "EncodedPixels"]]
    for image_id, plane in planes:
        rows += submission_rows(
            plane,
            image_id,
            layout="class" if per_class else "image",
            id_rule="{id}_{class_id}" if per_class else "{id}",
        )
    # what the CSV cannot say (image sizes, which row is which plane and class), beside
    # it, so File > Open rebuilds the labels without the images
    from ...kaggle.submission import write_csv_sidecar

    write_csv_sidecar(
        path,
        {image_id: plane.shape for image_id, plane in planes},
        layout="class" if per_class else "image",
        layer=layer.name,
        stack=data.ndim == 3,
    )
    write_csv(path, rows)
