"""napari sample-data contributions: synthetic nuclei with exact ground truth."""

from __future__ import annotations

from ..samples import default_model_path, load_sample
from .layers import model_prediction_layers, sample_layers


def sample_nuclei_2d() -> list[tuple]:
    """256 x 256 fluorescence-like nuclei, semantic and instance ground truth."""
    return sample_layers(load_sample("nuclei_2d"), "nuclei 2D")


def sample_nuclei_3d() -> list[tuple]:
    """24 x 128 x 128 stack of nuclei with semantic and instance ground truth."""
    return sample_layers(load_sample("nuclei_3d"), "nuclei 3D")


def sample_nuclei_2d_segmented() -> list[tuple]:
    """The 2D sample, its ground truth, and the bundled default model's prediction."""
    from ..models import load_model
    from ..tiling import predict

    sample = load_sample("nuclei_2d")
    model_file = load_model(default_model_path())
    labels = predict(model_file, sample.image, tile_size=128, overlap=0.25)
    return sample_layers(sample, "nuclei 2D")[:2] + model_prediction_layers(
        labels, model_file.info, name="nuclei 2D default model"
    )
