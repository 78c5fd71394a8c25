from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_segkit.cli import main
from napari_segkit.core.io import read_stack


def test_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "napari_segkit.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for cmd in (
        "info",
        "sample",
        "inspect",
        "models",
        "predict",
        "train",
        "evaluate",
        "demo",
        "submit",
        "tune",
        "export",
    ):
        assert cmd in out


def test_console_script_info():
    out = subprocess.run(["segkit", "info"], capture_output=True, text=True, check=True).stdout
    for name in ("napari", "torch", "segmentation-models-pytorch", "zarr", "devices"):
        assert name in out
    assert "cpu" in out.splitlines()[-1]


def test_sample_writes_readable_files(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--format", "zarr"]) == 0
    image = read_stack(tmp_path / "nuclei_2d.zarr")
    labels = read_stack(tmp_path / "nuclei_2d_labels.zarr")
    assert image.data.shape == labels.data.shape == (256, 256)
    assert set(np.unique(labels.data.compute())) == {0, 1}
    assert "72 nuclei" in capsys.readouterr().out
    # second run refuses to replace the user's files
    assert main(["sample", str(tmp_path), "--format", "zarr"]) == 2


def test_inspect_and_errors(tmp_path, capsys):
    main(["sample", str(tmp_path)])
    assert main(["inspect", str(tmp_path / "nuclei_3d.tif")]) == 0
    assert "(24, 128, 128) uint16, axes ZYX" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "missing.tif")]) == 2
    assert "missing.tif" in capsys.readouterr().err


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_models_lists_the_registry(capsys):
    from napari_segkit.models import list_architectures

    assert main(["models", "-v"]) == 0
    out = capsys.readouterr().out
    for arch in list_architectures():
        assert arch["name"] in out
    assert "growth_rate = 16" in out


def test_train_then_evaluate(tmp_path, capsys):
    from napari_segkit.core.io import write_labels, write_stack
    from napari_segkit.core.synthetic import make_nuclei
    from napari_segkit.models import load_model

    for i, seed in enumerate((1, 2, 3)):
        s = make_nuclei((64, 64), seed=seed)
        write_stack(tmp_path / f"img{i}.tif", s.image)
        write_labels(tmp_path / f"lab{i}.tif", s.semantic)
    images = [str(tmp_path / f"img{i}.tif") for i in range(3)]
    labels = [str(tmp_path / f"lab{i}.tif") for i in range(3)]
    out = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train",
                "--images",
                *images,
                "--labels",
                *labels,
                "--out",
                str(out),
                "--epochs",
                "2",
                "--steps-per-epoch",
                "3",
                "--patch-size",
                "32",
                "-q",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "epoch   1" in text and f"wrote {out}" in text
    assert load_model(out).info.num_classes == 2
    assert main(["evaluate", str(out), "--images", images[0], "--labels", labels[0]]) == 0
    text = capsys.readouterr().out
    assert "Dice" in text and "pixel accuracy" in text
    # a time limit stops early: the best checkpoint is kept, or the user is told there is none
    code = main(
        [
            "train",
            "--images",
            *images,
            "--labels",
            *labels,
            "--out",
            str(tmp_path / "t.safetensors"),
            "--epochs",
            "50",
            "--steps-per-epoch",
            "3",
            "--patch-size",
            "32",
            "-q",
            "--time-limit",
            "0.002",
        ]
    )
    captured = capsys.readouterr()
    assert "time limit" in captured.out + captured.err
    assert (code == 0) == (tmp_path / "t.safetensors").exists()


