"""Evaluate widget: prediction vs ground truth, per-class Dice / IoU and the confusion matrix."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, SpinBox, TextEdit
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QApplication, QTextEdit

from ._layers import layer_choices


class EvaluateWidget(Container):
    """Compare a prediction Labels layer with a ground-truth Labels layer.

    The report (a tab-separated table: paste it into a spreadsheet) is shown in the
    widget; "Copy" puts it on the clipboard. Lazy (dask) layers are counted block by
    block.
    """

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821 -- napari injects it
        self.viewer = viewer
        self.prediction = ComboBox(label="prediction", choices=layer_choices(viewer, Labels))
        self.truth = ComboBox(label="ground truth", choices=layer_choices(viewer, Labels))
        self.num_classes = SpinBox(label="classes (0: from the data)", value=0, min=0, max=255)
        self.run_button = PushButton(text="Evaluate")
        self.copy_button = PushButton(text="Copy table")
        self.table = TextEdit(label="report", value="")
        self.table.native.setReadOnly(True)
        self.table.native.setLineWrapMode(QTextEdit.LineWrapMode.NoWrap)  # keep table columns
        super().__init__(
            widgets=[
                self.prediction,
                self.truth,
                self.num_classes,
                self.run_button,
                self.table,
                self.copy_button,
            ]
        )
        self.run_button.changed.connect(self.run)
        self.copy_button.changed.connect(self.copy)
        self.prediction.changed.connect(self._distinct_truth)
        self._distinct_truth()

    def _distinct_truth(self, *_) -> None:
        """Keep the two pickers on different layers when there are two to choose from."""
        if self.truth.value is None or self.truth.value is not self.prediction.value:
            return
        others = [c for c in self.truth.choices if c is not self.prediction.value]
        if others:
            self.truth.value = others[0]

    def run(self, *_):
        """Fill the table; returns the report dict (None after an error)."""
        from ...core.metrics import evaluation_table, segmentation_report

        pred, truth = self.prediction.value, self.truth.value
        if pred is None or truth is None:
            show_error("Evaluate: choose a prediction and a ground-truth labels layer")
            return None
        if pred is truth:
            show_error(
                f"Evaluate: '{pred.name}' is chosen as both prediction and ground truth; "
                "pick the layer with the true labels"
            )
            return None
        if pred.data.shape != truth.data.shape:
            show_error(
                f"Evaluate: prediction '{pred.name}' {tuple(pred.data.shape)} and ground "
                f"truth '{truth.name}' {tuple(truth.data.shape)} differ in shape"
            )
            return None
        names = _class_names(pred)
        truth_data, note = truth.data, ""
        from ...core.guards import instance_like

        if not self.num_classes.value and instance_like(np.asarray(truth.data)):
            # one id per object: score the objects' union against the prediction's
            # foreground instead of 150 one-object "classes"
            truth_data, note = (
                (np.asarray(truth.data) > 0).astype(np.uint8),
                (
                    f"'{truth.name}' holds instance labels (one id per object): scored as "
                    "foreground (any object) vs background"
                ),
            )
            pred_data = (np.asarray(pred.data) > 0).astype(np.uint8)
            names = ["background", "foreground"]
        else:
            pred_data = pred.data
        k = self.num_classes.value or _count_classes(pred_data, truth_data, names)
        if names is not None and len(names) != k:
            names = None
        try:
            report = segmentation_report(truth_data, pred_data, k, class_names=names)
        except ValueError as err:
            show_error(f"Evaluate: {err}")
            return None
        self.table.value = (f"{note}\n\n" if note else "") + evaluation_table(report)
        if note:
            show_info(f"Evaluate: {note}")
        return report

    def copy(self, *_) -> None:
        QApplication.clipboard().setText(self.table.value)


def _class_names(layer):
    """Class names from a layer's features (as the predict widget writes them), else None."""
    features = getattr(layer, "features", None)
    if features is not None and "class" in getattr(features, "columns", ()):
        return [str(c) for c in features["class"]]
    return None


def _count_classes(pred, truth, names) -> int:
    """Classes to score: the highest label in either layer + 1 (at least the named ones, 2)."""
    top = max(int(pred.max()), int(truth.max()))  # dask arrays reduce block by block
    return max(top + 1, len(names or ()), 2)
