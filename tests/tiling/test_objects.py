"""predict_objects: labels, probabilities and instances, at the model's object size."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import rescale

from napari_segkit.kaggle.metrics import average_precision
from napari_segkit.models import load_model
from napari_segkit.samples import DEFAULT_MODEL, SYNTHETIC_MODEL
from napari_segkit.tiling import predict, predict_objects


@pytest.fixture(scope="module")
def default_model():
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def fluorescence(held_out_fluorescence):
    return held_out_fluorescence


def test_without_a_diameter_it_is_predict_plus_the_models_instances(default_model, fluorescence):
    from napari_segkit.core.instances import instances_from_prediction

    result = predict_objects(default_model, fluorescence.image)
    labels, probabilities = predict(default_model, fluorescence.image, output="both")
    assert np.array_equal(result.labels, labels)
    assert np.allclose(result.probabilities, probabilities)
    expected = instances_from_prediction(probabilities, **default_model.info.instance_options())
    assert np.array_equal(result.instances, expected)
    assert result.scale == 1.0 and result.diameter is None
    assert f"{expected.max()} objects" in result.describe()


def test_a_3d_models_objects_are_3d_and_a_2d_models_are_per_plane():
    """The bundled 3D model's instances of the 3D sample are labelled in the volume (one id
    through the planes an object spans); the 2D model's restart in each plane."""
    from scipy import ndimage as ndi

    from napari_segkit.samples import DEFAULT_3D_MODEL, load_sample

    stack = load_sample("nuclei_3d").image
    result = predict_objects(DEFAULT_3D_MODEL, stack)
    assert result.volumetric and result.instances.shape == stack.shape
    n = int(result.instances.max())
    assert n == ndi.label(result.instances > 0)[1]  # one id per 3D component
    spans = [len(np.unique(np.nonzero(result.instances == i)[0])) for i in range(1, n + 1)]
    assert max(spans) > 5
    assert result.describe().startswith(f"{n} objects")
    flat = predict_objects(SYNTHETIC_MODEL, stack)
    assert not flat.volumetric
    per_plane = sum(int(plane.max()) for plane in flat.instances)
    assert per_plane > 5 * n and flat.describe().startswith(f"{per_plane} objects")


def test_auto_leaves_an_image_at_the_trained_size_alone(default_model, fluorescence):
    result = predict_objects(default_model, fluorescence.image, object_diameter="auto")
    low, high = default_model.info.trained_diameters()
    assert low <= result.diameter <= high and result.scale == 1.0
    assert np.array_equal(
        result.instances, predict_objects(default_model, fluorescence.image).instances
    )


def test_auto_brings_shrunken_nuclei_back_to_the_trained_size(default_model, fluorescence):
    """The real image at 40 % of its pixel size (as a 4x weaker objective would give it):
    the estimate finds nuclei below the trained range, magnifies the image, and the
    instances -- at the small image's own size -- beat those predicted as it is."""
    image = np.asarray(fluorescence.image, np.float32)
    small = rescale(image, 0.4, channel_axis=-1, anti_aliasing=True, preserve_range=True)
    truth = rescale(
        fluorescence.instances, 0.4, order=0, anti_aliasing=False, preserve_range=True
    ).astype(np.int32)
    plain = predict_objects(default_model, small)
    auto = predict_objects(default_model, small, object_diameter="auto")
    low, _ = default_model.info.trained_diameters()
    assert auto.diameter < low and auto.scale > 1.5
    assert auto.instances.shape == auto.labels.shape == small.shape[:2]
    assert auto.probabilities.shape == (3, *small.shape[:2])
    assert np.allclose(auto.probabilities.sum(0), 1.0, atol=1e-3)
    assert average_precision(truth, auto.instances) > average_precision(truth, plain.instances)
    # a given diameter in the same place skips the estimate and rescales alike
    given = predict_objects(default_model, small, object_diameter=auto.diameter)
    assert given.scale == pytest.approx(auto.scale)
    assert np.array_equal(given.instances, auto.instances)


def test_the_minimum_object_size_follows_the_magnification(default_model):
    tuned = default_model.info.training["postprocessing"]["min_size"]
    assert default_model.info.instance_options(scale=2.0)["min_size"] == round(tuned / 4)
    assert default_model.info.instance_options()["min_size"] == tuned