def test_train_options_arch_loss_and_explicit_validation(tmp_path, capsys):
    from napari_segkit.cli import build_parser
    from napari_segkit.core.io import write_labels, write_stack
    from napari_segkit.core.synthetic import make_nuclei
    from napari_segkit.losses import LOSSES
    from napari_segkit.models import load_model

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    loss_action = next(a for a in train_parser._actions if a.dest == "loss")
    assert tuple(loss_action.choices) == tuple(LOSSES)  # the CLI's choices are the table's
    for i, seed in enumerate((4, 5)):
        s = make_nuclei((48, 48), seed=seed)
        write_stack(tmp_path / f"img{i}.tif", s.image)
        write_labels(tmp_path / f"lab{i}.tif", s.semantic)
    out = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train",
                "--images",
                str(tmp_path / "img0.tif"),
                "--labels",
                str(tmp_path / "lab0.tif"),
                "--val-images",
                str(tmp_path / "img1.tif"),
                "--val-labels",
                str(tmp_path / "lab1.tif"),
                "--out",
                str(out),
                "--arch-option",
                "width=4",
                "--arch-option",
                "depth=2",
                "--loss",
                "weighted_ce",
                "--class-weights",
                "median",
                "--schedule",
                "cosine",
                "--class-names",
                "background,nucleus",
                "--epochs",
                "1",
                "--steps-per-epoch",
                "2",
                "--patch-size",
                "32",
                "--zoom",
                "0.8",
                "1.25",
                "--keep",
                "last",
                "-q",
            ]
        )
        == 0
    )
    info = load_model(out).info
    assert info.options["width"] == 4 and info.class_names == ["background", "nucleus"]
    assert info.training["config"]["augmentation"]["zoom"] == [0.8, 1.25]
    assert info.training["config"]["keep"] == "last"
    assert info.training["n_val_planes"] == 1 and info.training["config"]["schedule"] == "cosine"
    assert len(info.training["config"]["class_weights"]) == 2
    assert (
        main(
            [
                "train",
                "--images",
                str(tmp_path / "img0.tif"),
                "--labels",
                str(tmp_path / "lab0.tif"),
                "--out",
                str(out),
                "--arch-option",
                "width",
            ]
        )
        == 2
    )
    assert "not KEY=VALUE" in capsys.readouterr().err
    # options of the loss: recorded with the run; one the loss does not take is refused
    # before any training, naming the ones it does take
    common = ["train", "--images", str(tmp_path / "img0.tif"), "--labels"]
    common += [str(tmp_path / "lab0.tif"), "--arch-option", "width=4", "--arch-option"]
    common += ["depth=2", "--epochs", "1", "--steps-per-epoch", "1", "--patch-size", "32", "-q"]
    lovasz = tmp_path / "lovasz.safetensors"
    options = ["--loss", "lovasz+border_ce", "--loss-option", "per_image=true"]
    assert main([*common, "--out", str(lovasz), *options, "--loss-option", "ce_weight=0.5"]) == 0
    config = load_model(lovasz).info.training["config"]
    assert config["loss_options"] == {"per_image": True, "ce_weight": 0.5}
    bad = tmp_path / "bad.safetensors"
    assert main([*common, "--out", str(bad), "--loss", "lovasz", "--loss-option", "w=1"]) == 2
    assert "takes no option 'w'; it takes per_image\n" in capsys.readouterr().err
    assert not bad.exists()


