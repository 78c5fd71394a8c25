"""napari writer contribution for Labels layers (TIFF or zarr), over core.io.write_labels."""

from __future__ import annotations

from ..core.io import write_labels


def write_labels_layer(path: str, data, meta: dict) -> list[str]:
    """Write one Labels layer's data to `path` (``.tif``/``.tiff``/``.ome.tif``/``.zarr``).

    napari asks before replacing an existing file, so an existing path is overwritten.
    The layer's ``scale`` is stored so the file reopens with the same pixel size.
    """
    scale = meta.get("scale") if meta else None
    written = write_labels(
        path, data, scale=tuple(scale) if scale is not None else None, overwrite=True
    )
    return [str(written)]
