"""``predict``: sliding-window prediction of any model over any image, in memory or zarr to zarr."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import PredictDefaults
from ..core.locks import output_lock
from ..core.outputs import check_output_path
from ..core.tiles import block_plan
from ..core.volume import Volume, normalization_stats
from ..jobs import report
from ..runtime import CompiledOrEager, amp_dtype, choose_batch_size, resolve_device
from .checks import check_options, tile_pair
from .engine import TileEngine
from .optimize import prepare_for_inference
from .pipeline import StageTimes, run_pipeline
from .sink import ZarrSink, labels_dtype

_DEFAULTS = PredictDefaults()


@dataclass
class _Model:
    module: torch.nn.Module
    in_channels: int
    num_classes: int
    info: object | None  # ModelInfo when loaded from a file
    path: str | None


def _resolve_model(model, device: torch.device) -> _Model:
    from ..models import ModelFile, load_model

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if isinstance(model, ModelFile):
        m = model.model
        return _Model(
            _on_device_eval(m, device),
            m.in_channels,
            m.num_classes,
            model.info,
            model.path or None,
        )
    if isinstance(model, torch.nn.Module):
        in_ch = getattr(model, "in_channels", None)
        k = getattr(model, "num_classes", None)
        if in_ch is None or k is None:
            raise ValueError(
                "a plain torch module needs in_channels and num_classes attributes "
                "(set model.in_channels = C and model.num_classes = K)"
            )
        return _Model(_on_device_eval(model, device), int(in_ch), int(k), None, None)
    raise TypeError(
        f"model must be a model file path, a loaded ModelFile or a torch.nn.Module, "
        f"got {type(model).__name__}"
    )


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ONNX: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: "auto" converts to ONNX for images at least this large: the conversion (about 0.5 s
#: once per loaded model) is repaid by onnxruntime's 8-15 % shorter run (README "A
#: faster CPU runtime", measured on 2048^2 images) from about this size on
ONNXRUNTIME_MIN_PIXELS = 3072 * 3072
RUNTIMES = ("auto", "torch", "onnxruntime")


def _weights_state(module: torch.nn.Module) -> tuple:
    return tuple((t.data_ptr(), t._version) for t in module.parameters())


def _runtime_module(resolved: _Model, runtime: str, dev: torch.device, volume, client):
    """The onnxruntime version of `resolved`'s module where `runtime` asks for it, else
    None (PyTorch runs it). Converted once per loaded model and weights."""
    import importlib.util

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: choose one of {', '.join(RUNTIMES)}")
    module = resolved.module
    if runtime == "torch" or not hasattr(module, "net") or client is not None:
        return None  # exchanged models run in their own runtime; workers use PyTorch
    if dev.type != "cpu":
        if runtime == "onnxruntime":
            raise ValueError(
                f"runtime='onnxruntime' runs on the CPU here; got device {str(dev)!r} "
                "(use device='cpu', or runtime='torch' on a GPU)"
            )
        return None
    cached = _ONNX.get(module)
    if cached is not None and cached[0] == _weights_state(module):
        if not isinstance(cached[1], Exception):
            return cached[1]
        if runtime == "onnxruntime":  # this architecture does not export (remembered)
            raise cached[1]
        return None
    installed = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx", "onnxscript"))
    if runtime == "auto":
        nz, ny, nx, _ = volume.shape
        if not installed or nz * ny * nx < ONNXRUNTIME_MIN_PIXELS:
            return None
    elif not installed:
        raise ImportError(
            "runtime='onnxruntime' needs onnxruntime: `pip install napari-segkit[exchange]`"
        )
    from ..models.exchanged import ExchangedModel, digest_of
    from ..models.export import ExportError, onnx_session, to_onnx

    try:
        data, _ = to_onnx(module, resolved.info)
    except ExportError as err:
        _ONNX[module] = (_weights_state(module), err)
        if runtime == "onnxruntime":
            raise
        warnings.warn(f"running with PyTorch: {err}", stacklevel=3)
        return None
    runner = ExchangedModel(
        onnx_session(data, threads=torch.get_num_threads()),
        in_channels=resolved.in_channels,
        num_classes=resolved.num_classes,
        arch=f"onnxruntime:{module.arch}",
        min_size=(module.divisor, module.divisor),
        step=(module.divisor, module.divisor),
        digest=digest_of(data),
        pad_mode=module.pad_mode,
    )
    _ONNX[module] = (_weights_state(module), runner)
    return runner


def _compiled(module: torch.nn.Module, backend: str) -> torch.nn.Module:
    """The compiled wrapper of a prepared module, built once per module and backend."""
    wrappers = _COMPILED.setdefault(module, {})
    if backend not in wrappers:
        wrappers[backend] = CompiledOrEager(module, backend)
    return wrappers[backend]


def _on_device_eval(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module on `device` in eval mode; a no-op (no walk over its modules) when it is."""
    first = next(module.parameters(), None)
    if first is None or first.device != device or module.training:
        module = module.to(device).eval()
    return module