def test_train_degrades_image_quality_as_told_and_refuses_impossible_values(tmp_path, capsys):
    """``--blur-sigma`` / ``--blur-probability`` / ``--gamma`` / ``--noise-std`` reach the
    augmentation the model file records; impossible values and a probability without a
    blur are refused before the images are read (the paths do not exist), naming the flag."""
    from napari_segkit.core.io import write_labels, write_stack
    from napari_segkit.core.synthetic import make_nuclei
    from napari_segkit.models import load_model

    sample = make_nuclei((48, 48), seed=4)
    write_stack(tmp_path / "img.tif", sample.image)
    write_labels(tmp_path / "lab.tif", sample.semantic)
    files = ["--images", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lab.tif")]
    missing = ["--images", str(tmp_path / "none.tif"), "--labels", str(tmp_path / "none.tif")]
    short = ["--arch-option", "width=4", "--arch-option", "depth=2", "--epochs", "1"]
    short += ["--steps-per-epoch", "1", "--patch-size", "32", "-q"]
    out = tmp_path / "degraded.safetensors"
    for wrong, message in [
        (["--blur-probability", "0.5"], "--blur-probability needs --blur-sigma"),
        (["--blur-sigma", "2", "1"], "blur_sigma"),
        (["--gamma", "0", "1"], "gamma"),
        (["--noise-std", "0.2", "0.1"], "noise_std"),
    ]:
        assert main(["train", *missing, "--out", str(out), *short, *wrong]) == 2
        assert message in capsys.readouterr().err
    quality = ["--blur-sigma", "0.5", "2", "--blur-probability", "0.25", "--gamma", "0.7", "1.4"]
    quality += ["--noise-std", "0", "0.05"]
    assert main(["train", *files, "--out", str(out), *short, *quality]) == 0
    augmentation = load_model(out).info.training["config"]["augmentation"]
    assert augmentation["blur_sigma"] == [0.5, 2.0] and augmentation["blur_probability"] == 0.25
    assert augmentation["gamma"] == [0.7, 1.4] and augmentation["noise_std"] == [0.0, 0.05]
    assert augmentation["zoom"] == [1.0, 1.0]  # what was not asked for keeps its default


def test_demo_segments_the_bundled_sample(tmp_path, capsys):
    import imageio.v3 as iio

    assert main(["demo", "--out", str(tmp_path), "-q"]) == 0
    text = capsys.readouterr().out
    dice = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("background", "nucleus"))
    }
    # the default model learnt real DSB2018 nuclei; the synthetic sample is new to it
    assert dice["nucleus"] > 0.9 and dice["background"] > 0.95
    assert "(touching nuclei split): mean AP" in text
    # labels and the probabilities the instances are made from
    labels = np.asarray(read_stack(tmp_path / "nuclei_2d_labels.zarr", array="labels").data)
    assert labels.shape == (256, 256) and set(np.unique(labels)) == {0, 1, 2}
    overlay = iio.imread(tmp_path / "nuclei_2d_overlay.png")
    assert overlay.shape == (256, 256, 3) and overlay.dtype == np.uint8
    # coloured where nuclei were found, grey elsewhere
    fg = labels > 0
    assert (overlay[fg, 0] != overlay[fg, 1]).mean() > 0.9
    assert (overlay[~fg, 0] == overlay[~fg, 1]).all()


def test_demo_adds_a_real_image(tmp_path, capsys, shared_data):
    import tifffile

    image_id = "00ae65c1c6631ae6f2be1a449902976e6eb8483bf6b0740d00530220832c6d3e"  # tissue
    png = shared_data / "dsb2018-train" / "stage1_train" / image_id / "images" / f"{image_id}.png"
    assert main(["demo", "--out", str(tmp_path), "--image", str(png), "-q"]) == 0
    text = capsys.readouterr().out
    objects = tifffile.imread(tmp_path / f"{image_id}_instances.tif")
    assert objects.shape == (256, 320) and f": {objects.max()} objects" in text
    assert objects.max() > 20  # a crowded tissue image: dozens of nuclei
    assert (tmp_path / f"{image_id}_overlay.png").exists()
    assert "objects about" in text and "px across; predicted" in text  # the size estimate
    assert main(["demo", "--out", str(tmp_path), "--image", str(tmp_path / "nope.png")]) == 2


def test_train_and_evaluate_from_a_dataset_layout(tmp_path, capsys):
    from skimage.io import imsave

    from napari_segkit.core.rle import rle_encode
    from napari_segkit.core.synthetic import make_nuclei
    from napari_segkit.models import load_model

    rows = ["ImageId,EncodedPixels"]
    (tmp_path / "images").mkdir()
    for i in range(3):
        s = make_nuclei((48, 48), seed=20 + i)
        imsave(tmp_path / "images" / f"n{i}.png", s.image.astype(np.uint8), check_contrast=False)
        rows += [f"n{i},{rle_encode(s.instances == k)}" for k in np.unique(s.instances)[1:]]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train",
                "--dataset",
                str(tmp_path / "train.csv"),
                "--out",
                str(out),
                "--arch-option",
                "width=4",
                "--arch-option",
                "depth=2",
                "--epochs",
                "1",
                "--steps-per-epoch",
                "2",
                "--patch-size",
                "32",
                "-q",
            ]
        )
        == 0
    )
    assert load_model(out).info.training["n_train_planes"] + 1 == 3
    assert main(["evaluate", str(out), "--dataset", str(tmp_path / "train.csv")]) == 0
    assert "pixel accuracy" in capsys.readouterr().out
    assert main(["train", "--out", str(out)]) == 2
    assert "give --images and --labels" in capsys.readouterr().err


