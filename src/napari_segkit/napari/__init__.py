"""napari adapters: the widgets, reader, writer, sample data and layer tuples.

The only folder that imports napari, magicgui or qtpy (and only in ``_widgets/``,
``_reader.py`` and the other modules napari itself loads). ``layers`` builds layer
data tuples without importing napari, so scripts get exactly what the widgets show.
Importing this package imports nothing heavy.
"""
