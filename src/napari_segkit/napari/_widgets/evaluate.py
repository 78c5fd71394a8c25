"""Evaluate widget: prediction vs ground truth, per-class Dice / IoU and the confusion matrix."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox, Table
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QApplication

from ._layers import layer_choices


class EvaluateWidget(Container):
    """Compare a prediction Labels layer with a ground-truth Labels layer.

    The scores are a sortable table (class, Dice, IoU), the confusion matrix a small
    heat map (rows: truth, columns: prediction; darker = more pixels); "Copy table" puts
    the whole report on the clipboard as tab-separated text (pastes into a
    spreadsheet). Lazy (dask) layers are counted block by block.
    """

    def __init__(self, viewer: napari.viewer.Viewer):  # noqa: F821 -- napari injects it
        self.viewer = viewer
        self.prediction = ComboBox(label="prediction", choices=layer_choices(viewer, Labels))
        self.truth = ComboBox(label="ground truth", choices=layer_choices(viewer, Labels))
        self.num_classes = SpinBox(label="classes (0: from the data)", value=0, min=0, max=255)
        self.run_button = PushButton(text="Evaluate")
        self.copy_button = PushButton(text="Copy table")
        self.note = Label(value="")
        self.scores = Table(label="scores")
        self.scores.native.setSortingEnabled(True)
        self.confusion = Table(label="confusion (truth \\ prediction)")
        for table in (self.scores, self.confusion):
            table.read_only = True
            table.visible = False
        #: the report as tab-separated text (what "Copy table" copies)
        self.report_text = ""
        super().__init__(
            widgets=[
                self.prediction,
                self.truth,
                self.num_classes,
                self.run_button,
                self.note,
                self.scores,
                self.confusion,
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
        self.report_text = (f"{note}\n\n" if note else "") + evaluation_table(report)
        self.note.value = note
        self._show(report)
        if note:
            show_info(f"Evaluate: {note}")
        return report

    def _show(self, report: dict) -> None:
        """Fill the scores table and the confusion heat map."""
        self.scores.native.setSortingEnabled(False)  # filling a sorted table scrambles rows
        rows = [
            [name, round(d, 4), round(i, 4)]
            for name, d, i in zip(report["classes"], report["dice"], report["iou"], strict=False)
        ]
        rows.append(["mean", round(report["mean_dice"], 4), round(report["mean_iou"], 4)])
        self.scores.value = {
            "data": rows,
            "index": [str(i) for i in range(len(rows))],
            "columns": ["class", "Dice", "IoU"],
        }
        self.scores.native.setSortingEnabled(True)
        matrix = np.asarray(report["confusion_matrix"], dtype=np.int64)
        names = [str(n) for n in report["classes"]]
        self.confusion.value = {"data": matrix.tolist(), "index": names, "columns": names}
        top = max(int(matrix.max(initial=0)), 1)
        for r in range(matrix.shape[0]):
            for c in range(matrix.shape[1]):
                item = self.confusion.native.item(r, c)
                shade = int(255 - 180 * matrix[r, c] / top)  # white .. blue
                item.setBackground(QColor(shade, shade, 255))
                item.setForeground(QColor("black"))
        for table in (self.scores, self.confusion):
            table.visible = True
            table.native.resizeColumnsToContents()

    def copy(self, *_) -> None:
        QApplication.clipboard().setText(self.report_text)


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
