"""Submissions, fold ensembles, post-processing and tuning with real (tiny and bundled) models."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_segkit.cli import main
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.kaggle import (
    ensemble_probabilities,
    make_submission,
    postprocess,
    read_submission,
    submission_rows,
    tune_postprocessing,
)
from napari_segkit.models import load_model
from napari_segkit.samples import SYNTHETIC_MODEL as DEFAULT_MODEL  # a 2-class model
from napari_segkit.tiling import predict


@pytest.fixture(scope="module")
def test_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("test_images")
    samples = {f"img{i}": make_nuclei((96, 80), seed=40 + i) for i in range(3)}
    for image_id, s in samples.items():
        tifffile.imwrite(folder / f"{image_id}.tif", s.image)
    return folder, samples


def test_submission_from_the_bundled_model_parses_back(tmp_path, test_folder):
    folder, samples = test_folder
    out = make_submission([DEFAULT_MODEL], folder, tmp_path / "sub.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "ImageId,EncodedPixels" and len(lines) == 4
    masks = read_submission(out, {k: s.image.shape for k, s in samples.items()})
    for image_id, s in samples.items():
        expected = predict(DEFAULT_MODEL, s.image)
        np.testing.assert_array_equal(masks[image_id], expected > 0)
    with pytest.raises(FileExistsError, match="already exists"):
        make_submission([DEFAULT_MODEL], folder, out)


def test_per_object_rows_and_min_area(tmp_path, test_folder):
    folder, samples = test_folder
    out = make_submission(
        [DEFAULT_MODEL], folder, tmp_path / "objects.csv", layout="object", min_area=30
    )
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    from skimage.measure import label

    for image_id, s in samples.items():
        mask = postprocess(
            ensemble_probabilities([load_model(DEFAULT_MODEL)], s.image), min_area=30
        )
        objects = label(mask, connectivity=1)
        assert sum(r[0] == image_id for r in rows) == objects.max()
        assert np.bincount(objects.ravel())[1:].min() >= 30


def test_ensemble_of_identical_models_equals_one(test_folder):
    _, samples = test_folder
    model = load_model(DEFAULT_MODEL)
    image = samples["img0"].image
    one = ensemble_probabilities([model], image)
    two = ensemble_probabilities([model, load_model(DEFAULT_MODEL)], image)
    np.testing.assert_allclose(two, one, atol=1e-6)
    np.testing.assert_allclose(one, predict(model, image, output="probabilities"), atol=1e-6)


def test_postprocess_thresholds_and_classes():
    p = np.zeros((2, 4, 4), np.float32)
    p[1] = np.linspace(0, 1, 16).reshape(4, 4)
    p[0] = 1 - p[1]
    assert postprocess(p, threshold=0.5).sum() == 8
    assert postprocess(p, threshold=0.9).sum() == 2
    three = np.stack([np.full((2, 2), 0.2), np.full((2, 2), 0.5), np.full((2, 2), 0.3)])
    np.testing.assert_array_equal(postprocess(three, threshold=0.4), np.ones((2, 2)))
    np.testing.assert_array_equal(postprocess(three, threshold=0.6), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\(K, Y, X\)"):
        postprocess(np.zeros((4, 4)))


def test_submission_rows_layouts():
    labels = np.array([[1, 0, 2], [1, 0, 2]])
    assert submission_rows(labels, "a") == [["a", "1 2 5 2"]]
    assert submission_rows(
        labels, "a", layout="class", id_rule="{id}_{class_name}", class_names=["bg", "x", "y"]
    ) == [["a_x", "1 2"], ["a_y", "5 2"]]
    assert submission_rows(np.zeros((2, 2)), "e", layout="object") == [["e", ""]]


def test_tune_finds_the_best_pair(test_folder):
    _, samples = test_folder
    images = [s.image for s in samples.values()]
    truths = [s.semantic for s in samples.values()]
    result = tune_postprocessing(
        [DEFAULT_MODEL], images, truths, thresholds=(0.1, 0.5, 0.99), min_areas=(0, 10000)
    )
    assert len(result["table"]) == 6
    assert result["best"]["min_area"] == 0 and result["best"]["score"] > 0.9
    assert result["table"][-1]["score"] < 0.1  # min area 10000 removes every nucleus


def test_cli_submit_and_tune(tmp_path, test_folder, capsys):
    folder, samples = test_folder
    out = tmp_path / "cli.csv"
    assert (
        main(
            [
                "submit",
                str(DEFAULT_MODEL),
                str(DEFAULT_MODEL),
                str(folder),
                "--out",
                str(out),
                "--columns",
                "id,rle_mask",
                "--tta",
                "flips",
                "-q",
            ]
        )
        == 0
    )
    assert out.read_text().splitlines()[0] == "id,rle_mask"
    assert "3 rows, 2 model(s)" in capsys.readouterr().out
    assert main(["submit", str(DEFAULT_MODEL), str(folder), "--out", str(out), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    for i, s in enumerate(samples.values()):
        tifffile.imwrite(tmp_path / f"l{i}.tif", s.semantic)
    assert (
        main(
            [
                "tune",
                "--model",
                str(DEFAULT_MODEL),
                "--images",
                *[str(folder / f"{k}.tif") for k in samples],
                "--labels",
                *[str(tmp_path / f"l{i}.tif") for i in range(3)],
                "--thresholds",
                "0.4",
                "0.6",
                "--min-areas",
                "0",
                "20",
                "--metric",
                "map",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "best: --threshold" in printed and printed.count("\n") >= 6


def test_image_ids_keep_dots_and_drop_only_the_suffix(tmp_path):
    from skimage.io import imsave

    from napari_segkit.kaggle import list_images

    imsave(tmp_path / "b.v2.png", np.zeros((4, 4), np.uint8), check_contrast=False)
    for name in ("a.ome.tif", "c10.tif", "c9.tif"):
        tifffile.imwrite(tmp_path / name, np.zeros((4, 4), np.uint8))
    assert [i for i, _ in list_images(tmp_path)] == ["a", "b.v2", "c9", "c10"]


def test_object_rows_of_a_boundary_model_are_its_split_instances(tmp_path):
    """Three-class (background / interior / boundary) probabilities: one row per watershed
    instance; the rows decode to non-overlapping masks equal to the predicted instances."""
    import torch

    from napari_segkit.core.instances import boundary_target, instances_from_prediction
    from napari_segkit.core.rle import rle_decode
    from napari_segkit.models import build_model, save_model

    sample = make_nuclei((96, 96), seed=9)
    target = boundary_target(sample.instances)
    probs = np.full((3, 96, 96), 0.05, np.float32)
    for c in range(3):
        probs[c][target == c] = 0.9
    probs /= probs.sum(0)
    expected = instances_from_prediction(probs)
    assert expected.max() >= 2  # touching nuclei among them: the case tests something
    rows = submission_rows(expected > 0, "img", layout="object", instances=expected)
    decoded = [rle_decode(rle, (96, 96)) for _, rle in rows]
    assert len(decoded) == int(expected.max())
    assert np.stack(decoded).sum(0).max() == 1  # no pixel in two objects
    found = {frozenset(np.flatnonzero(m)) for m in decoded}
    wanted = {frozenset(np.flatnonzero(expected == n)) for n in range(1, expected.max() + 1)}
    assert found == wanted
    # and make_submission takes that path for a three-class model file
    torch.manual_seed(3)
    model = save_model(
        tmp_path / "b.safetensors",
        build_model("unet_original", 1, 3, width=4, depth=2),
        tile_size=(64, 64),
    )
    (tmp_path / "test").mkdir()
    tifffile.imwrite(tmp_path / "test" / "img.tif", sample.image)
    out = make_submission([model], tmp_path / "test", tmp_path / "s.csv", layout="object")
    probs = ensemble_probabilities([load_model(model)], sample.image)
    n_objects = int(instances_from_prediction(probs, threshold=0.5).max())
    assert len(out.read_text().splitlines()) - 1 == max(n_objects, 1)


def _boundary_probs(instances):
    from napari_segkit.core.instances import boundary_target

    target = boundary_target(instances)
    probs = np.full((3, *instances.shape), 0.05, np.float32)
    for c in range(3):
        probs[c][target == c] = 0.9
    return probs / probs.sum(0)


def test_tune_searches_the_seed_threshold_of_a_boundary_model_out_of_fold(tmp_path):
    """Issue 16.2: with a boundary model and --metric map the watershed's seed threshold
    is part of the grid, and each image can be predicted by its own fold's model only."""
    import torch

    from napari_segkit.models import build_model, save_model

    samples = [make_nuclei((64, 64), seed=s) for s in (31, 32)]
    torch.manual_seed(0)
    models = [
        save_model(
            tmp_path / f"fold{i}.safetensors",
            build_model("unet_original", 1, 3, width=4, depth=2),
            tile_size=(64, 64),
        )
        for i in range(2)
    ]
    result = tune_postprocessing(
        models,
        [s.image for s in samples],
        [s.instances for s in samples],
        metric="map",
        thresholds=(0.5,),
        min_areas=(0, 5),
        seed_thresholds=(0.6, 0.8),
        assignment=[[0], [1]],
    )
    assert len(result["table"]) == 4
    assert {r["seed_threshold"] for r in result["table"]} == {0.6, 0.8}
    with pytest.raises(ValueError, match="assignment has 1 entries for 2 images"):
        tune_postprocessing(
            models, [s.image for s in samples], [s.instances for s in samples], assignment=[[0]]
        )
    # a two-class model has no seeds to tune
    semantic = tune_postprocessing(
        [DEFAULT_MODEL],
        [samples[0].image],
        [samples[0].instances],
        metric="map",
        thresholds=(0.5,),
        min_areas=(0,),
    )
    assert [r["seed_threshold"] for r in semantic["table"]] == [None]


