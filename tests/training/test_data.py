from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_segkit.core.augment import Augmentation
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.core.weight_maps import unet_weight_map
from napari_segkit.losses import WeightedCrossEntropyLoss
from napari_segkit.training import (
    IGNORE_INDEX,
    PatchDataset,
    TrainingDataError,
    TrainingSet,
    prepare_training_set,
)


@pytest.fixture(scope="module")
def sample():
    return make_nuclei((64, 72), seed=11)


def test_dense_and_sparse_conventions(sample):
    dense = prepare_training_set([sample.image], [sample.semantic])
    assert dense.num_classes == 2 and dense.targets[0].dtype == np.int64
    np.testing.assert_array_equal(dense.targets[0], sample.semantic)
    scribbles = np.zeros_like(sample.semantic)
    scribbles[5:8, 5:30] = 1  # background scribble
    scribbles[sample.instances == 3] = 2  # one nucleus
    sparse = prepare_training_set([sample.image], [scribbles], sparse=True)
    assert sparse.num_classes == 2
    t = sparse.targets[0]
    assert (t[scribbles == 0] == IGNORE_INDEX).all()
    assert (t[scribbles == 1] == 0).all() and (t[scribbles == 2] == 1).all()


def test_unlabeled_pixels_have_no_effect_on_the_loss_gradient(sample):
    scribbles = np.zeros_like(sample.semantic)
    scribbles[10:20, 10:20] = 1
    scribbles[sample.instances == 2] = 2
    data = prepare_training_set([sample.image], [scribbles], sparse=True)
    target = torch.from_numpy(data.targets[0])[None]
    logits = torch.randn(1, 2, *target.shape[1:], requires_grad=True)
    WeightedCrossEntropyLoss(ignore_index=IGNORE_INDEX)(logits, target).backward()
    assert torch.all(logits.grad[0][:, torch.from_numpy(scribbles == 0)] == 0)


