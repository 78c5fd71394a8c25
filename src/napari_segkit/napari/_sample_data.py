"""napari sample-data contributions: synthetic nuclei with exact ground truth."""

from __future__ import annotations

from ..samples import default_model_path, load_sample
from .layers import instances_layer, model_prediction_layers, sample_layers


def sample_nuclei_2d() -> list[tuple]:
    """256 x 256 fluorescence-like nuclei, semantic and instance ground truth."""
    return sample_layers(load_sample("nuclei_2d"), "nuclei 2D")


def sample_nuclei_3d() -> list[tuple]:
    """24 x 128 x 128 stack of nuclei with semantic and instance ground truth."""
    return sample_layers(load_sample("nuclei_3d"), "nuclei 3D")


def sample_nuclei_2d_segmented() -> list[tuple]:
    """The 2D sample, its ground truth, and the bundled default model's prediction (classes,
    and for a boundary model its instances: touching nuclei split)."""
    from ..core.instances import instances_from_prediction
    from ..models import load_model
    from ..tiling import predict

    sample = load_sample("nuclei_2d")
    model_file = load_model(default_model_path())
    labels, probs = predict(model_file, sample.image, tile_size=128, overlap=0.25, output="both")
    name = "nuclei 2D default model"
    layers = sample_layers(sample, "nuclei 2D")[:2] + model_prediction_layers(
        labels, model_file.info, name=name
    )
    if model_file.info.splits_touching:
        objects = instances_from_prediction(probs, **model_file.info.instance_options())
        layers.append(instances_layer(objects, name=name))
    return layers
