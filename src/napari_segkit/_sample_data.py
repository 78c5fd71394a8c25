"""napari sample-data contributions: synthetic nuclei with exact ground truth.

Read from the files shipped in ``sample_data/`` when present (the same pixels,
written by ``scripts/make_sample_data.py``), else generated on the fly.
"""

from __future__ import annotations

from pathlib import Path

from .core.synthetic import SyntheticSample, sample_2d, sample_3d

SAMPLE_DIR = Path(__file__).parent / "sample_data"


def _layers(sample: SyntheticSample, name: str) -> list[tuple]:
    return [
        (sample.image, {"name": name, "contrast_limits": (0, int(sample.image.max()))}, "image"),
        (sample.semantic, {"name": f"{name} semantic labels", "visible": False}, "labels"),
        (sample.instances, {"name": f"{name} instance labels", "visible": False}, "labels"),
    ]


def load_sample(key: str) -> SyntheticSample:
    """The shipped sample ``"nuclei_2d"`` or ``"nuclei_3d"`` (regenerated when files are absent)."""
    files = [SAMPLE_DIR / f"{key}{suffix}.tif" for suffix in ("", "_instances", "_semantic")]
    if all(f.exists() for f in files):
        import tifffile

        return SyntheticSample(*(tifffile.imread(f) for f in files))
    generators = {"nuclei_2d": sample_2d, "nuclei_3d": sample_3d}
    if key not in generators:
        raise ValueError(f"Unknown sample {key!r}; choose one of {sorted(generators)}")
    return generators[key]()


def sample_nuclei_2d() -> list[tuple]:
    """256 x 256 fluorescence-like nuclei, semantic and instance ground truth."""
    return _layers(load_sample("nuclei_2d"), "nuclei 2D")


def sample_nuclei_3d() -> list[tuple]:
    """24 x 128 x 128 stack of nuclei with semantic and instance ground truth."""
    return _layers(load_sample("nuclei_3d"), "nuclei 3D")


def sample_nuclei_2d_segmented() -> list[tuple]:
    """The 2D sample, its ground truth, and the bundled default model's prediction."""
    from .demo import default_model_path
    from .layer_data import model_prediction_layers
    from .models import load_model
    from .tiling import predict

    sample = load_sample("nuclei_2d")
    model_file = load_model(default_model_path())
    labels = predict(model_file, sample.image, tile_size=128, overlap=0.25)
    return _layers(sample, "nuclei 2D")[:2] + model_prediction_layers(
        labels, model_file.info, name="nuclei 2D default model"
    )