def test_clear_errors(default_model, shared_data):
    image = np.zeros((64, 64), np.uint8)
    with pytest.raises(ValueError, match="does not record the object sizes"):
        predict_objects(SYNTHETIC_MODEL, image, object_diameter="auto")
    with pytest.raises(ValueError, match="positive number of pixels"):
        predict_objects(default_model, image, object_diameter=-3)
    with pytest.raises(ValueError, match="positive number of pixels"):
        predict_objects(default_model, image, object_diameter="large")
    with pytest.raises(ValueError, match="takes no out"):
        predict_objects(default_model, image, out=shared_data / "x.zarr")


def test_uint8_probabilities_give_the_same_objects(default_model, fluorescence):
    """prob_dtype="uint8" (what zarr outputs store) must not change the estimate or the
    instances: probabilities come back as floats in [0, 1] either way."""
    image = np.asarray(fluorescence.image, np.float32)
    small = rescale(image, 0.4, channel_axis=-1, anti_aliasing=True, preserve_range=True)
    floats = predict_objects(default_model, small, object_diameter="auto")
    encoded = predict_objects(default_model, small, object_diameter="auto", prob_dtype="uint8")
    assert encoded.probabilities.dtype == np.float32 and encoded.probabilities.max() <= 1.0
    assert encoded.scale == pytest.approx(floats.scale, rel=0.05)
    assert average_precision(floats.instances, encoded.instances) > 0.9


TISSUE = "4ca5081854df7bbcaa4934fcf34318f82733a0f8c05b942c2265eea75419d62f"


@pytest.fixture(scope="module")
def held_out_tissue(shared_data, default_model):
    """A real DSB2018 tissue image of the default model's validation split (dark nuclei
    on a bright background)."""
    from napari_segkit.kaggle import read_dsb2018

    assert default_model.info.training["validation_kinds"][TISSUE] == "tissue"
    (sample,) = read_dsb2018(shared_data / "dsb2018-train" / "stage1_train", ids=[TISSUE])
    return sample


@pytest.mark.parametrize(
    ("kind", "origin", "crop"),
    [("fluorescence", (64, 128), 64), ("tissue", (160, 96), 96)],
)
def test_nuclei_sparse_in_a_large_field_are_predicted_normalised_to_them(
    default_model, request, kind, origin, crop
):
    """Real nuclei in a corner of a 768 x 768 field of their image's background: they
    cover under 0.5 % of it, so the model's percentiles fall on the background and
    the nuclei come out many times brighter (fluorescence) or darker (tissue) than
    the model has seen."""
    from napari_segkit.kaggle.ensemble import ensemble_probabilities

    sample = request.getfixturevalue(
        "held_out_fluorescence" if kind == "fluorescence" else "held_out_tissue"
    )
    size, (y, x) = 768, origin
    truth = sample.instances[y : y + crop, x : x + crop]
    background = np.median(sample.image[sample.instances == 0], axis=0)  # RGB
    noise = np.random.default_rng(0).normal(0, 1, (size, size, 1))
    image = np.clip(np.rint(background + noise), 0, 255).astype(np.uint8)
    image[:crop, :crop] = sample.image[y : y + crop, x : x + crop]
    assert 0 < (truth > 0).sum() / size**2 < 0.005 and truth.max() >= 4

    plain = predict_objects(default_model, image, renormalize_sparse=False)
    found = predict_objects(default_model, image)
    assert not plain.renormalized and found.renormalized
    assert "normalised to its sparse objects" in found.describe()
    ap_plain = average_precision(truth, plain.instances[:crop, :crop])
    ap_found = average_precision(truth, found.instances[:crop, :crop])
    # the reference: the same nuclei predicted without the field around them
    alone = predict_objects(default_model, sample.image[y : y + crop, x : x + crop])
    ap_alone = average_precision(truth, alone.instances)
    assert ap_alone > ap_plain + 0.3, (ap_plain, ap_alone)  # the field costs most of it
    # re-normalised, at least half of what the field cost comes back
    assert ap_found > ap_plain + 0.5 * (ap_alone - ap_plain), (ap_plain, ap_found, ap_alone)
    # the Kaggle tools (submissions, evaluate, tune) predict the same way
    assert np.allclose(ensemble_probabilities([default_model], image), found.probabilities)