def _fingerprint(model: _Model, settings: dict) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    # an ONNX network's weights live in its runtime, not in the module's state dict
    h.update(getattr(model.module, "weights_digest", "").encode())
    for name, tensor in model.module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def predict(
    model,
    image,
    *,
    axes: str | None = None,
    tile_size: int | tuple[int, int] | None = None,
    overlap: float | None = None,
    blend: str = _DEFAULTS.blend,
    batch_size: int | None = None,
    device: str = _DEFAULTS.device,
    tta: str | None = _DEFAULTS.tta,
    output: str = _DEFAULTS.output,
    prob_dtype: str = _DEFAULTS.prob_dtype,
    normalization="model",
    out: str | os.PathLike | None = None,
    ome_version: str = "0.5",
    shards: bool = False,
    block_size: int = _DEFAULTS.block_size,
    overwrite: bool = False,
    resume: bool | None = None,
    progress=None,
    cancel=None,
    client=None,
    profile=None,
    compile: bool | str = False,  # noqa: A002 -- torch's own name for it
    amp: bool = True,
    optimize: bool = True,
    color: str | None = None,
    tile_progress=None,
    runtime: str = _DEFAULTS.runtime,
    spacing=None,
    resample: bool = False,
):
    """Predict `image` tile by tile with `model`.

    Parameters
    ----------
    model : path, ModelFile or torch.nn.Module
        A model file (its normalisation, tile size and overlap become the defaults),
        or any module mapping ``(N, C, H, W)`` to ``(N, K, H, W)`` logits that has
        ``in_channels`` and ``num_classes`` attributes (K = 1: sigmoid).
    image : array (numpy, dask, zarr), Stack, or path
        ``(Y, X)``, ``(Y, X, C)``, ``(Z, Y, X)``, ``(Z, Y, X, C)``, or channel-first
        with `axes`. A 2D model predicts stacks plane by plane; a 3D model
        (``unet3d``, ``resunet3d``) tiles them in (Z, Y, X), in memory or into a plain
        ``.zarr`` `out` (also on dask workers).
    axes : str, optional
        Letters from ``"ZYXC"``; inferred from the shape and the model's channels.
    tile_size : int or (int, int)
        Tile side in pixels (default: the model file's, else 256); ``(d, h, w)`` for a
        3D model.
    overlap : float
        Fraction of a tile shared with its neighbour, ``0 <= overlap < 1``
        (default: the model file's, else 0.25).
    blend : {"gaussian", "linear", "centre"}
        How overlapping tiles are combined (see :func:`~napari_segkit.core.tiles.blend_weights`).
    batch_size : int, optional
        Tiles per forward pass. None: 4 on a CPU; on a CUDA GPU chosen from its free
        memory with a real forward (and halved, not crashed, on an out-of-memory error).
    device : {"auto", "cuda", "mps", "cpu"} or torch device string
        ``"auto"``: CUDA, then MPS, then CPU. CUDA runs under autocast (`amp`).
    tta : {None, "flips", "d4"}
        Test-time augmentation: average over 4 flips or the 8 dihedral transforms.
    output : {"labels", "probabilities", "both"}
        Argmax class ids (spatial shape of the input), class probabilities
        ``(K, *spatial)``, or both as ``(labels, probabilities)``.
    prob_dtype : {"float32", "float16", "uint8"}
        Storage of probabilities (uint8: ``round(p * 255)``).
    normalization : "model", None or dict
        ``"model"``: the model file's (none for a plain module); or a spec such as
        ``{"mode": "percentile", "low": 1, "high": 99.8}`` (statistics from a sample
        of regions, not the whole volume).
    out : path, optional
        A ``.zarr`` path: results are written block by block (bounded memory),
        finished blocks are recorded, and a re-run resumes. None: return arrays.
    ome_version : {"0.5", "0.4"}
        For an `out` ending in ``.ome.zarr``: OME-Zarr 0.5 (zarr v3) or 0.4 (zarr v2, for
        older readers). Such an output holds the input image, ``labels/segmentation``
        (with the model's class names and colours) and ``probabilities`` as multiscale
        pyramids built block by block (see ``napari_segkit.tiling.sink.OmeZarrSink``).
    shards : bool
        zarr v3 sharding (OME-Zarr 0.5 only): one file per block instead of one per
        chunk, for volumes with millions of chunks.
    block_size : int
        Y/X side of the blocks written to `out` (rounded to whole output chunks).
    overwrite : bool
        Replace an existing `out` made with other settings.
    resume : bool, optional
        None (default): continue an unfinished `out` made with the same settings,
        start a new one otherwise. True: only continue (an error when `out` is
        missing or was made with other settings). False: refuse to continue an
        unfinished `out` (pass `overwrite` to start again).
    progress : callable, optional
        ``progress(done, total)`` after each block.
    tile_progress : callable, optional
        ``tile_progress(done, total)`` in tiles, after every batch of tiles: finer than
        blocks (a 2D image up to 4096 x 4096 is one block), for progress bars. Runs on
        this machine only (not with `client`); counts the tiles still to predict.
    cancel : threading.Event or callable, optional
        Checked between batches; when set, raises :class:`PredictionCancelled`
        (a zarr output stays resumable and is not marked complete).
    client : dask.distributed.Client, optional
        Run blocks on a dask cluster (needs a model file and `out`); each worker
        loads the model once.
    profile : callable, optional
        Called once at the end with the time spent reading, computing and writing, the
        achieved megapixels per second and the stage that bounds the run (see
        :meth:`napari_segkit.tiling.pipeline.StageTimes.summary`).
    compile : bool or str
        Run the prepared model through ``torch.compile`` (True: its default backend, or
        a backend's name), compiled once per loaded model; any compiler failure falls
        back to the uncompiled model with a warning.
    amp : bool
        Autocast on CUDA (bfloat16 where the GPU supports it, else float16).
    optimize : bool
        Fold batch normalisation into the convolutions of a copy of the model
        (same result up to float rounding, faster; the caller's model is untouched).
    color : {"as-is", "gray", "rgb"}, optional
        How the image's channels become the model's (see
        :class:`~napari_segkit.core.volume.Volume`); default: the model file's. E.g.
        ``color="gray"`` runs a one-channel model on an RGB image (its luminance).
    spacing : sequence of float, optional
        The image's voxel spacing ``(z, y, x)`` (default: from the file's metadata when
        `image` is a path or a read stack). Compared with the spacing a 3D model was
        trained at (its file records it).
    resample : bool
        When the two spacings differ by more than 10 % on an axis: resample the image to
        the model's spacing, predict, and resample the class probabilities back (labels
        are their argmax, so no blocky nearest-neighbour steps). Without it such a
        mismatch is an error that says so.
    runtime : {"auto", "torch", "onnxruntime"}
        What runs the network on the CPU. "onnxruntime" converts the model to ONNX once
        per loaded model (checked against PyTorch to 1e-4, see
        :mod:`napari_segkit.models.export`) and runs it with onnxruntime; "auto" does so
        on the CPU when onnxruntime is installed and the image has at least
        :data:`ONNXRUNTIME_MIN_PIXELS` pixels (or the conversion is cached), falling
        back to PyTorch when the architecture does not export. GPUs and dask workers
        use PyTorch.

    Returns
    -------
    ndarray or zarr array, or a tuple ``(labels, probabilities)`` for ``output="both"``
        In memory when `out` is None, else the zarr arrays inside `out`.

    Raises
    ------
    InputError
        Bad image: dimensions, empty, channels, NaN / infinite values.
    OutputExistsError
        `out` exists with other settings and `overwrite` is False.
    PredictionCancelled
    """
    check_options(
        blend=blend,
        tta=tta,
        output=output,
        prob_dtype=prob_dtype,
        batch_size=batch_size,
        block_size=block_size,
        overlap=overlap,
    )
    if tile_size is not None and not (
        isinstance(tile_size, (tuple, list)) and len(tile_size) == 3
    ):
        tile_pair(tile_size)  # (d, h, w) tiles are for 3D models, checked there
    source_path = _input_path(image)
    if out is not None:
        check_output_path(out, source=source_path, overwrite=overwrite)
    dev = resolve_device(device)
    resolved = _resolve_model(model, dev)
    info = resolved.info
    three_d = getattr(resolved.module, "spatial_dims", 2) == 3
    tile = tile_pair(
        tile_size
        if tile_size is not None and not three_d
        else (info.tile_size[-2:] if info else _DEFAULTS.tile_size)
    )
    if tta == "d4" and tile[0] != tile[1]:
        raise ValueError(f"tta='d4' rotates tiles, so it needs square tiles; got {tile}")
    overlap = float(
        overlap if overlap is not None else (info.overlap if info else _DEFAULTS.overlap)
    )
    source = image  # what workers of a cluster open (a path stays a path)
    if isinstance(image, (str, os.PathLike)):
        from ..core.io import read_stack

        source = str(image)
        image = read_stack(image)
    volume = Volume(
        image,
        axes=axes,
        in_channels=resolved.in_channels,
        name=source_path,
        color=color or (info.color if info else "as-is"),
    )
    _warn_missing_chunks(volume)
    if normalization == "model":
        normalization = info.normalization if info else None
    norm_stats = normalization_stats(volume, normalization)
    if getattr(resolved.module, "spatial_dims", 2) == 3:
        return _predict_3d(
            resolved,
            volume,
            tile_size=tile_size,
            overlap=overlap,
            blend=blend,
            batch_size=batch_size,
            device=dev,
            tta=tta,
            norm_stats=norm_stats,
            output=output,
            prob_dtype=prob_dtype,
            out=out,
            client=client,
            progress=tile_progress or progress if out is None else progress,
            cancel=cancel,
            spacing=spacing if spacing is not None else volume.scale,
            resample=resample,
            zarr_options={
                "block_size": block_size,
                "overwrite": overwrite,
                "resume": resume,
                "image": source,
            },
        )
    runner = _runtime_module(resolved, runtime, dev, volume, client)
    # an exchanged network (ONNX, TorchScript) is optimised by its own runtime
    optimize = optimize and runner is None and not getattr(resolved.module, "weights_digest", 0)
    if runner is not None:
        module = runner
    elif optimize:
        module = prepare_for_inference(
            resolved.module,
            in_channels=resolved.in_channels,
            divisor=int(getattr(resolved.module, "divisor", 1)),
        )
    else:
        module = resolved.module
    if compile and runner is None:
        module = _compiled(module, "inductor" if compile is True else str(compile))
    engine = TileEngine(
        module,
        resolved.num_classes,
        tile,
        overlap,
        blend,
        int(batch_size)
        if batch_size is not None
        else choose_batch_size(
            module, resolved.in_channels, tile, dev, default=_DEFAULTS.batch_size
        ),
        dev,
        tta,
        norm_stats,
        amp,
        amp_dtype=amp_dtype(dev),
        align=int(getattr(resolved.module, "divisor", 1)),
        optimized=optimize,
    )
    engine.requested_batch = batch_size  # the fingerprint records the request ("auto": None)
    if out is None:
        return _predict_in_memory(
            engine, volume, output, prob_dtype, progress, cancel, profile, tile_progress
        )
    return _predict_to_zarr(
        engine,
        resolved,
        volume,
        Path(out),
        output=output,
        prob_dtype=prob_dtype,
        block_size=int(block_size),
        overwrite=overwrite,
        resume=resume,
        progress=progress,
        cancel=cancel,
        client=client,
        image=source,
        axes=axes,
        sink=_make_sink(out, ome_version, shards, resolved),
        profile=profile,
        tile_progress=tile_progress,
    )


