"""Every dock in a scroll area, so a form never pushes its buttons below a laptop screen.

napari docks a magicgui widget by its ``native`` QWidget, which for
``Container(scrollable=True)`` is the form inside the scroll area, not the scroll area
(magicgui issue 431; napari does not use ``root_native_widget``). So the manifest's
widget commands return a :class:`ScrollableDock`: a QScrollArea holding the form,
passing napari's ``reset_choices`` calls (layer pickers follow the layer list) and
attribute access (``dock.run()``, ``dock.model.value``) through to the form.
"""

from __future__ import annotations

import napari.viewer  # the docks' annotations name it: napari injects the viewer by type
from magicgui.widgets import Container
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea

#: the tallest a dock asks to be before it scrolls: 1366 x 768 screens leave about 650 px
#: below napari's menus and title bars, shared with the layer controls
MAX_DOCK_HEIGHT = 560


class ScrollableDock(QScrollArea):
    """A form (magicgui Container) in a vertical scroll area.

    Parameters
    ----------
    form : magicgui.widgets.Container
        The widget's form; reachable as ``dock.form`` and through attribute access.
    """

    def __init__(self, form: Container):
        from ._hints import apply_hints

        super().__init__()
        self.form = form
        apply_hints(form)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(form.native)
        self.setMinimumWidth(form.native.minimumSizeHint().width() + 24)
        self.setObjectName(type(form).__name__)

    def sizeHint(self):  # noqa: N802 -- Qt's name
        hint = self.widget().sizeHint()
        hint.setWidth(hint.width() + 24)  # room for the scroll bar
        hint.setHeight(min(hint.height(), MAX_DOCK_HEIGHT))
        return hint

    def reset_choices(self, *args) -> None:
        """napari calls this when layers change: refresh the form's layer pickers."""
        self.form.reset_choices(*args)

    def __getattr__(self, name: str):
        # only reached for names QScrollArea lacks: the form's fields and methods
        form = self.__dict__.get("form")
        if form is None:
            raise AttributeError(name)
        return getattr(form, name)


# napari instantiates a dock class with the viewer when its __init__ asks for one by
# annotation (a plain factory function is not given the viewer), hence one class per form


def _dock_class(module: str, form: str) -> type:
    """A ScrollableDock subclass whose __init__ builds `form` from `module` for a viewer."""

    def __init__(self, viewer: napari.viewer.Viewer):
        import importlib

        form_class = getattr(importlib.import_module(f"{__package__}.{module}"), form)
        ScrollableDock.__init__(self, form_class(viewer))

    name = form.removesuffix("Widget") + "Dock"
    doc = f"The {form} in a scrollable dock."
    return type(name, (ScrollableDock,), {"__init__": __init__, "__doc__": doc})


LoadDock = _dock_class("load", "LoadWidget")
PredictDock = _dock_class("predict", "PredictWidget")
TrainDock = _dock_class("train", "TrainWidget")
BorderWeightsDock = _dock_class("border_weights", "BorderWeightsWidget")
EvaluateDock = _dock_class("evaluate", "EvaluateWidget")
ExportDock = _dock_class("export", "ExportWidget")
ExportModelDock = _dock_class("export_model", "ExportModelWidget")
