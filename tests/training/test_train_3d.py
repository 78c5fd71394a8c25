"""Training 3D models on stacks: 3D patches, 3D augmentation, 3D validation, resume."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segkit.core.augment import Augmentation, elastic_displacement
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.models import read_model_info
from napari_segkit.tiling import predict
from napari_segkit.training import TrainingCancelled, TrainingDataError, train, train_iter


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_3d_elastic_deformation_keeps_labels_integer_and_aligned(seed):
    """A known pattern: the image is a function of the labels (10 * label + 1), so after
    flips, rotations, translation and elastic deformation in 3D the image must still be
    that function of the labels at every voxel (nearest-neighbour resampling of both)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((12, 24, 24), np.int64)
    labels[2:9, 3:15, 5:20] = 1
    labels[5:11, 12:22, 2:9] = 2
    image = (10.0 * labels + 1.0)[None].astype(np.float32)
    augment = Augmentation(
        translate=3,
        elastic_sigma=4,
        image_order=0,
        intensity_scale=0,
        intensity_shift=0,
    )
    out_image, out_labels, _ = augment(rng, image, labels)
    assert out_labels.dtype == np.int64 and set(np.unique(out_labels)) <= {0, 1, 2}
    assert out_image.shape == image.shape and out_labels.shape == labels.shape
    np.testing.assert_array_equal(out_image[0], 10.0 * out_labels + 1.0)
    assert not np.array_equal(out_labels, labels)  # it did deform
    field = elastic_displacement(rng, (12, 24, 24), sigma=4)
    assert field.shape == (3, 12, 24, 24)
    assert np.abs(np.diff(field, axis=1)).max() < 4  # smooth


@pytest.fixture(scope="module")
def stacks():
    samples = [make_nuclei((12, 40, 40), radius=(4.0, 7.0), seed=s) for s in (11, 12, 13)]
    return [s.image for s in samples], [s.semantic for s in samples]


def _options(**extra):
    return {
        "arch": "unet3d",
        "arch_options": {"width": 2, "depth": 1},
        "epochs": 2,
        "steps_per_epoch": 4,
        "batch_size": 2,
        "patch_size": 24,
        "num_workers": 0,
        **extra,
    }


def test_a_3d_model_trains_on_stacks_and_predicts_them(tmp_path, stacks):
    images, labels = stacks
    reports = []
    model = train(
        images[:2],
        labels[:2],
        validation=([images[2]], [labels[2]]),
        out=tmp_path / "m3d.safetensors",
        spacing=(2.0, 0.5, 0.5),
        progress=reports.append,
        **_options(),
    )
    info = read_model_info(tmp_path / "m3d.safetensors")
    assert info.spatial_dims == 3 and info.spacing == [2.0, 0.5, 0.5]
    # z is 4x coarser than y and x: the first level keeps z (planned as nnU-Net does)
    assert info.options["anisotropic_levels"] == 1
    assert info.tile_size == [16, 24, 24]  # at least 16 planes deep, the patch in-plane
    validated = [r.val for r in reports if r.val is not None]
    assert validated and len(validated[-1]["dice"]) == 2  # scored by the 3D tile engine
    labels_3d = predict(model, images[2])
    assert labels_3d.shape == images[2].shape


def test_3d_training_resumes_after_an_interruption(tmp_path, stacks):
    images, labels = stacks
    out = tmp_path / "r3d.safetensors"
    steps = []
    with pytest.raises(TrainingCancelled):
        for report in train_iter(
            images, labels, out=out, cancel=lambda: len(steps) >= 6, **_options()
        ):
            steps.append(report.step)
    assert out.with_name(out.name + ".state.pt").exists()  # one epoch (4 steps) was saved
    resumed = list(train_iter(images, labels, out=out, resume=True, **_options()))
    assert resumed[0].step == 5 and resumed[-1].end_of_epoch
    assert read_model_info(out).spatial_dims == 3


def test_3d_training_refuses_2d_labels(tmp_path):
    flat = make_nuclei((40, 40), seed=3)
    with pytest.raises(TrainingDataError, match=r"3D model trains on stacks"):
        train([flat.image], [flat.semantic], out=tmp_path / "a.safetensors", **_options())
    assert not list(tmp_path.iterdir())


def test_3d_border_weighted_training_uses_3d_distances(tmp_path, stacks):
    """A border-weighted loss on stacks: the patches' weight maps are the 3D maps (with the
    training spacing), not plane-by-plane ones."""
    from napari_segkit.core.weight_maps import unet_weight_map
    from napari_segkit.training.data import PatchDataset, prepare_training_set

    images, labels = stacks
    data = prepare_training_set(images[:1], labels[:1], spatial_dims=3)
    dataset = PatchDataset(
        data, patch_size=64, border_weights={"w0": 10, "sigma": 3, "spacing": (2, 1, 1)}
    )
    expected = unet_weight_map(
        (labels[0] > 0).astype(np.uint8), w0=10, sigma=3, kind="semantic", spacing=(2, 1, 1)
    )
    np.testing.assert_allclose(dataset.weight_maps[0], expected)
    per_plane = unet_weight_map((labels[0] > 0).astype(np.uint8), w0=10, sigma=3, kind="semantic")
    assert not np.allclose(dataset.weight_maps[0], per_plane)
    model = train(
        images, labels, out=tmp_path / "b.safetensors", **_options(loss="dice+border_ce")
    )
    assert model.info.spatial_dims == 3


def test_a_3d_boundary_model_trains_on_3d_boundaries(tmp_path, capsys):
    """target="boundary" for a 3D model: boundaries drawn in 3D (where nuclei meet or end
    in z too), as the recorded class fractions of its training targets show."""
    from napari_segkit.core.instances import boundary_target

    samples = [make_nuclei((12, 40, 40), radius=(4.0, 7.0), seed=s) for s in (21, 22)]
    images, objects = [s.image for s in samples], [s.instances for s in samples]
    model = train(
        images, objects, out=tmp_path / "b3d.safetensors", target="boundary", **_options()
    )
    assert model.info.splits_touching and model.info.spatial_dims == 3

    def fractions(volumetric):
        targets = [boundary_target(o, volumetric=volumetric) for o in objects]
        counts = sum(np.bincount(t.ravel(), minlength=3) for t in targets)
        return (counts / counts.sum()).round(4).tolist()

    assert model.info.training["class_fractions"] == fractions(True) != fractions(False)
    assert model.info.instance_options()["volumetric"]  # its instances are 3D objects
    # segkit evaluate scores it against 3D boundary targets and 3D objects
    from napari_segkit.cli import main
    from napari_segkit.core.io import write_labels, write_stack

    write_stack(tmp_path / "s.tif", images[0])
    write_labels(tmp_path / "o.tif", objects[0])
    files = ["--images", str(tmp_path / "s.tif"), "--labels", str(tmp_path / "o.tif"), "-q"]
    assert main(["evaluate", str(tmp_path / "b3d.safetensors"), *files]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert {"background", "interior", "boundary", "stack"} <= set(rows)
    assert rows["stack"][0] == "1"  # one stack, its objects scored in 3D