def test_the_dsb2018_loop_closes(tmp_path, shared_data, capsys):
    """train --dataset builds an RGB model; predict, evaluate and tune read the same PNGs
    (RGBA with an opaque alpha) as the same 3 channels (they refused them before)."""
    source = shared_data / "dsb2018-train" / "stage1_train"
    if not source.is_dir():
        pytest.skip("dsb2018-train not present")
    dataset = tmp_path / "dsb"
    dataset.mkdir()
    ids = sorted(p.name for p in source.iterdir())[:3]
    for image_id in ids:
        (dataset / image_id).symlink_to(source / image_id)  # read in place, never copied
    model = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train",
                "--dataset",
                str(dataset),
                "--out",
                str(model),
                "--epochs",
                "1",
                "--steps-per-epoch",
                "1",
                "--batch-size",
                "1",
                "--patch-size",
                "64",
                "--val-fraction",
                "0",
                "--arch-option",
                "width=4",
                "--arch-option",
                "depth=2",
                "-q",
            ]
        )
        == 0
    )
    png = dataset / ids[0] / "images" / f"{ids[0]}.png"
    assert main(["predict", str(model), str(png), str(tmp_path / "p.tif"), "-q"]) == 0
    assert main(["evaluate", str(model), "--dataset", str(dataset), "-q"]) == 0
    assert (
        main(
            [
                "tune",
                "--model",
                str(model),
                "--dataset",
                str(dataset),
                "--thresholds",
                "0.5",
                "--min-areas",
                "0",
                "-q",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "pixel accuracy" in out and "best: --threshold 0.5" in out
    assert "instances (connected components), DSB2018 scores:" in out
    assert "mAP" in out and "AP@0.5" in out
    assert any(line.split()[:2] == ["all", "3"] for line in out.splitlines())
    # a boundary model (trained on the layout's instances) is scored after its watershed
    boundary = tmp_path / "b.safetensors"
    assert (
        main(
            [
                "train",
                "--dataset",
                str(dataset),
                "--out",
                str(boundary),
                "--target",
                "boundary",
                "--epochs",
                "1",
                "--steps-per-epoch",
                "1",
                "--batch-size",
                "1",
                "--patch-size",
                "64",
                "--val-fraction",
                "0",
                "--arch-option",
                "width=4",
                "--arch-option",
                "depth=2",
                "-q",
            ]
        )
        == 0
    )
    assert main(["evaluate", str(boundary), "--dataset", str(dataset), "-q", "--errors"]) == 0
    out = capsys.readouterr().out
    assert "boundary" in out and "instances (watershed)" in out
    # --errors: every true and predicted object counted once, in one outcome
    header, *rows = out[out.index("at IoU 0.5") :].splitlines()[1:]
    assert header.split() == [
        "kind", "all", "found", "missed", "merged", "split", "outline",
        "all", "found", "spurious", "merger", "fragment", "outline",
    ]  # fmt: skip
    totals = [int(v) for v in next(r for r in rows if r.startswith("all")).split()[1:]]
    assert totals[0] == sum(totals[1:6]) > 0 and totals[6] == sum(totals[7:])


def test_instance_folders_train_a_boundary_model_and_are_scored_as_instances(tmp_path, capsys):
    """A StarDist-style folder (images/ + masks/ of instance ids) is a --dataset like the
    others: train --target boundary learns from its instances, evaluate scores them."""
    from skimage.io import imsave

    from napari_segkit.core.synthetic import make_nuclei

    dataset = tmp_path / "set"
    for folder in ("images", "masks"):
        (dataset / folder).mkdir(parents=True)
    for i in range(2):
        nuclei = make_nuclei((64, 64), seed=i)
        image = (nuclei.image / nuclei.image.max() * 255).astype(np.uint8)
        imsave(dataset / "images" / f"n{i}.png", image, check_contrast=False)
        imsave(
            dataset / "masks" / f"n{i}.png",
            nuclei.instances.astype(np.uint16),
            check_contrast=False,
        )
    model = tmp_path / "b.safetensors"
    argv = ["train", "--dataset", str(dataset), "--out", str(model), "--target", "boundary"]
    argv += ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1"]
    argv += ["--patch-size", "64", "--val-fraction", "0", "--arch-option", "width=4", "-q"]
    assert main(argv) == 0
    from napari_segkit.models import read_model_info

    assert read_model_info(model).class_names[2] == "boundary"
    assert main(["evaluate", str(model), "--dataset", str(dataset), "-q"]) == 0
    out = capsys.readouterr().out
    assert "instances (watershed)" in out and "mAP" in out


def test_export_then_predict_with_the_package(tmp_path, capsys):
    """segkit export writes a bioimage.io package / ONNX / TorchScript that segkit predict
    runs like the model file (the bundled synthetic model, the sample image)."""
    pytest.importorskip("bioimageio.core")
    from napari_segkit.samples import SYNTHETIC_MODEL

    assert main(["sample", str(tmp_path)]) == 0
    image = tmp_path / "nuclei_2d.tif"
    package = tmp_path / "nuclei.zip"
    args = ["export", str(SYNTHETIC_MODEL), str(package), "--author", "A. Tester"]
    assert main([*args, "--cite", "U-Net=10.1007/978-3-319-24574-4_28"]) == 0
    assert main(["export", str(SYNTHETIC_MODEL), str(tmp_path / "nuclei.onnx")]) == 0
    reference = tmp_path / "reference.tif"
    assert main(["predict", str(SYNTHETIC_MODEL), str(image), str(reference), "-q"]) == 0
    expected = np.asarray(read_stack(reference).data)
    for model in (package, tmp_path / "nuclei.onnx"):
        out = tmp_path / f"{model.suffix[1:]}.tif"
        assert main(["predict", str(model), str(image), str(out), "-q"]) == 0
        labels = np.asarray(read_stack(out).data)
        assert (labels == expected).mean() > 0.999  # ties at 0.5 may flip a pixel
    capsys.readouterr()
    assert main(["export", str(SYNTHETIC_MODEL), str(tmp_path / "m.bin")]) == 2
    assert "cannot tell the export format" in capsys.readouterr().err
    assert main(["export", str(SYNTHETIC_MODEL), str(package), "--cite", "no-equals"]) == 2
    assert "TEXT=DOI" in capsys.readouterr().err


def test_demo_on_the_3d_sample_uses_the_bundled_3d_model(tmp_path, capsys):
    """The 3D model (trained on other seeds of the 3D sample's generator) sees the stack in
    3D and beats every 2D model's plane-by-plane Dice (0.88 synthetic, 0.91 DSB2018)."""
    from napari_segkit.samples import DEFAULT_3D_MODEL, SYNTHETIC_MODEL

    assert main(["demo", "--sample", "nuclei_3d", "--out", str(tmp_path), "-q"]) == 0
    dice_3d = _nucleus_dice(capsys.readouterr().out)
    assert dice_3d >= 0.95
    labels = np.asarray(read_stack(tmp_path / "nuclei_3d_labels.zarr").data)
    assert labels.shape == (24, 128, 128)
    assert (tmp_path / "nuclei_3d_overlay.png").is_file()
    args = ["demo", "--sample", "nuclei_3d", "--model", str(SYNTHETIC_MODEL)]
    assert main([*args, "--out", str(tmp_path / "2d"), "-q"]) == 0
    assert dice_3d > _nucleus_dice(capsys.readouterr().out)
    assert DEFAULT_3D_MODEL.stat().st_size < 2_000_000


def test_evaluate_scores_a_3d_model_on_a_stack(capsys):
    """`segkit evaluate` scores a 3D model's (K, Z, Y, X) prediction of a stack against its
    class map (it used to stop at "probabilities must be (K, Y, X)"), and a 2D model's
    plane by plane, as the demo does; `segkit tune` tunes it."""
    from napari_segkit.samples import DEFAULT_3D_MODEL, SAMPLE_DIR, SYNTHETIC_MODEL

    stack = ["--images", str(SAMPLE_DIR / "nuclei_3d.tif")]
    stack += ["--labels", str(SAMPLE_DIR / "nuclei_3d_semantic.tif"), "-q"]
    assert main(["evaluate", str(DEFAULT_3D_MODEL), *stack]) == 0
    dice_3d = _nucleus_dice(capsys.readouterr().out)
    assert dice_3d >= 0.95
    assert main(["evaluate", str(SYNTHETIC_MODEL), *stack]) == 0
    assert 0.8 < _nucleus_dice(capsys.readouterr().out) < dice_3d
    # and `segkit tune` searches the 3D model's threshold / minimum size (in voxels)
    grid = ["--thresholds", "0.3", "0.5", "--min-areas", "0", "50"]
    assert main(["tune", str(DEFAULT_3D_MODEL), *stack, *grid]) == 0  # or --model MODEL
    best = capsys.readouterr().out.splitlines()[-1]
    assert best.startswith("best: --threshold") and float(best.split()[-1][:-1]) >= 0.95


def test_evaluate_scores_objects_of_instance_label_files(tmp_path, capsys):
    """--labels files holding one id per object are scored as objects (mean AP, AP@0.5, the
    errors; 3D stacks under kind "stack") and as foreground for the per-class table."""
    from napari_segkit.models import build_model, save_model
    from napari_segkit.samples import DEFAULT_3D_MODEL, DEFAULT_MODEL, SAMPLE_DIR

    image, objects = (str(SAMPLE_DIR / f"nuclei_2d{s}.tif") for s in ("", "_instances"))
    args = ["evaluate", str(DEFAULT_MODEL), "--images", image, "--labels", objects]
    assert main([*args, "--errors", "-q"]) == 0
    text = capsys.readouterr().out
    assert "instances (watershed), DSB2018 scores:" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("fluorescence")]
    assert len(rows) == 2  # the scores, then the errors
    assert 0.2 < float(rows[0][3]) < float(rows[0][4]) <= 1  # mAP below AP@0.5
    true_all, *outcomes = map(int, rows[1][1:7])
    assert true_all == 70 and sum(outcomes) == 70  # every nucleus counted once
    # a submission of the same model's objects scores the same against the same files
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "nuclei_2d.tif").write_bytes(Path(image).read_bytes())
    csv = tmp_path / "sub.csv"
    submit = ["submit", str(DEFAULT_MODEL), str(tmp_path / "images"), "--out", str(csv)]
    assert main([*submit, "--layout", "object", "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--submission", str(csv), *args[2:]]) == 0
    scored = capsys.readouterr().out
    assert [line.split() for line in scored.splitlines() if line.startswith("fluo")] == rows[:1]
    # a 3D stack: its objects in 3D (the semantic 3D model merges touching nuclei)
    stack = ["--images", str(SAMPLE_DIR / "nuclei_3d.tif")]
    stack += ["--labels", str(SAMPLE_DIR / "nuclei_3d_instances.tif")]
    assert main(["evaluate", str(DEFAULT_3D_MODEL), *stack, "--errors", "-q"]) == 0
    text = capsys.readouterr().out
    assert "instances (connected components), DSB2018 scores:" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("stack")]
    assert rows[0][1] == "1" and int(rows[1][1]) == 45 and sum(map(int, rows[1][2:7])) == 45
    assert int(rows[1][2]) > 0 and float(rows[0][3]) > 0  # 3D objects found, not plane ids
    assert _nucleus_dice(text) >= 0.95  # foreground: the objects' union
    # objects cannot score a model of several foreground classes: refused, with the reason
    torch_model = build_model("unet_original", 1, 3, width=4, depth=2)
    three = save_model(tmp_path / "three.safetensors", torch_model, tile_size=(64, 64))
    assert main(["evaluate", str(three), "--images", image, "--labels", objects, "-q"]) == 2
    assert "predicts 3 classes" in capsys.readouterr().err


