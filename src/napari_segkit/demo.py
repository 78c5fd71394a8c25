"""The out-of-the-box demo: the bundled model segments the bundled sample, tile by tile.

``segkit demo`` and the napari sample "segmented with the default model" call
:func:`run_demo`; scripts can too. The default model in ``sample_data/`` was trained
on real DSB2018 images (``scripts/train_default_model.py``), never on the synthetic
demo sample, so the scores printed are held-out scores. ``segkit demo --image
PATH`` also segments a real image of your own (e.g. a DSB2018 PNG) and writes its
overlay.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .samples import DEFAULT_3D_MODEL, default_model_path, load_sample


def overlay_rgb(
    image: np.ndarray, labels: np.ndarray, colors: list[str], *, alpha: float = 0.45
) -> np.ndarray:
    """A grayscale image with its class labels blended in colour.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Y, X, 3 or 4)
        Any numeric dtype; scaled by its 1st-99.8th percentiles (colour: its luminance).
    labels : ndarray of int, shape (Y, X)
        Class ids; 0 (background) is left uncoloured.
    colors : list of "#rrggbb", one per class id

    Returns
    -------
    ndarray of uint8, shape (Y, X, 3)
    """
    if image.ndim == 3 and image.shape[-1] in (3, 4) and image.shape[:2] == labels.shape:
        from .core.volume import convert_channels

        image = convert_channels(np.moveaxis(image, -1, 0), "gray")[0]
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    low, high = np.percentile(image, (1, 99.8))
    gray = np.clip((image.astype(np.float32) - low) / max(high - low, 1e-6), 0, 1)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    table = np.array(
        [[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in colors], np.float32
    )
    fg = labels > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * table[labels[fg]]
    return (rgb * 255 + 0.5).astype(np.uint8)


def run_demo(
    out_dir: str | os.PathLike,
    *,
    sample: str = "nuclei_2d",
    model=None,
    tile_size: int = 128,
    overlap: float = 0.25,
    image=None,
    progress=None,
) -> dict:
    """Segment a bundled sample tile by tile; write labels (zarr) and an overlay PNG.

    Parameters
    ----------
    out_dir : path
        Created if needed; receives ``<sample>_labels.zarr`` and ``<sample>_overlay.png``
        (for a stack: its middle plane). Existing demo outputs there are replaced.
    sample : {"nuclei_2d", "nuclei_3d"}
    model : path or ModelFile, optional
        Default: the bundled model (for "nuclei_3d": the bundled 3D model, which sees the
        stack in 3D; pass the 2D model to predict it plane by plane).
    tile_size, overlap : tiling (smaller than the sample, so the demo really tiles).
    image : path, optional
        A real 2D image (PNG, TIFF, ...; gray or colour) to segment too: writes
        ``<name>_overlay.png`` and ``<name>_instances.tif``.
    progress : callable(done, total), optional

    Returns
    -------
    dict
        ``{"labels": path, "overlay": path, "report": segmentation_report(...)}``;
        for a boundary model (touching objects split) also ``"objects"`` (instances
        found) and, on the 2D sample, ``"mean_ap"`` / ``"ap50"`` (DSB2018 scores against
        the sample's true instances); with `image` also ``"image": {"overlay", "instances",
        "objects"}``.
    """
    import imageio.v3 as iio

    from .core.instances import instances_from_prediction
    from .core.metrics import segmentation_report
    from .models import ModelFile, load_model
    from .tiling import predict

    if model is None and sample == "nuclei_3d" and DEFAULT_3D_MODEL.exists():
        model = DEFAULT_3D_MODEL
    model_file = (
        model if isinstance(model, ModelFile) else load_model(model or default_model_path())
    )
    info = model_file.info
    boundary = info.splits_touching
    data = load_sample(sample)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_path = out_dir / f"{sample}_labels.zarr"
    if info.spatial_dims == 3:  # 3D tiles in memory (its own tile size), then to zarr
        from .core.io import write_labels

        result = predict(model_file, data.image, overlap=overlap, tile_progress=progress)
        write_labels(labels_path, result, overwrite=True)
    else:
        # the zarr arrays predict() returns are the written output: no need to reopen them
        result = predict(
            model_file,
            data.image,
            tile_size=tile_size,
            overlap=overlap,
            out=labels_path,
            overwrite=True,
            output="both" if boundary else "labels",
            progress=progress,
        )
    labels = np.asarray(result[0] if boundary else result)
    out = {"labels": labels_path}
    if boundary:  # interior and boundary together are the nuclei
        objects = instances_from_prediction(result[1], **info.instance_options())
        out["objects"] = int(
            sum(len(np.unique(p)) - 1 for p in objects.reshape(-1, *objects.shape[-2:]))
        )
        out["report"] = segmentation_report(
            data.semantic > 0, labels > 0, 2, class_names=["background", "nucleus"]
        )
        if objects.ndim == 2:
            from .kaggle.metrics import average_precision

            out["mean_ap"] = average_precision(data.instances, objects, semantic=False)
            out["ap50"] = average_precision(
                data.instances, objects, thresholds=np.array([0.5]), semantic=False
            )
    else:
        k = max(info.num_classes, 2)
        out["report"] = segmentation_report(
            data.semantic, labels, k, class_names=info.class_names[:k] or None
        )
    plane = labels.shape[0] // 2 if labels.ndim == 3 else None
    image2d = data.image if plane is None else data.image[plane]
    labels2d = labels if plane is None else labels[plane]
    out["overlay"] = out_dir / f"{sample}_overlay.png"
    iio.imwrite(out["overlay"], overlay_rgb(image2d, labels2d, info.class_colors))
    if image is not None:
        out["image"] = _segment_real_image(model_file, image, out_dir)
    return out


def _segment_real_image(model_file, path, out_dir: Path) -> dict:
    """Segment one real image: overlay PNG (classes) and instance labels TIFF.

    The image's pixel size is unknown, so a model that records the object sizes it was
    trained on (the default model does) predicts at them (``object_diameter="auto"``).
    """
    import imageio.v3 as iio
    import tifffile

    from .kaggle.datasets import read_image
    from .tiling import predict_objects

    path = Path(path)
    image = read_image(path)
    info = model_file.info
    rescalable = info.spatial_dims == 2 and info.trained_diameters() is not None
    found = predict_objects(model_file, image, object_diameter="auto" if rescalable else None)
    stem = path.name.split(".")[0]
    overlay = out_dir / f"{stem}_overlay.png"
    iio.imwrite(overlay, overlay_rgb(image, found.labels, info.class_colors))
    instances = out_dir / f"{stem}_instances.tif"
    tifffile.imwrite(instances, found.instances, compression="zlib")
    return {
        "overlay": overlay,
        "instances": instances,
        "objects": int(found.instances.max()),
        "describe": found.describe(),
    }
