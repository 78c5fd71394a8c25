"""Layer pickers that follow the viewer's layer list."""

from __future__ import annotations


def layer_choices(viewer, *layer_types):
    """A magicgui ``choices`` callable: the viewer's layers of these types, by name."""

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, layer_types)]

    return choices


def watch_layers(viewer, container) -> None:
    """Refresh `container`'s pickers when layers are added, removed or reordered."""
    def refresh(*_):
        try:
            container.reset_choices()
        except RuntimeError:  # the widget was closed and its Qt objects deleted
            pass

    viewer.layers.events.inserted.connect(refresh)
    viewer.layers.events.removed.connect(refresh)
    viewer.layers.events.reordered.connect(refresh)
    container.reset_choices()
