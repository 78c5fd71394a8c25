"""Dataset layouts, each from a small generated example (and the real DSB2018 subset)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage.io import imsave

from napari_segkit.core.errors import StackReadError
from napari_segkit.core.rle import RLEError, rle_encode
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.kaggle.datasets import (
    DatasetSample,
    read_dsb2018,
    read_paired_folders,
    read_rle_csv,
    read_stack_pair,
    rescaled_sample,
)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, array, check_contrast=False)


@pytest.fixture
def nuclei():
    return [make_nuclei((40, 50), seed=s) for s in (1, 2)]


def test_rle_csv_with_instances(tmp_path, nuclei):
    rows = ["ImageId,EncodedPixels"]
    for i, s in enumerate(nuclei):
        _png(tmp_path / "train" / f"img{i}.png", (s.image / s.image.max() * 255).astype(np.uint8))
        for n in np.unique(s.instances)[1:]:
            rows.append(f"img{i},{rle_encode(s.instances == n)}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    samples = read_rle_csv(tmp_path / "train.csv")  # the image folder is found beside the CSV
    assert [x.id for x in samples] == ["img0", "img1"]
    for sample, s in zip(samples, nuclei, strict=False):
        assert sample.image.shape == (40, 50)
        np.testing.assert_array_equal(sample.labels, s.instances > 0)
        assert sample.instances.max() == len(np.unique(s.instances)) - 1
    (tmp_path / "bad.csv").write_text("ImageId,EncodedPixels\nimg0,1 2 3\n")
    with pytest.raises(RLEError, match="img0 .mask 1.: run-length string has 3 values"):
        read_rle_csv(tmp_path / "bad.csv", tmp_path / "train")


def test_rle_csv_with_classes_and_row_major(tmp_path):
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    _png(tmp_path / "images" / "a.png", image)
    labels = np.array([[0, 1, 1, 0], [2, 2, 0, 0], [0, 0, 0, 1]], np.uint8)
    (tmp_path / "labels.csv").write_text(
        "id,rle,ClassId\n"
        f"a,{rle_encode(labels == 1, order='C')},1\n"
        f"a,{rle_encode(labels == 2, order='C')},2\n"
    )
    [sample] = read_rle_csv(tmp_path / "labels.csv", tmp_path / "images", order="C")
    np.testing.assert_array_equal(sample.labels, labels)
    assert sample.instances is None
    with pytest.raises(ValueError, match="no column 'mask'"):
        read_rle_csv(tmp_path / "labels.csv", tmp_path / "images", rle_column="mask")


def test_dsb2018_folders(tmp_path, nuclei):
    s = nuclei[0]
    _png(
        tmp_path / "abc" / "images" / "abc.png",
        np.dstack([s.image.astype(np.uint8)] * 3 + [np.full(s.image.shape, 255, np.uint8)]),
    )  # RGBA, as DSB2018 ships
    for n in np.unique(s.instances)[1:]:
        _png(tmp_path / "abc" / "masks" / f"m{n}.png", ((s.instances == n) * 255).astype(np.uint8))
    [sample] = read_dsb2018(tmp_path)
    assert sample.id == "abc" and sample.image.shape == (40, 50, 3)
    assert sample.instances.max() == len(np.unique(s.instances)) - 1
    np.testing.assert_array_equal(sample.labels, s.instances > 0)
    # an empty masks/ folder is an image without nuclei ...
    _png(tmp_path / "empty" / "images" / "empty.png", s.image.astype(np.uint8))
    (tmp_path / "empty" / "masks").mkdir()
    empty = read_dsb2018(tmp_path)[1]
    assert empty.id == "empty" and empty.instances.max() == 0
    # ... a missing one an unannotated (test) image, refused rather than read as background
    _png(tmp_path / "test1" / "images" / "test1.png", s.image.astype(np.uint8))
    with pytest.raises(StackReadError, match="1 of the 3 images .* no masks/ folder .*test1"):
        read_dsb2018(tmp_path)
    assert [x.id for x in read_dsb2018(tmp_path, ids=["abc"])] == ["abc"]


def test_real_dsb2018_csv_equals_its_mask_folders(shared_data):
    root = shared_data / "dsb2018"
    ids = (root / "subset_index.txt").read_text().split("\n")[1:3]
    ids = [line.split()[0] for line in ids]
    from_csv = {
        s.id: s
        for s in read_rle_csv(root / "stage1_train_labels_subset.csv", root / "stage1_train")
    }
    for sample in read_dsb2018(root / "stage1_train", ids=ids):
        np.testing.assert_array_equal(sample.labels, from_csv[sample.id].labels)
        assert sample.instances.max() == from_csv[sample.id].instances.max()


def test_paired_folders_and_stacks(tmp_path, nuclei):
    for i, s in enumerate(nuclei):
        _png(tmp_path / "train" / f"f{i}.png", s.image.astype(np.uint8))
        _png(tmp_path / "trainannot" / f"f{i}.png", s.semantic.astype(np.uint8))
    samples = read_paired_folders(tmp_path / "train", tmp_path / "trainannot")
    assert [x.id for x in samples] == ["f0", "f1"]
    np.testing.assert_array_equal(samples[1].labels, nuclei[1].semantic)
    (tmp_path / "trainannot" / "f1.png").rename(tmp_path / "trainannot" / "other.png")
    with pytest.raises(ValueError, match="do not pair up"):
        read_paired_folders(tmp_path / "train", tmp_path / "trainannot")
    tifffile.imwrite(tmp_path / "img.tif", np.stack([s.image for s in nuclei]))
    tifffile.imwrite(tmp_path / "lab.tif", np.stack([s.semantic for s in nuclei]))
    planes = read_stack_pair(tmp_path / "img.tif", tmp_path / "lab.tif")
    assert len(planes) == 2 and planes[1].labels.shape == (40, 50)


def test_load_dataset_recognises_each_layout(tmp_path, nuclei):
    from napari_segkit.kaggle.datasets import load_dataset

    s = nuclei[0]
    image8 = s.image.astype(np.uint8)
    _png(tmp_path / "dsb" / "x1" / "images" / "x1.png", image8)
    _png(tmp_path / "dsb" / "x1" / "masks" / "a.png", ((s.instances == 1) * 255).astype(np.uint8))
    _png(tmp_path / "imgs" / "x1.png", image8)
    (tmp_path / "train.csv").write_text(
        f"ImageId,EncodedPixels\nx1,{rle_encode(s.instances == 1)}\n"
    )
    _png(tmp_path / "train" / "a.png", image8)
    _png(tmp_path / "trainannot" / "a.png", s.semantic.astype(np.uint8))
    tifffile.imwrite(tmp_path / "img.tif", np.stack([s.image] * 2))
    tifffile.imwrite(tmp_path / "lab.tif", np.stack([s.semantic] * 2))
    from_dsb = load_dataset(tmp_path / "dsb")
    from_csv = load_dataset(tmp_path / "train.csv")
    np.testing.assert_array_equal(from_dsb[0].labels, s.instances == 1)
    np.testing.assert_array_equal(from_csv[0].labels, s.instances == 1)
    assert len(load_dataset(tmp_path / "train", tmp_path / "trainannot")) == 1
    assert len(load_dataset(tmp_path / "img.tif", tmp_path / "lab.tif")) == 2
    with pytest.raises(ValueError, match="cannot tell the layout"):
        load_dataset(tmp_path / "train")


def test_instance_folders_give_instances_and_their_foreground(tmp_path, nuclei):
    """StarDist's images/ + masks/ layout: each mask's ids become the sample's instances,
    its foreground the labels; load_dataset recognises the folder; float masks are refused."""
    from napari_segkit.kaggle.datasets import load_dataset

    for i, s in enumerate(nuclei):
        _png(tmp_path / "set" / "images" / f"n{i}.png", s.image.astype(np.uint8))
        _png(tmp_path / "set" / "masks" / f"n{i}.png", s.instances.astype(np.uint16))
    samples = load_dataset(tmp_path / "set")
    assert [x.id for x in samples] == ["n0", "n1"]
    for sample, s in zip(samples, nuclei, strict=True):
        np.testing.assert_array_equal(sample.instances, s.instances)
        np.testing.assert_array_equal(sample.labels, s.instances > 0)
        assert sample.labels.dtype == np.uint8 and s.instances.max() > 1
    # the same folders without instances=True are class ids (CamVid), as before
    classes = read_paired_folders(tmp_path / "set" / "images", tmp_path / "set" / "masks")
    assert classes[0].instances is None and classes[0].labels.max() == nuclei[0].instances.max()
    tifffile.imwrite(tmp_path / "set" / "masks" / "n1.tif", nuclei[1].instances * 0.5)
    (tmp_path / "set" / "masks" / "n1.png").unlink()
    with pytest.raises(ValueError, match="n1.tif.* float64 values: instance masks must be"):
        load_dataset(tmp_path / "set")


def test_a_rescaled_sample_keeps_its_ids_and_dtypes():
    """Magnified 1.5x: every side round(n * 1.5); no instance id is invented or lost; the
    uint8 image stays uint8 unless another dtype is asked for; labels follow instances."""
    image = np.zeros((40, 50, 3), np.uint8)
    instances = np.zeros((40, 50), np.uint16)
    instances[5:15, 5:15], instances[15:30, 20:40] = 3, 7
    image[instances > 0] = 201
    sample = DatasetSample("a", image, (instances > 0).astype(np.uint8), instances)
    big = rescaled_sample(sample, 1.5)
    assert big.id == "a" and big.image.shape == (60, 75, 3) and big.image.dtype == np.uint8
    assert set(np.unique(big.instances)) == {0, 3, 7} and big.instances.dtype == np.uint16
    assert np.array_equal(big.labels, big.instances > 0)
    assert big.image.max() == 201  # bilinear within the values there were, rounded
    small = rescaled_sample(sample, 0.5, image_dtype=np.float32)
    assert small.image.shape == (20, 25, 3) and small.image.dtype == np.float32
    assert set(np.unique(small.instances)) == {0, 3, 7}
    assert rescaled_sample(DatasetSample("b", image[..., 0], instances, None), 2).instances is None