def test_evaluate_and_submit_use_the_post_processing_the_model_records(tmp_path, capsys):
    """Without --threshold / --seed-threshold / --min-area, evaluate and submit use the values
    tuned for the model and recorded in its file, as predict, the widgets and the demo do
    (the default model: 0.6 / 0.5 / 30), else 0.5 / 0.7 / 0; given flags win; the choice
    is printed."""
    from napari_segkit.models import read_model_info
    from napari_segkit.samples import DEFAULT_MODEL, SAMPLE_DIR, SYNTHETIC_MODEL

    tuned = read_model_info(DEFAULT_MODEL).training["postprocessing"]
    assert (tuned["threshold"], tuned["seed_threshold"], tuned["min_size"]) == (0.6, 0.5, 30)

    files = ["--images", str(SAMPLE_DIR / "nuclei_2d.tif")]
    files += ["--labels", str(SAMPLE_DIR / "nuclei_2d_instances.tif"), "-q"]

    def evaluate(model, *flags):
        assert main(["evaluate", str(model), *files, *flags]) == 0
        lines = capsys.readouterr().out.splitlines()
        return lines[0], next(line for line in lines if line.startswith("fluorescence"))

    said, recorded = evaluate(DEFAULT_MODEL)
    assert said == (
        "post-processing: --threshold 0.6 --seed-threshold 0.5 --min-area 30 "
        f"(recorded in {DEFAULT_MODEL})"
    )
    said, given = evaluate(DEFAULT_MODEL, "--threshold", "0.6", "--seed-threshold", "0.5")
    assert given == recorded  # the same values, given
    said, given = evaluate(
        DEFAULT_MODEL, "--threshold", "0.5", "--seed-threshold", "0.7", "--min-area", "0"
    )
    assert said == "post-processing: --threshold 0.5 --seed-threshold 0.7 --min-area 0"
    assert given != recorded
    said, _ = evaluate(SYNTHETIC_MODEL)  # records none; no seeds (no watershed)
    assert said == "post-processing: --threshold 0.5 --min-area 0 (the defaults)"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.tif").write_bytes((SAMPLE_DIR / "nuclei_2d.tif").read_bytes())
    csv = str(tmp_path / "a.csv")
    assert main(["submit", str(DEFAULT_MODEL), str(tmp_path / "in"), "--out", csv, "-q"]) == 0
    assert capsys.readouterr().out.startswith("post-processing: --threshold 0.6 ")