def _predict_3d(
    resolved,
    volume,
    *,
    tile_size,
    overlap,
    blend,
    batch_size,
    device,
    tta,
    norm_stats,
    output,
    prob_dtype,
    out,
    client,
    progress,
    cancel,
    spacing=None,
    resample=False,
    zarr_options=None,
):
    """A 3D model over a stack, tiled in (Z, Y, X) (:mod:`.volume3d`): in memory
    (resampled to the model's voxel spacing and back when asked), or block by block into
    a plain zarr store (resumable)."""
    from .volume3d import VolumeTiler, block_result, check_volume_for_3d

    module = resolved.module
    if client is not None and out is None:
        raise ValueError("client= needs out= (workers write their blocks to a zarr store)")
    if out is not None and str(out).rstrip("/").lower().endswith(".ome.zarr"):
        raise ValueError(
            f"{module.arch} is a 3D model: it writes plain .zarr outputs for now, not "
            f".ome.zarr; got '{out}'"
        )
    check_volume_for_3d(volume, module.arch)
    info = resolved.info
    if tile_size is None:
        tile = info.tile_size if info and len(info.tile_size) == 3 else [64, 128, 128]
    elif isinstance(tile_size, int):
        tile = [tile_size] * 3
    else:
        tile = list(tile_size)
    if len(tile) != 3 or not all(isinstance(t, int) and t >= 1 for t in tile):
        raise ValueError(f"a 3D model's tile_size is an int or (d, h, w); got {tile_size!r}")
    from .optimize import prepare_3d

    tiler = VolumeTiler(
        prepare_3d(_on_device_eval(module, device)),
        resolved.num_classes,
        tile,
        overlap,
        blend,
        batch_size or 2,
        device,
        tta,
        norm_stats,
        module.divisors,
    )
    resampled_shape = _resampling(info, spacing, resample, volume)
    if out is not None:
        if resampled_shape is not None:
            raise ValueError("resample=True predicts in memory: call without out=")
        return _predict_3d_to_zarr(
            tiler,
            resolved,
            volume,
            Path(out),
            output,
            prob_dtype,
            progress,
            cancel,
            client=client,
            **zarr_options,
        )
    if resampled_shape is None:
        probabilities = tiler.probabilities(volume, progress=progress, cancel=cancel)
    else:
        from .volume3d import resampled_probabilities

        probabilities = resampled_probabilities(tiler, volume, resampled_shape, progress, cancel)
    result = block_result(probabilities, _encoding(output, prob_dtype))
    return {
        "labels": result.labels,
        "probabilities": result.probabilities,
        "both": (result.labels, result.probabilities),
    }[output]


