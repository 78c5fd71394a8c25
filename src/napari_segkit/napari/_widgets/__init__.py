"""The dock widgets (magicgui containers over the library's functions).

They need napari, magicgui and a Qt binding, which the core install leaves out:
``pip install "napari-segkit[napari]"`` (or install the plugin from napari's plugin
manager, inside a napari that has them).
"""

try:
    import magicgui  # noqa: F401
    import napari  # noqa: F401
    import qtpy  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        f"the napari-segkit widgets need napari, magicgui and a Qt binding ({err.name} is "
        "missing): pip install 'napari-segkit[napari]'"
    ) from err