def test_tune_records_the_best_post_processing_in_the_model_file(tmp_path, capsys):
    """`segkit tune --record` writes the best values into the model file, weights and every
    other field unchanged; evaluate (and predict, submit, the widgets) then use them."""
    import shutil

    from safetensors.torch import load_file

    from napari_segkit.models import read_model_info
    from napari_segkit.samples import DEFAULT_MODEL, SAMPLE_DIR

    model = tmp_path / "nuclei.safetensors"
    shutil.copy(DEFAULT_MODEL, model)
    files = ["--images", str(SAMPLE_DIR / "nuclei_2d.tif")]
    files += ["--labels", str(SAMPLE_DIR / "nuclei_2d_instances.tif"), "-q"]
    grid = ["--metric", "map", "--thresholds", "0.5", "--seed-thresholds", "0.7", "0.8"]
    assert (
        main(["tune", "--model", str(model), *files, *grid, "--min-areas", "0", "--record"]) == 0
    )
    out = capsys.readouterr().out
    best = out.splitlines()[-2]
    assert best.startswith("best: --threshold 0.5 --min-area 0 --seed-threshold 0.")
    assert out.splitlines()[-1] == f"recorded in {model}"
    before, after = read_model_info(DEFAULT_MODEL), read_model_info(model)
    tuned = after.training["postprocessing"]
    assert (tuned["threshold"], tuned["min_size"]) == (0.5, 0)
    assert best.split()[6] == f"{tuned['seed_threshold']:g}"
    assert tuned["tuned_on"] == "segkit tune on 1 images, metric: map"
    assert {k: v for k, v in after.training.items() if k != "postprocessing"} == {
        k: v for k, v in before.training.items() if k != "postprocessing"
    }
    assert (after.arch, after.options, after.normalization) == (
        before.arch,
        before.options,
        before.normalization,
    )
    old, new = load_file(DEFAULT_MODEL), load_file(model)
    assert old.keys() == new.keys() and all(old[k].equal(new[k]) for k in old)
    assert main(["evaluate", str(model), *files]) == 0
    assert capsys.readouterr().out.startswith(
        f"post-processing: --threshold 0.5 --seed-threshold {tuned['seed_threshold']:g} "
        f"--min-area 0 (recorded in {model})"
    )
    # nothing to record into: refused before the search
    (tmp_path / "notes.safetensors").write_text("hello")
    assert main(["tune", "--model", str(tmp_path / "notes.safetensors"), *files, "--record"]) == 2
    assert "notes.safetensors" in capsys.readouterr().err