def test_read_submission_as_instances_refuses_overlapping_objects(tmp_path):
    from napari_segkit.core.rle import rle_encode

    a = np.zeros((6, 6), np.uint8)
    a[1:3, 1:3] = 1
    b = np.zeros((6, 6), np.uint8)
    b[3:5, 3:5] = 1
    rows = [["ImageId", "EncodedPixels"], ["x", rle_encode(a)], ["x", rle_encode(b)], ["y", ""]]
    path = tmp_path / "s.csv"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    got = read_submission(path, {"x": (6, 6), "y": (6, 6)}, instances=True)
    assert got["x"].max() == 2 and (got["x"] == 1).sum() == 4 and not got["y"].any()
    overlapping = b.copy()
    overlapping[2, 2] = 1
    rows[2] = ["x", rle_encode(overlapping)]
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    with pytest.raises(ValueError, match="line 3 .*overlaps an earlier one"):
        read_submission(path, {"x": (6, 6), "y": (6, 6)}, instances=True)


def test_submit_and_evaluate_at_the_models_object_size(tmp_path, held_out_fluorescence, capsys):
    """Kaggle test sets mix pixel sizes (DSB2018's second stage did). A real held-out
    DSB2018 image at 40 % of its pixel size, in the competition's layout: --object-diameter
    auto gives the same objects as predict_objects, scores better than predicting it as
    it is, and is refused for a model that records no object sizes."""
    from skimage.io import imsave
    from skimage.transform import rescale

    from napari_segkit.kaggle import read_dsb2018
    from napari_segkit.kaggle.evaluation import score_models, summarise
    from napari_segkit.samples import DEFAULT_MODEL as NUCLEI
    from napari_segkit.tiling import predict_objects

    sample = held_out_fluorescence
    image = rescale(sample.image.astype(np.float32), 0.4, channel_axis=-1, preserve_range=True)
    truth = rescale(sample.instances, 0.4, order=0, anti_aliasing=False, preserve_range=True)
    (tmp_path / "small" / "images").mkdir(parents=True)
    (tmp_path / "small" / "masks").mkdir()
    imsave(tmp_path / "small" / "images" / "small.png", image.astype(np.uint8))
    for n in np.unique(truth)[1:]:
        mask = ((truth == n) * 255).astype(np.uint8)
        imsave(tmp_path / "small" / "masks" / f"{int(n)}.png", mask, check_contrast=False)
    (small,) = read_dsb2018(tmp_path, ids=["small"])

    tuned = load_model(NUCLEI).info.training["postprocessing"]
    post = {"threshold": tuned["threshold"], "seed_threshold": tuned["seed_threshold"]}
    out = make_submission(
        [NUCLEI], tmp_path, tmp_path / "s.csv", layout="object", min_area=tuned["min_size"],
        object_diameter="auto", **post,
    )  # fmt: skip
    submitted = read_submission(out, {"small": small.image.shape[:2]}, instances=True)["small"]
    expected = predict_objects(NUCLEI, small.image, object_diameter="auto")
    assert expected.scale > 1.5
    found = {frozenset(np.flatnonzero(submitted == n)) for n in np.unique(submitted)[1:]}
    wanted = {frozenset(np.flatnonzero(expected.instances == n)) for n in range(1, 1000)}
    assert found == wanted - {frozenset()}

    auto = score_models(
        NUCLEI, [small], object_diameter="auto", min_size=tuned["min_size"], **post
    )
    plain = score_models(NUCLEI, [small], min_size=tuned["min_size"], **post)
    assert auto[0].ap > plain[0].ap  # as it is, with the tuned post-processing
    args = ["evaluate", str(NUCLEI), "--dataset", str(tmp_path), "--min-area"]
    args += [str(tuned["min_size"]), "--threshold", str(post["threshold"]), "-q"]
    args += ["--seed-threshold", str(post["seed_threshold"]), "--object-diameter", "auto"]
    assert main(args) == 0
    mean_ap = summarise(auto)["all"]["ap"]
    assert f"{mean_ap:.3f}" in capsys.readouterr().out.splitlines()[-1]
    # a model without recorded sizes: said before anything is written
    refused = ["submit", str(DEFAULT_MODEL), str(tmp_path), "--out", str(tmp_path / "x.csv")]
    assert main([*refused, "--object-diameter", "auto"]) == 2
    assert "does not record the object sizes" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
