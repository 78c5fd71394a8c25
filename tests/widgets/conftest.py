"""Qt tests: napari's make_napari_viewer fixture (needs a display: xvfb-run in CI)."""