def _nucleus_dice(text: str) -> float:
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith("nucleus"))


def test_predict_at_the_models_object_size_writes_labels_and_instances(
    tmp_path, capsys, shrunk_fluorescence
):
    """A real DSB2018 image at 40 % of its pixel size: --object-diameter auto finds the
    nuclei smaller than the default model was trained on and magnifies the image;
    --instances writes one id per nucleus, both at the input's size."""
    from napari_segkit.core.io import write_stack
    from napari_segkit.samples import DEFAULT_MODEL, SYNTHETIC_MODEL
    from napari_segkit.tiling import predict_objects

    small = shrunk_fluorescence
    write_stack(tmp_path / "small.tif", small)
    out, objects = tmp_path / "labels.tif", tmp_path / "objects.tif"
    args = ["predict", str(DEFAULT_MODEL), str(tmp_path / "small.tif"), str(out)]
    assert main([*args, "--object-diameter", "auto", "--instances", str(objects)]) == 0
    printed = capsys.readouterr().out
    expected = predict_objects(DEFAULT_MODEL, small, object_diameter="auto")
    assert f"magnified {expected.scale:.2f}x" in printed and expected.scale > 1.5
    np.testing.assert_array_equal(read_stack(out).data, expected.labels)
    np.testing.assert_array_equal(read_stack(objects).data, expected.instances)
    # errors name the problem, before any prediction
    assert main([*args, "--object-diameter", "auto", "--overwrite", "--instances", "o.png"]) == 2
    assert "--instances must end in .tif" in capsys.readouterr().err
    zarr_args = [*args[:3], str(tmp_path / "x.zarr"), "--object-diameter", "12"]
    assert main(zarr_args) == 2
    assert "predict in memory" in capsys.readouterr().err
    synthetic = ["predict", str(SYNTHETIC_MODEL), *args[2:], "--overwrite"]
    assert main([*synthetic, "--object-diameter", "auto"]) == 2
    assert "does not record the object sizes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--object-diameter", "-4"])
    assert "positive number of pixels" in capsys.readouterr().err


def test_cluster_address_local_n_versus_a_scheduler_named_localhost():
    from napari_segkit.cli import _local_workers

    assert _local_workers("local:3") == 3
    assert _local_workers("local") == 2
    # a scheduler's address, not "local:8786" (which would start 8786 workers)
    assert _local_workers("localhost:8786") is None
    assert _local_workers("tcp://10.0.0.1:8786") is None
    with pytest.raises(ValueError, match="local:x"):
        _local_workers("local:x")
    with pytest.raises(ValueError, match="N >= 1"):
        _local_workers("local:0")