def _predict_3d_to_zarr(
    tiler,
    resolved,
    volume,
    out,
    output,
    prob_dtype,
    progress,
    cancel,
    *,
    block_size,
    overwrite,
    resume,
    image,
    client=None,
):
    """Blocks of whole chunks -- (32 planes, `block_size`, `block_size`) at most -- each
    computed from the tiles that touch it and written with its marker (resumable)."""
    from .volume3d import predict_to_zarr_3d

    shape = volume.spatial_shape
    chunk_z, chunk = min(32, shape[0]), min(_DEFAULTS.chunk_size, block_size)
    block_yx = max(chunk, block_size // chunk * chunk)
    chunks = (chunk_z, min(chunk, shape[1]), min(chunk, shape[2]))
    block = (chunk_z, block_yx, block_yx)
    settings = _output_identity(
        tiler,
        volume,
        image,
        output,
        prob_dtype,
        block=list(block),
        batch_size=tiler.batch_size,
        format="ZarrSink",
        spatial_dims=3,
    )
    sink = ZarrSink(out)

    def prepare(n_blocks):
        return sink.prepare(
            spatial_shape=shape,
            chunks=chunks,
            num_classes=tiler.num_classes,
            output=output,
            prob_dtype=prob_dtype,
            settings=settings,
            fingerprint=_fingerprint(resolved, settings),
            n_blocks=n_blocks,
            overwrite=overwrite,
            resume=resume,
        )

    with output_lock(out):  # one run per output at a time
        return predict_to_zarr_3d(
            tiler,
            volume,
            sink,
            block=block,
            output=output,
            encode=_encoding(output, prob_dtype),
            prepare=prepare,
            progress=progress,
            cancel=cancel,
            cluster=None
            if client is None
            else {"client": client, "resolved": resolved, "image": image, "axes": volume.axes},
        )


def _resampling(info, spacing, resample: bool, volume):
    """The volume's (Z, Y, X) shape at the model's voxel spacing, or None (same spacing
    within 10 %, or one of them unknown). A mismatch without `resample` is an InputError."""
    from ..core.errors import InputError

    model_spacing = info.spacing if info is not None else None
    if spacing is None or model_spacing is None:
        return None
    spacing = [float(s) for s in spacing][-3:]
    if len(spacing) != 3 or len(model_spacing) != 3 or min(spacing) <= 0:
        raise InputError(f"a stack's spacing is (z, y, x), positive; got {tuple(spacing)}")
    factors = [s / m for s, m in zip(spacing, model_spacing, strict=True)]
    if all(abs(f - 1) <= 0.1 for f in factors):
        return None
    if not resample:
        raise InputError(
            f"the image's voxel spacing {tuple(spacing)} differs from the one the model was "
            f"trained at {tuple(model_spacing)}: pass resample=True (segkit predict "
            "--resample) to predict at the model's spacing and map the result back, or "
            "spacing= if the image's metadata is wrong"
        )
    new_shape = [max(1, round(n * f)) for n, f in zip(volume.shape[:3], factors, strict=True)]
    return tuple(new_shape)


def _make_sink(out, ome_version: str, shards: bool, resolved):
    """A plain zarr sink, or an OME-Zarr one for paths ending in ``.ome.zarr``."""
    from ..core.ome_zarr import OME_VERSIONS

    if not str(out).rstrip("/").lower().endswith(".ome.zarr"):
        return ZarrSink(out)
    if ome_version not in OME_VERSIONS:
        raise ValueError(f"ome_version must be one of {OME_VERSIONS}, got {ome_version!r}")
    if shards and ome_version != "0.5":
        raise ValueError("shards need zarr v3, so OME-Zarr 0.5 (ome_version='0.5')")
    from .sink import OmeZarrSink

    return OmeZarrSink(out, version=ome_version, shards=shards)


def _input_path(image) -> str | None:
    """The input's location on disk when there is one (a path, a Stack, a zarr array)."""
    if isinstance(image, (str, os.PathLike)):
        return str(Path(image).resolve())
    path = getattr(image, "path", None)
    if isinstance(path, str) and hasattr(image, "axes"):  # a Stack
        return str(Path(path).resolve())
    store = getattr(image, "store", None)
    root = getattr(store, "root", None) or getattr(store, "path", None)
    if root is not None:  # a zarr array: its store folder and the array inside
        inner = getattr(image, "path", "") or ""
        return str((Path(root) / inner).resolve())
    return None


def _content_signature(volume: Volume, n: int = 16, size: int = 32) -> str:
    """A hash of `n` small regions spread over the input (the whole input when small)."""
    h = hashlib.sha256()
    for region in volume.sample_regions(n=n, size=size, seed=1):
        h.update(np.ascontiguousarray(region).tobytes())
    return h.hexdigest()[:32]


def _warn_missing_chunks(volume: Volume) -> None:
    from ..core.io import missing_chunks

    missing, total = missing_chunks(volume.image)
    if missing:
        warnings.warn(
            f"{missing} of {total} chunks of {volume.name} are absent from its store and are "
            "read as the fill value: fine for regions never written, wrong if files were "
            "deleted",
            stacklevel=3,
        )


def _plane_blocks(volume: Volume, block: int) -> list[tuple[int, tuple[slice, slice]]]:
    nz, ny, nx, _ = volume.shape
    return [(z, b) for z in range(nz) for b in block_plan((ny, nx), (block, block))]


def _spatial_index(volume: Volume, z: int, block) -> tuple:
    return (z, *block) if volume.is_stack else tuple(block)


def _predict_in_memory(
    engine, volume, output, prob_dtype, progress, cancel, profile=None, tile_progress=None
):
    k = max(engine.num_classes, 1)
    # whole planes as blocks (no tile is predicted twice) unless a plane is huge
    blocks = _plane_blocks(
        volume,
        max(4096, engine.tile[0]) if max(volume.shape[1:3]) <= 4096 else _DEFAULTS.block_size,
    )
    labels = np.zeros(volume.spatial_shape, labels_dtype(k)) if output != "probabilities" else None
    probs = np.zeros((k, *volume.spatial_shape), prob_dtype) if output != "labels" else None

    def write(i, p):
        index = _spatial_index(volume, *blocks[i])
        if labels is not None:
            labels[index] = p.labels
        if probs is not None:
            probs[(slice(None), *index)] = p.probabilities

    _run_blocks(
        engine,
        volume,
        blocks,
        range(len(blocks)),
        write,
        progress=progress,
        cancel=cancel,
        n_done=0,
        profile=profile,
        encode=_encoding(output, prob_dtype),
        tile_progress=tile_progress,
    )
    return {"labels": labels, "probabilities": probs, "both": (labels, probs)}[output]


def _run_blocks(
    engine,
    volume,
    blocks,
    todo,
    write,
    *,
    progress,
    cancel,
    n_done,
    profile,
    encode,
    raw=False,
    tile_progress=None,
):
    """The blocks `todo` through the read -> compute -> write pipeline (see tiling.pipeline)."""
    times = StageTimes()
    done = [n_done]
    on_batch = None
    if tile_progress is not None:
        tiles = {"done": 0, "total": sum(engine.count_tiles(volume, blocks[i][1]) for i in todo)}
        tile_progress(0, tiles["total"])

        def on_batch(n):
            tiles["done"] += n
            tile_progress(tiles["done"], tiles["total"])

    def read(i):
        z, b = blocks[i]
        return engine.read_block(volume, z, b), (volume.read_pixels(z, *b) if raw else None)

    def written(i):
        done[0] += 1
        times.blocks += 1
        _, (ys, xs) = blocks[i]
        times.pixels += (ys.stop - ys.start) * (xs.stop - xs.start)
        report(progress, done[0], len(blocks))

    run_pipeline(
        todo,
        read,
        lambda data: (
            engine.compute_block(data[0], cancel, encode=encode, on_batch=on_batch),
            data[1],
        ),
        lambda i, result: write(i, *result) if raw else write(i, result[0]),
        on_written=written,
        times=times,
    )
    if profile is not None:
        profile(times.summary())


def _output_identity(engine, volume, image, output, prob_dtype, **specific) -> dict:
    """The settings a zarr output records (and a resume must match): the input, the
    tiling of `engine` (a TileEngine or a 3D VolumeTiler), what is written, and the
    engine-`specific` entries (block, batch size, format, ...)."""
    return {
        "input_shape": list(np.shape(volume.image)),
        "input_dtype": str(np.dtype(volume.image.dtype)),
        "axes": volume.axes,
        "tile_size": list(engine.tile),
        "overlap": engine.overlap,
        "blend": engine.blend,
        "tta": engine.tta,
        "output": output,
        "prob_dtype": prob_dtype,
        "normalization": engine.norm_stats,
        "num_classes": engine.num_classes,
        # which input: its path and a signature of its content (a resume with another
        # image of the same shape must not mix the two)
        "input": {"path": _input_path(image), "signature": _content_signature(volume)},
        **specific,
    }


def _predict_to_zarr(
    engine,
    resolved,
    volume,
    out,
    *,
    output,
    prob_dtype,
    block_size,
    overwrite,
    resume,
    progress,
    cancel,
    client,
    image,
    axes,
    sink,
    profile,
    tile_progress=None,
):
    chunk = min(_DEFAULTS.chunk_size, block_size)
    block = max(chunk, block_size // chunk * chunk)  # whole chunks: no two blocks share a chunk
    blocks = _plane_blocks(volume, block)
    chunks = ((1,) if volume.is_stack else ()) + (chunk, chunk)
    chunks = tuple(min(c, s) for c, s in zip(chunks, volume.spatial_shape, strict=False))
    settings = _output_identity(
        engine,
        volume,
        image,
        output,
        prob_dtype,
        block=block,
        # results differ in the last float bits with the batch size: part of the identity
        batch_size=getattr(engine, "requested_batch", engine.batch_size) or "auto",
        format=type(sink).__name__ + (f" {sink.version}" if hasattr(sink, "version") else ""),
        shards=getattr(sink, "shards", False),
    )
    if getattr(sink, "wants_image", False):
        info = resolved.info
        k = max(engine.num_classes, 2)
        names = (list(info.class_names) if info else []) or [f"class {i}" for i in range(k)]
        colors = list(info.class_colors) if info and info.class_colors else _default_colors(k)
        sink.describe(
            image_dtype=np.dtype(volume.image.dtype),
            channels=volume.source_channels,
            scale=volume.scale,
            unit="micrometer" if volume.scale else None,
            block=(block, block),
            class_names=names[:k],
            class_colors=colors[:k],
        )
    with output_lock(out):  # one run per output at a time
        finished = sink.prepare(
            spatial_shape=volume.spatial_shape,
            chunks=chunks,
            num_classes=engine.num_classes,
            output=output,
            prob_dtype=prob_dtype,
            settings=settings,
            fingerprint=_fingerprint(resolved, settings),
            n_blocks=len(blocks),
            overwrite=overwrite,
            resume=resume,
        )
        todo = [i for i in range(len(blocks)) if i not in finished]
        report(progress, len(finished), len(blocks))
        if client is not None:
            from .distributed import run_on_cluster

            run_on_cluster(
                client,
                resolved,
                engine,
                image,
                volume.axes,
                sink,
                blocks,
                todo,
                _encoding(output, prob_dtype),
                progress,
                cancel,
                len(finished),
            )
        else:

            def write(i, result, raw=None):
                sink.write_block(i, _spatial_index(volume, *blocks[i]), result, image=raw)

            _run_blocks(
                engine,
                volume,
                blocks,
                todo,
                write,
                progress=progress,
                cancel=cancel,
                n_done=len(finished),
                profile=profile,
                raw=sink.wants_image,
                encode=_encoding(output, prob_dtype),
                tile_progress=tile_progress,
            )
        sink.mark_complete()
        return sink.open_results(output)


def _encoding(output: str, prob_dtype: str) -> tuple[bool, str | None]:
    """What the device stage returns: (labels wanted, probabilities dtype or None)."""
    return output != "probabilities", prob_dtype if output != "labels" else None


def _default_colors(k: int) -> list[str]:
    from ..models.model_file import DEFAULT_COLORS

    return [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(k)]


__all__ = ["predict"]
