"""OME-Zarr (NGFF) outputs: multiscale groups and label metadata, written with ome-zarr-py.

The metadata (``multiscales``, ``image-label``, the ``labels`` list) is written by
ome-zarr-py -- the OME team's reference implementation, the library napari-ome-zarr
reads with, and one that writes 0.5 (zarr v3) and 0.4 (zarr v2) alike -- never as
hand-written JSON. The arrays themselves are created here (empty, with their chunks
and optional shards) and filled block by block by the tile engine.
"""

from __future__ import annotations

OME_VERSIONS = ("0.5", "0.4")


def ome_format(version: str):
    """The ome-zarr-py format object of an OME-Zarr version.

    Parameters
    ----------
    version : {"0.5", "0.4"}

    Returns
    -------
    ome_zarr.format.Format
    """
    from ome_zarr.format import FormatV04, FormatV05

    if version not in OME_VERSIONS:
        raise ValueError(f"OME-Zarr version must be one of {OME_VERSIONS}, got {version!r}")
    return FormatV05() if version == "0.5" else FormatV04()


def zarr_format(version: str) -> int:
    """zarr format of an OME-Zarr version: 3 for 0.5, 2 for 0.4.

    Parameters
    ----------
    version : {"0.5", "0.4"}

    Returns
    -------
    int
    """
    return 3 if version == "0.5" else 2


def create_multiscale(
    group,
    shapes: list[tuple[int, ...]],
    chunks: list[tuple[int, ...]],
    dtype,
    *,
    axes: str,
    scale: tuple[float, ...],
    unit: str | None,
    version: str,
    shards: list[tuple[int, ...]] | None = None,
    name: str | None = None,
) -> None:
    """Create the empty arrays ``0``, ``1``, ... of a multiscale image and write its metadata.

    Parameters
    ----------
    group : zarr.Group
        The image group (created by the caller with the version's zarr format).
    shapes, chunks : list of tuple of int
        Per level, in `axes` order.
    dtype : numpy dtype
    axes : str
        Letters from ``"czyx"`` in array order (``"c"`` first).
    scale : tuple of float
        Level-0 pixel size per spatial axis (``z``, ``y``, ``x`` present in `axes`).
    unit : str, optional
        OME unit name of the spatial axes, e.g. ``"micrometer"``.
    version : {"0.5", "0.4"}
    shards : list of tuple of int, optional
        zarr v3 shard shape per level (0.5 only): fewer, larger files.
    name : str, optional
        The multiscale's name.

    Returns
    -------
    None
    """
    from ome_zarr.writer import write_multiscales_metadata

    fmt = ome_format(version)
    spatial = [a for a in axes if a != "c"]
    datasets = []
    for level, (shape, chunk) in enumerate(zip(shapes, chunks, strict=True)):
        options = {"shape": shape, "chunks": chunk, "dtype": dtype, "fill_value": 0}
        if shards is not None:  # a whole number of chunks, no larger than needed
            options["shards"] = tuple(
                -(-min(sh, n) // c) * c
                for sh, n, c in zip(shards[level], shape, chunk, strict=True)
            )
        if zarr_format(version) == 2:
            options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        else:
            options["dimension_names"] = list(axes)
        group.create_array(str(level), **options)
        factor = [shapes[0][axes.index(a)] / shape[axes.index(a)] for a in spatial]
        level_scale = [1.0] * (len(axes) - len(spatial)) + [
            float(s) * round(f) for s, f in zip(scale, factor, strict=True)
        ]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": level_scale}],
            }
        )
    axes_meta = [
        {"name": a, "type": "channel"}
        if a == "c"
        else {"name": a, "type": "space", **({"unit": unit} if unit else {})}
        for a in axes
    ]
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=axes_meta, name=name)


def add_label_metadata(
    image_group, name: str, class_names: list[str], class_colors: list[str], version: str
) -> None:
    """Declare ``labels/<name>`` of an image as a label image with class names and colours.

    Parameters
    ----------
    image_group : zarr.Group
        The image whose ``labels`` group holds the multiscale label image `name`.
    name : str
    class_names : list of str
        One per class id (the ``class`` property of each label value).
    class_colors : list of str
        ``"#rrggbb"`` per class id; class 0 (background) is transparent.
    version : {"0.5", "0.4"}

    Returns
    -------
    None
    """
    from ome_zarr.writer import write_label_metadata

    colors = []
    for value, color in enumerate(class_colors):
        rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
        colors.append({"label-value": value, "rgba": [*rgb, 0 if value == 0 else 255]})
    properties = [{"label-value": v, "class": n} for v, n in enumerate(class_names)]
    labels = image_group["labels"]
    write_label_metadata(
        labels, name, colors=colors, properties=properties, fmt=ome_format(version)
    )
    if version == "0.5":
        # ome-zarr-py (0.18) leaves "version" out of the labels group's "ome" attributes,
        # which 0.5 requires (ome-zarr-models refuses the group without it)
        ome = dict(labels.attrs.get("ome", {}))
        if "version" not in ome:
            labels.attrs["ome"] = {"version": version, **ome}


__all__ = ["OME_VERSIONS", "add_label_metadata", "create_multiscale", "ome_format", "zarr_format"]
