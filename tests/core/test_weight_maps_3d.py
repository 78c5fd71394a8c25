"""3D U-Net weight maps with voxel spacing against the naive formula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.core.weight_maps import unet_weight_map


def naive_weight_map(instances, w0, sigma, spacing):
    """The formula as written: one full-volume distance transform per object."""
    ids = [i for i in np.unique(instances) if i]
    distances = np.stack(
        [ndi.distance_transform_edt(instances != i, sampling=spacing) for i in ids]
    )
    distances.sort(axis=0)
    d1, d2 = distances[0], distances[1]
    border = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    return np.where(instances == 0, 1 + border, 1).astype(np.float32)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.5, 0.7)])
def test_3d_weight_map_matches_one_edt_per_object(spacing):
    instances = make_nuclei((14, 40, 36), radius=(4.0, 7.0), seed=8).instances
    assert len(np.unique(instances)) > 4
    ours = unet_weight_map(instances, w0=10, sigma=3, kind="instances", spacing=spacing)
    np.testing.assert_allclose(ours, naive_weight_map(instances, 10, 3, spacing), atol=1e-3)


def test_spacing_must_match_the_labels():
    with pytest.raises(ValueError, match="spacing"):
        unet_weight_map(np.zeros((4, 8, 8), int), spacing=(1.0, 1.0))
