"""The out-of-the-box demo: the bundled model segments the bundled sample, tile by tile.

``segkit demo`` and the napari sample "segmented with the default model" call
:func:`run_demo`; scripts can too. The model in ``sample_data/`` was trained with
``segkit train`` on synthetic nuclei images that are *not* the demo sample (other
seeds), so the Dice printed is a held-out score.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .samples import default_model_path, load_sample


def overlay_rgb(
    image: np.ndarray, labels: np.ndarray, colors: list[str], *, alpha: float = 0.45
) -> np.ndarray:
    """A grayscale image with its class labels blended in colour.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        Any numeric dtype; scaled by its 1st-99.8th percentiles.
    labels : ndarray of int, shape (Y, X)
        Class ids; 0 (background) is left uncoloured.
    colors : list of "#rrggbb", one per class id

    Returns
    -------
    ndarray of uint8, shape (Y, X, 3)
    """
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
        Default: the bundled model.
    tile_size, overlap : tiling (smaller than the sample, so the demo really tiles).
    progress : callable(done, total), optional

    Returns
    -------
    dict
        ``{"labels": path, "overlay": path, "report": segmentation_report(...)}``
    """
    import imageio.v3 as iio

    from .core.metrics import segmentation_report
    from .models import ModelFile, load_model
    from .tiling import predict

    model_file = (
        model if isinstance(model, ModelFile) else load_model(model or default_model_path())
    )
    data = load_sample(sample)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_path = out_dir / f"{sample}_labels.zarr"
    # the zarr array predict() returns is the written output: no need to reopen the store
    labels = np.asarray(
        predict(
            model_file,
            data.image,
            tile_size=tile_size,
            overlap=overlap,
            out=labels_path,
            overwrite=True,
            progress=progress,
        )
    )
    k = max(model_file.info.num_classes, 2)
    report = segmentation_report(
        data.semantic, labels, k, class_names=model_file.info.class_names[:k] or None
    )
    plane = labels.shape[0] // 2 if labels.ndim == 3 else None
    image2d = data.image if plane is None else data.image[plane]
    labels2d = labels if plane is None else labels[plane]
    overlay_path = out_dir / f"{sample}_overlay.png"
    iio.imwrite(overlay_path, overlay_rgb(image2d, labels2d, model_file.info.class_colors))
    return {"labels": labels_path, "overlay": overlay_path, "report": report}
