"""The README's Kaggle tutorial, end to end on a small slice of the real DSB2018 data (issue 16.6):
k-fold training, out-of-fold tuning, a fold-ensemble + TTA submission, and its score."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_segkit.cli import main
from napari_segkit.kaggle import image_kind, read_dsb2018, split_by_kind

#: one image of each kind from dsb2018-train
KIND_EXAMPLES = {
    "fluorescence": "00071198d059ba7f5914a526d124d28e6d010c92466da21d4a04cd5413362552",
    "tissue": "00ae65c1c6631ae6f2be1a449902976e6eb8483bf6b0740d00530220832c6d3e",
    "brightfield": "08275a5b1c2dfcd739e8c4888a5ee2d29f83eccfa75185404ced1dc0866ea992",
}


@pytest.fixture(scope="module")
def dsb_slice(shared_data, tmp_path_factory):
    """Four real samples (one tissue) linked into a DSB2018-layout folder, never copied."""
    source = shared_data / "dsb2018-train" / "stage1_train"
    root = tmp_path_factory.mktemp("dsb") / "stage1_train"
    root.mkdir()
    tissue = KIND_EXAMPLES["tissue"]
    ids = [i for i in sorted(p.name for p in source.iterdir())[:4] if i != tissue][:3]
    ids.append(tissue)
    for image_id in ids:
        (root / image_id).symlink_to(source / image_id)
    return root


def test_image_kinds_of_real_examples(shared_data):
    source = shared_data / "dsb2018-train" / "stage1_train"
    samples = read_dsb2018(source, ids=list(KIND_EXAMPLES.values()))
    assert {s.id: image_kind(s.image) for s in samples} == {
        image_id: kind for kind, image_id in KIND_EXAMPLES.items()
    }


def test_split_by_kind_holds_out_every_kind():
    ids = [f"f{i}" for i in range(40)] + [f"t{i}" for i in range(8)] + ["b0", "b1"]
    kinds = ["fl"] * 40 + ["ti"] * 8 + ["bf"] * 2
    train, val = split_by_kind(ids, kinds, fraction=0.15, seed=0)
    assert sorted(train + val) == sorted(ids) and not set(train) & set(val)
    assert sum(v.startswith("f") for v in val) == 6
    assert sum(v.startswith("t") for v in val) == 1 and sum(v.startswith("b") for v in val) == 1
    assert split_by_kind(ids, kinds, fraction=0.15, seed=0) == (train, val)  # reproducible


def test_kaggle_tutorial_end_to_end(dsb_slice, tmp_path, capsys):
    folds = tmp_path / "folds"
    train = [
        "train", "--dataset", str(dsb_slice), "--out", str(folds), "--folds", "2",
        "--target", "boundary", "--color", "gray", "--invert", "auto",
        "--arch-option", "width=4", "--arch-option", "depth=2",
        "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "64",
        "-q",
    ]  # fmt: skip
    assert main(train) == 0
    out = capsys.readouterr().out
    assert "2-fold validation Dice per class" in out
    models = [str(folds / "fold0.safetensors"), str(folds / "fold1.safetensors")]
    tune = [
        "tune", "--model", *models, "--dataset", str(dsb_slice), "--out-of-fold",
        "--metric", "map", "--thresholds", "0.5", "--min-areas", "0", "10",
        "--seed-thresholds", "0.6", "0.8", "-q",
    ]  # fmt: skip
    assert main(tune) == 0
    out = capsys.readouterr().out
    best = next(line for line in out.splitlines() if line.startswith("best:"))
    assert "--seed-threshold" in best and "(map " in best
    submission = tmp_path / "submission.csv"
    submit = [
        "submit", *models, str(dsb_slice), "--out", str(submission), "--layout", "object",
        "--tta", "flips", *best.split("(")[0].split()[1:], "-q",
    ]  # fmt: skip
    assert main(submit) == 0
    with open(submission, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "EncodedPixels"]
    assert {r[0] for r in rows[1:]} == {p.name for p in dsb_slice.iterdir()}
    capsys.readouterr()
    score = ["evaluate", "--submission", str(submission), "--dataset", str(dsb_slice)]
    assert main(score) == 0
    out = capsys.readouterr().out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert table["all"][0] == "4" and "tissue" in table and "fluorescence" in table
    assert all(0.0 <= float(v) <= 1.0 for v in table["all"][1:])
    # --errors: the submission's objects not matched at IoU 0.5, each counted once
    assert main([*score, "--errors"]) == 0
    out_errors = capsys.readouterr().out
    counts = out_errors[out_errors.index("at IoU 0.5") :].splitlines()[2:]
    totals = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in counts}
    assert {"fluorescence", "tissue", "all"} <= set(totals)
    assert totals["all"][0] == sum(totals["all"][1:6]) > 0
    assert totals["all"][6] == sum(totals["all"][7:])
    # the fold ensemble scored directly gives the same instance table
    assert main(["evaluate", *models, "--dataset", str(dsb_slice), "--tta", "flips",
                 *best.split("(")[0].split()[1:], "-q"]) == 0  # fmt: skip
    direct = capsys.readouterr().out
    rows_direct = [line for line in direct.splitlines() if line.startswith("all")]
    assert rows_direct and np.allclose(
        [float(v) for v in rows_direct[0].split()[1:]], [float(v) for v in table["all"]]
    )
