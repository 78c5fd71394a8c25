"""Layer pickers that follow the viewer's layer list.

napari re-runs ``reset_choices`` of a docked widget whenever layers are inserted,
removed, reordered or renamed, so a callable ``choices`` is all a picker needs.
"""

from __future__ import annotations


def layer_choices(viewer, *layer_types):
    """A magicgui ``choices`` callable: the viewer's layers of these types, by name."""

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, layer_types)]

    return choices