def test_stacks_become_planes_and_images_are_normalised(sample):
    stack = np.stack([sample.image, sample.image // 2])
    labels = np.stack([sample.semantic, sample.semantic])
    data = prepare_training_set([stack], [labels])
    assert len(data.images) == 2 and data.images[0].shape == (1, 64, 72)
    assert data.source == [(0, 0), (0, 1)]
    # one normalisation per image (the whole stack), not per plane
    lo, hi = np.percentile(np.concatenate(data.images), [1, 99.8])
    assert lo == pytest.approx(0, abs=0.01) and hi == pytest.approx(1, abs=0.01)


@pytest.mark.parametrize(
    ("images", "labels", "kwargs", "match"),
    [
        ([], [], {}, "no training images"),
        ([np.zeros((8, 8))], [], {}, "1 images but 0 label"),
        ([np.zeros((8, 8))], [np.zeros((8, 9), int)], {}, r"spatial shape \(8, 8\).*\(8, 9\)"),
        ([np.full((8, 8), np.nan)], [np.zeros((8, 8), int)], {}, "NaN"),
        (
            [np.zeros((8, 8))],
            [np.full((8, 8), 3)],
            {"num_classes": 2},
            "class 3 but num_classes=2",
        ),
        ([np.zeros((8, 8))], [np.zeros((8, 8), int)], {"sparse": True}, "no pixel is labelled"),
        ([np.zeros((8, 8))], [np.zeros((8, 8), np.float32)], {}, "must be integers"),
    ],
)
def test_bad_input_is_refused_before_training(images, labels, kwargs, match):
    with pytest.raises(TrainingDataError, match=match):
        prepare_training_set(images, labels, **kwargs)


def test_patches_are_reproducible_and_oversample_rare_classes(sample):
    labels = sample.semantic.copy()
    labels[30:32, 30:32] = 2  # a rare class: 4 pixels
    data = prepare_training_set([sample.image], [labels])
    ds = PatchDataset(data, patch_size=16, length=64, rare_class_fraction=0.9, seed=3)
    a = ds[5]
    assert torch.equal(a[0], ds[5][0]) and a[0].shape == (1, 16, 16)
    rare = sum(int((ds[i][1] == 2).any()) for i in range(64))
    plain = PatchDataset(data, patch_size=16, length=64, rare_class_fraction=0.0, seed=3)
    rare_plain = sum(int((plain[i][1] == 2).any()) for i in range(64))
    assert rare > 2 * rare_plain and rare >= 15
    ds.set_epoch(1)
    assert not torch.equal(a[0], ds[5][0])


def test_small_planes_are_padded_with_unlabeled_pixels():
    data = prepare_training_set(
        [np.random.default_rng(0).random((10, 12))], [np.ones((10, 12), np.uint8)]
    )
    image, target, _ = PatchDataset(data, patch_size=16, length=1)[0]
    assert image.shape == (1, 16, 16) and (target[10:] == IGNORE_INDEX).all()
    assert (target[:10, :12] == 1).all()


def test_border_weights_follow_the_augmented_patch(sample):
    data = prepare_training_set([sample.image], [sample.semantic])
    whole = unet_weight_map((data.targets[0] > 0).astype(np.uint8), kind="semantic")
    kw = {"patch_size": 32, "length": 8, "border_weights": {"w0": 10, "sigma": 5}, "seed": 1}
    plain = PatchDataset(data, **kw)
    aug = Augmentation(elastic_sigma=0, intensity_scale=0, intensity_shift=0)
    augmented = PatchDataset(data, augmentation=aug, **kw)
    image_plane = data.images[0][0]
    for i in range(8):
        image, target, weights = (t.numpy() for t in plain[i])
        # computed once on the whole plane, then cropped with the patch
        ys, xs = np.nonzero(
            np.lib.stride_tricks.sliding_window_view(image_plane, (32, 32))
            .__eq__(image[0])
            .all(axis=(2, 3))
        )
        y, x = ys[0], xs[0]
        np.testing.assert_allclose(weights, whole[y : y + 32, x : x + 32])
        # the same patch augmented: weights and labels move together
        _, aug_target, aug_weights = (t.numpy() for t in augmented[i])
        transforms = [
            lambda a, k=k, f=f: np.rot90(a[:, ::-1] if f else a, k)
            for k in range(4)
            for f in (False, True)
        ]
        assert any(
            np.array_equal(t(target), aug_target) and np.allclose(t(weights), aug_weights)
            for t in transforms
        )


def test_dataloader_workers_give_the_same_batches(sample):
    data = prepare_training_set([sample.image], [sample.semantic])
    ds = PatchDataset(data, patch_size=16, length=8, augmentation=Augmentation(), seed=0)
    serial = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    workers = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)))
    for a, b in zip(serial, workers, strict=False):
        assert torch.equal(a, b)


def test_zoomed_patches_show_more_of_the_plane_not_mirrored_content():
    """Zooming out resamples a larger window: one object, smaller, never a mirror copy."""
    target = np.zeros((64, 64), np.int64)
    target[28:36, 28:36] = 1  # one 8 x 8 object
    data = TrainingSet([target[None].astype(np.float32)], [target], 2, [(0, 0)])
    aug = Augmentation(
        zoom=(0.5, 0.5), flips=False, rotate90=False, elastic_sigma=0, intensity_shift=0
    )
    ds = PatchDataset(data, patch_size=32, length=6, augmentation=aug, rare_class_fraction=1)
    for i in range(len(ds)):
        _, patch, _ = (t.numpy() for t in ds[i])
        assert patch.shape == (32, 32)
        # the 64-pixel window fits the plane exactly: the object at half size, once
        assert np.count_nonzero(patch == 1) == 16
        assert ndi.label(patch == 1)[1] == 1
    # without zoom, patches centred on the object show it at full size
    plain = PatchDataset(data, patch_size=32, length=6, rare_class_fraction=1)
    assert max(np.count_nonzero(plain[i][1].numpy() == 1) for i in range(6)) == 64
