"""Writing a bioimage.io package of a napari-segkit model.

What goes in is described in :mod:`napari_segkit.models.bioimageio`; this module lives
above ``models`` and ``tiling`` because the package's test output is produced by our own
tile engine.
"""

from __future__ import annotations

import datetime
import getpass
import json
import re
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import tifffile
import torch

from ..models.bioimageio.common import ARCH_CALLABLE, CONFIG_KEY, WEIGHT_FORMATS, PackageError
from ..models.bioimageio.source import architecture_source
from ..models.info import ModelInfo

#: default citation per architecture family (the paper behind it)
_CITATIONS = {
    "unet_original": ("Ronneberger et al. 2015, U-Net", "10.1007/978-3-319-24574-4_28"),
    "resunet": ("Drozdzal et al. 2016, residual U-Net", "10.1007/978-3-319-46976-8_19"),
    "fcdensenet": ("Jegou et al. 2017, FC-DenseNet", "10.1109/CVPRW.2017.156"),
    "fcn": ("Long et al. 2015, fully convolutional networks", "10.1109/CVPR.2015.7298965"),
}


def _sizes(model, info: ModelInfo) -> tuple[int, int, int]:
    """(min size, step, halo) of the package's spatial axes."""
    divisor = int(model.divisor)
    tile = min(info.tile_size)
    halo = int(round(info.overlap * tile / 2))
    minimum = divisor * max(1, -(-(2 * halo + 1) // divisor))  # room for the halo
    return minimum, divisor, halo


def _preprocessing(info: ModelInfo, m) -> list:
    norm = info.normalization
    mode = norm.get("mode", "none")
    if mode == "none":
        return []
    if mode == "fixed":
        c = info.in_channels
        mean = np.broadcast_to(np.asarray(norm["mean"], float), (c,)).tolist()
        std = np.broadcast_to(np.asarray(norm["std"], float), (c,)).tolist()
        return [
            m.FixedZeroMeanUnitVarianceDescr(
                kwargs=m.FixedZeroMeanUnitVarianceAlongAxisKwargs(
                    mean=mean, std=std, axis=m.AxisId("channel")
                )
            )
        ]
    invert = norm.get("invert", False)
    if invert == "auto":
        raise PackageError(
            "this model inverts bright-background images automatically (normalization "
            "invert='auto'), which the bioimage.io spec's operations cannot express; "
            "export a model trained without it"
        )
    ops = [
        m.ScaleRangeDescr(
            kwargs=m.ScaleRangeKwargs(
                axes=[m.AxisId("y"), m.AxisId("x")],
                min_percentile=float(norm.get("low", 1.0)),
                max_percentile=float(norm.get("high", 99.8)),
                eps=1e-6,
            )
        )
    ]
    if invert:
        ops.append(m.ScaleLinearDescr(kwargs=m.ScaleLinearKwargs(gain=-1.0, offset=1.0)))
    return ops


def _test_tensors(model_file, image, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(input (1, C, s, s) float32 raw values, output (1, K, s, s) probabilities) from our
    own tile engine on a centre crop of `image`."""
    from ..core.volume import Volume
    from ..tiling import predict

    info = model_file.info
    volume = Volume(np.asarray(image), in_channels=info.in_channels, color=info.color)
    _, ny, nx, _ = volume.shape
    s = min(size, ny, nx)
    y0, x0 = (ny - s) // 2, (nx - s) // 2
    crop = volume.read(0, slice(y0, y0 + s), slice(x0, x0 + s)).astype(np.float32)  # (C, s, s)
    # one tile covering the crop: what a consumer computes on the whole test input
    probabilities = predict(
        model_file,
        np.moveaxis(crop, 0, -1),
        axes="YXC",
        output="probabilities",
        tta=None,
        tile_size=s,
        color="as-is",
    )
    return crop[None], np.asarray(probabilities, np.float32)[None]


def _cover(crop: np.ndarray, probabilities: np.ndarray, info: ModelInfo, path: Path) -> None:
    """A 2:1 PNG: the input (left) and the predicted classes over it (right)."""
    import imageio.v3 as iio

    image = crop[0]
    gray = image.mean(axis=0) if image.shape[0] != 3 else None
    rgb = np.moveaxis(image, 0, -1) if gray is None else np.repeat(gray[..., None], 3, -1)
    low, high = np.percentile(rgb, [1, 99.8])
    rgb = np.clip((rgb - low) / max(high - low, 1e-8), 0, 1)
    labels = probabilities[0].argmax(0)
    colors = np.array(
        [[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in info.class_colors], float
    )
    if len(colors) < probabilities.shape[1]:
        colors = np.resize(colors, (probabilities.shape[1], 3))
    overlay = rgb.copy()
    shown = labels > 0
    overlay[shown] = 0.5 * rgb[shown] + 0.5 * colors[labels[shown]]
    iio.imwrite(path, (np.concatenate([rgb, overlay], axis=1) * 255).astype(np.uint8))


def _documentation(model_file, name: str, formats: list[str]) -> str:
    info = model_file.info
    training = info.training
    lines = [
        f"# {name}",
        "",
        (
            f"A {info.arch} segmentation model exported by napari-segkit "
            f"({info.versions.get('napari-segkit', '?')})."
        ),
        "",
        "## Input and output",
        "",
        (
            f"- input: {info.in_channels} channel(s), (batch, channel, y, x), float32 raw "
            "intensities; the package normalises them "
            f"({json.dumps(info.normalization)})."
        ),
        f"- output: class probabilities, one channel per class: {', '.join(info.class_names)}.",
        (
            f"- spatial sizes: multiples of the network's size step; tile {info.tile_size} with "
            f"overlap {info.overlap} in napari-segkit."
        ),
        f"- weight formats: {', '.join(formats)}.",
        "",
        "## Training",
        "",
    ]
    shown = {k: v for k, v in training.items() if not isinstance(v, (dict, list))}
    lines += [f"- {k}: {v}" for k, v in shown.items()] or ["- not recorded"]
    validation = {k: v for k, v in training.items() if "val" in k.lower() or "dice" in k.lower()}
    lines += [
        "",
        "## Validation",
        "",
        (
            "Each weight format was checked against the PyTorch model when exported (largest "
            "absolute difference of the probabilities <= 1e-4), and the test tensors are "
            "napari-segkit's own tiled prediction of the test input."
        ),
        "",
    ]
    lines += [f"- {k}: {json.dumps(v)[:300]}" for k, v in validation.items()] or [
        "- no validation metrics were recorded with the model"
    ]
    lines += [
        "",
        "## Use in napari-segkit",
        "",
        "```",
        "segkit predict this-package.zip image.tif out.ome.zarr",
        "```",
        "",
    ]
    return "\n".join(lines)


def export_bioimageio(
    model_file,
    out,
    *,
    test_image=None,
    name: str | None = None,
    description: str | None = None,
    authors: list | None = None,
    license: str = "CC-BY-4.0",  # noqa: A002 -- the spec's own field name
    cite: list | None = None,
    tags: list | None = None,
    weight_formats=WEIGHT_FORMATS,
    test_size: int = 256,
) -> Path:
    """Write a bioimage.io model package (zip) of a napari-segkit model.

    Parameters
    ----------
    model_file : path or ModelFile
    out : path
        The ``.zip`` to write (atomically: a failed export leaves no file).
    test_image : array, optional
        ``(Y, X)`` or ``(Y, X, C)`` image the test tensors and cover are cut from
        (default: the synthetic nuclei sample, or a colour version for RGB models).
    name, description : str, optional
        Default: from the model file's name and architecture.
    authors : list of str or dict, optional
        ``"Name"`` or ``{"name": ..., "affiliation": ..., "orcid": ...}``; default:
        ``training["authors"]`` of the model file, else the current user name.
    license : str
        An SPDX licence id for the weights.
    cite : list of dict, optional
        ``{"text": ..., "doi": ...}`` or ``{"text": ..., "url": ...}``; default: the
        architecture's paper and napari-segkit.
    tags : list of str, optional
    weight_formats : sequence of str
        From :data:`WEIGHT_FORMATS`; ``pytorch_state_dict`` is always written.
    test_size : int
        Side of the test tensors (a multiple of the size step is chosen).

    Returns
    -------
    Path

    Raises
    ------
    PackageError
        Something the spec cannot express (named), or a package that fails validation.
    ExportError
        A weight format this architecture cannot be converted to.
    """
    from ..models.export import _require

    _require("bioimageio.spec", "onnx", "onnxruntime")
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as m

    from ..core.atomic import atomic_path
    from ..models.export import save_onnx, save_torchscript
    from ..models.model_file import ModelFile, load_model

    if not isinstance(model_file, ModelFile):
        model_file = load_model(model_file)
    model, info = model_file.model, model_file.info
    if not hasattr(model, "net"):
        raise PackageError("only napari-segkit's own models can be exported (not imported ones)")
    if info.spatial_dims == 3:
        raise PackageError(
            f"{info.arch} is a 3D model: bioimage.io packages of 3D models are not written yet "
            "(export it as ONNX or TorchScript)"
        )
    formats = ["pytorch_state_dict"] + [f for f in weight_formats if f != "pytorch_state_dict"]
    unknown = sorted(set(formats) - set(WEIGHT_FORMATS))
    if unknown:
        raise PackageError(f"unknown weight format(s) {unknown}; use {', '.join(WEIGHT_FORMATS)}")
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise PackageError(f"a bioimage.io package is a .zip file; got '{out}'")
    stem = Path(model_file.path).stem if model_file.path else info.arch
    name = name or f"napari-segkit {stem}"
    minimum, step, halo = _sizes(model, info)
    size = max(minimum, (max(test_size, minimum) // step) * step)
    if test_image is None:
        test_image = _default_test_image(info)

    work = Path(tempfile.mkdtemp(prefix="segkit-bioimageio-"))
    try:
        crop, probabilities = _test_tensors(model_file, test_image, size)
        if crop.shape[-1] % step or crop.shape[-2] % step or crop.shape[-1] < minimum:
            raise PackageError(
                f"the test image is too small: {crop.shape[-2:]} pixels, the package needs "
                f"at least {minimum} x {minimum} in multiples of {step}"
            )
        np.save(work / "test_input.npy", crop)
        np.save(work / "test_output.npy", probabilities)
        tifffile.imwrite(work / "sample_input.tif", crop)
        tifffile.imwrite(work / "sample_output.tif", probabilities)
        _cover(crop, probabilities, info, work / "cover.png")
        torch.save(model.state_dict(), work / "weights.pt")
        source, kwargs = architecture_source(model)
        (work / "segkit_architecture.py").write_text(source)
        weights = {
            "pytorch_state_dict": m.PytorchStateDictWeightsDescr(
                source=work / "weights.pt",
                architecture=m.ArchitectureFromFileDescr(
                    source=work / "segkit_architecture.py", callable=ARCH_CALLABLE, kwargs=kwargs
                ),
                pytorch_version=m.Version(torch.__version__.split("+")[0]),
            )
        }
        if "torchscript" in formats:
            save_torchscript(model_file, work / "weights_torchscript.pt")
            weights["torchscript"] = m.TorchscriptWeightsDescr(
                source=work / "weights_torchscript.pt",
                parent="pytorch_state_dict",
                pytorch_version=m.Version(torch.__version__.split("+")[0]),
            )
        if "onnx" in formats:
            import onnx

            save_onnx(model_file, work / "weights.onnx")
            opset = max(o.version for o in onnx.load(work / "weights.onnx").opset_import)
            weights["onnx"] = m.OnnxWeightsDescr(
                source=work / "weights.onnx", parent="pytorch_state_dict", opset_version=opset
            )
        (work / "README.md").write_text(_documentation(model_file, name, formats))
        channel_names = [f"channel{i}" for i in range(info.in_channels)]
        space = m.ParameterizedSize(min=minimum, step=step)
        descr = m.ModelDescr(
            name=name,
            description=description
            or f"{info.arch} semantic segmentation ({', '.join(info.class_names)}), "
            "exported by napari-segkit",
            authors=[_author(a, m) for a in (authors or _default_authors(info))],
            cite=[_cite(c, m) for c in (cite or _default_cite(info))],
            license=m.LicenseId(license),
            documentation=m.FileDescr(source=work / "README.md"),
            covers=[m.FileDescr(source=work / "cover.png")],
            tags=list(tags or ["segmentation", "napari-segkit", info.arch, "2d"]),
            timestamp=m.Datetime(datetime.datetime.now(datetime.UTC)),
            inputs=[
                m.InputTensorDescr(
                    id=m.TensorId("input"),
                    axes=[
                        m.BatchAxis(),
                        m.ChannelAxis(channel_names=channel_names),
                        m.SpaceInputAxis(id=m.AxisId("y"), size=space),
                        m.SpaceInputAxis(id=m.AxisId("x"), size=space),
                    ],
                    test_tensor=m.FileDescr(source=work / "test_input.npy"),
                    sample_tensor=m.FileDescr(source=work / "sample_input.tif"),
                    data=m.IntervalOrRatioDataDescr(type="float32"),
                    preprocessing=_preprocessing(info, m),
                )
            ],
            outputs=[
                m.OutputTensorDescr(
                    id=m.TensorId("probabilities"),
                    axes=[
                        m.BatchAxis(),
                        m.ChannelAxis(channel_names=_identifiers(info.class_names)),
                        *(
                            m.SpaceOutputAxisWithHalo(
                                id=m.AxisId(a),
                                size=m.SizeReference(
                                    tensor_id=m.TensorId("input"), axis_id=m.AxisId(a)
                                ),
                                halo=halo,
                            )
                            for a in ("y", "x")
                        ),
                    ],
                    test_tensor=m.FileDescr(source=work / "test_output.npy"),
                    sample_tensor=m.FileDescr(source=work / "sample_output.tif"),
                    data=m.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
                )
            ],
            weights=m.WeightsDescr(**weights),
            config={CONFIG_KEY: {"model_info": asdict(info), "outputs": "probabilities"}},
        )
        with atomic_path(out) as tmp:
            save_bioimageio_package(descr, output_path=Path(tmp).with_suffix(".zip"))
            Path(tmp).with_suffix(".zip").rename(tmp)
    except Exception as err:
        if type(err).__name__ == "ValidationError":
            raise PackageError(f"the package does not validate: {err}") from err
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _default_test_image(info: ModelInfo) -> np.ndarray:
    from ..core.synthetic import make_nuclei

    image = make_nuclei((384, 384), seed=7).image
    if info.in_channels == 3:
        return np.repeat(image[..., None], 3, axis=-1)
    if info.in_channels not in (1,) and info.color == "as-is":
        return np.repeat(image[..., None], info.in_channels, axis=-1)
    return image


def _default_authors(info: ModelInfo) -> list:
    named = info.training.get("authors")
    if isinstance(named, list) and named:
        return named
    return [getpass.getuser() or "napari-segkit user"]


def _default_cite(info: ModelInfo) -> list:
    family = next((k for k in _CITATIONS if info.arch.startswith(k)), None)
    entries = []
    if family:
        text, doi = _CITATIONS[family]
        entries.append({"text": text, "doi": doi})
    else:
        entries.append(
            {
                "text": "Iakubovskii, segmentation-models-pytorch",
                "url": "https://github.com/qubvel-org/segmentation_models.pytorch",
            }
        )
    entries.append(
        {"text": "napari-segkit", "url": "https://github.com/napari-segkit/napari-segkit"}
    )
    return entries


def _author(author, m):
    if isinstance(author, str):
        return m.Author(name=author)
    return m.Author(**author)


def _cite(entry, m):
    return m.CiteEntry(**entry)


def _identifiers(names: list[str]) -> list[str]:
    """Channel names as the spec wants them (no spaces)."""
    return [re.sub(r"\W+", "_", n).strip("_") or f"class{i}" for i, n in enumerate(names)]
