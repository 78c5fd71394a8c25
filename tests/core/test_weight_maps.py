from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as connected_components

from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.core.weight_maps import (
    class_balance_map,
    compute_class_weights,
    unet_weight_map,
)


def reference_weight_map(instances, w0=10.0, sigma=5.0):
    """The straightforward method: one full distance transform per object (2D)."""
    ids = [i for i in np.unique(instances) if i != 0]
    w = np.ones(instances.shape, np.float64)
    if len(ids) < 2:  # no object, or one: d2 is infinite and the border term vanishes
        return w
    dists = np.stack([ndi.distance_transform_edt(instances != i) for i in ids])
    dists.sort(axis=0)
    border = w0 * np.exp(-((dists[0] + dists[1]) ** 2) / (2 * sigma**2))
    return w + np.where(instances == 0, border, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_reference_on_touching_objects(seed):
    sample = make_nuclei((96, 120), n_nuclei=30, touching_fraction=0.8, seed=seed)
    ours = unet_weight_map(sample.instances)
    ref = reference_weight_map(sample.instances)
    assert np.abs(ours - ref).max() <= 1e-3


def test_other_w0_sigma():
    sample = make_nuclei((80, 80), n_nuclei=20, touching_fraction=0.9, seed=5)
    ours = unet_weight_map(sample.instances, w0=4.0, sigma=2.5)
    assert np.abs(ours - reference_weight_map(sample.instances, 4.0, 2.5)).max() <= 1e-3


def test_stack_is_processed_slice_by_slice():
    sample = make_nuclei((5, 60, 70), n_nuclei=25, touching_fraction=0.8, seed=7)
    ours = unet_weight_map(sample.instances)
    for z in range(5):
        # 2D distances in each plane; an object cut by the plane is one object there
        ref = reference_weight_map(sample.instances[z])
        assert np.abs(ours[z] - ref).max() <= 1e-3


def test_peaks_in_the_gap_between_touching_objects():
    labels = np.zeros((20, 30), np.uint16)
    labels[5:15, 2:13] = 1
    labels[5:15, 15:28] = 2  # two-pixel gap at columns 13-14
    w = unet_weight_map(labels)
    gap = w[5:15, 13:15]
    assert gap.min() > 8  # d1 + d2 = 3 -> 1 + 10 exp(-9/50) = 9.35
    assert np.isclose(w.max(), 1 + 10 * np.exp(-9 / 50), atol=1e-4)
    assert np.unravel_index(np.argmax(w), w.shape)[1] in (13, 14)
    assert (w[labels > 0] == 1).all()  # objects carry only the class term
    assert w[0, 0] < gap.min()


def test_semantic_mask_uses_connected_components():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 2:13] = True
    mask[5:15, 15:28] = True
    instances = connected_components(mask, connectivity=1)
    np.testing.assert_allclose(unet_weight_map(mask), unet_weight_map(instances))
    np.testing.assert_allclose(
        unet_weight_map(mask.astype(np.uint8), kind="semantic"),
        reference_weight_map(instances),
        atol=1e-3,
    )


def test_single_object_and_empty_images():
    empty = np.zeros((16, 16), np.int32)
    np.testing.assert_array_equal(unet_weight_map(empty), 1.0)
    one = empty.copy()
    one[4:8, 4:8] = 3
    np.testing.assert_allclose(unet_weight_map(one), 1.0)


def test_class_balance_term():
    labels = np.zeros((10, 10), np.uint8)
    labels[:2] = 1  # 20 % foreground
    w = unet_weight_map(labels, class_weights="balanced", w0=0)
    # inverse frequency, pixel mean 1: background 100/(2*80), foreground 100/(2*20)
    assert w[5, 5] == pytest.approx(0.625) and w[0, 0] == pytest.approx(2.5)
    np.testing.assert_allclose(class_balance_map(labels, [1.0, 4.0])[0, 0], 4.0)


def test_bad_input():
    with pytest.raises(ValueError, match="integer or boolean"):
        unet_weight_map(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        unet_weight_map(np.zeros(4, np.int32))


def test_class_weights_inverse_and_median_by_hand():
    a = np.array([[0, 0, 0, 1]])  # image 1: 3 of class 0, 1 of class 1
    b = np.array([[0, 2, 2, 2]])  # image 2: 1 of class 0, 3 of class 2
    inv = compute_class_weights([a, b], 3, method="inverse")
    # totals 4, 1, 3 of N = 8 -> 8 / (3 * n_c)
    np.testing.assert_allclose(inv, [8 / 12, 8 / 3, 8 / 9], rtol=1e-6)
    med = compute_class_weights([a, b], 3, method="median")
    # freq: class 0: 4/8, class 1: 1/4 (only image 1), class 2: 3/4 -> median 0.5
    np.testing.assert_allclose(med, [1.0, 2.0, 2 / 3], rtol=1e-6)


def test_class_weights_ignore_index_dask_and_errors():
    labels = np.array([[0, 1, 1, 2], [2, 2, 2, 0]])
    eager = compute_class_weights(labels, 3, ignore_index=0)
    lazy = compute_class_weights(da.from_array(labels, chunks=(1, 2)), 3, ignore_index=0)
    np.testing.assert_allclose(eager, lazy)
    assert eager[0] == 0  # the ignored id gets no weight
    with pytest.raises(ValueError, match="class id 7, outside 0..2"):
        compute_class_weights(np.array([[7]]), 3)
    with pytest.raises(ValueError, match="no labelled pixel"):
        compute_class_weights(np.zeros((2, 2), int), 3, ignore_index=0)
