"""Blocks on a dask.distributed cluster: each worker loads the model file once."""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import replace

from ..core.volume import Volume
from ..jobs import PredictionCancelled, raise_if_cancelled, report
from ..runtime import resolve_device

_WORKER_MODELS: dict = {}  # (path, mtime) -> loaded model, per worker process


def _worker_model(path: str, optimize: bool):
    from ..models import load_model
    from .optimize import fuse_for_inference

    key = (path, os.path.getmtime(path), optimize)
    if key not in _WORKER_MODELS:
        _WORKER_MODELS.clear()
        model_file = load_model(path)
        model = model_file.model
        # an exchanged network (ONNX, TorchScript) is optimised by its own runtime
        fused = (
            model
            if getattr(model, "weights_digest", None)
            else fuse_for_inference(
                model, in_channels=model.in_channels, divisor=int(getattr(model, "divisor", 1))
            )
        )
        _WORKER_MODELS[key] = (
            fused if optimize else model,
            model.in_channels,
            model_file.info.color,
        )
    return _WORKER_MODELS[key]


def _open_image(image):
    """What a worker predicts: an array, or a Stack read lazily from its path."""
    from ..core.io import read_stack

    if isinstance(image, tuple):  # (path, read_stack options) of a Stack
        return read_stack(image[0], **image[1])
    if isinstance(image, str):
        return read_stack(image)
    return image


_WORKER_3D: dict = {}


def _run_block_3d(model_path, tiler, image, axes, sink, block_id, block, encode):
    """One 3D block on a worker: the tiles touching it, blended, written, marked done."""
    import copy

    from .optimize import prepare_3d
    from .volume3d import block_result

    key = (model_path, os.path.getmtime(model_path))
    if key not in _WORKER_3D:
        from ..models import load_model

        _WORKER_3D.clear()
        model_file = load_model(model_path)
        _WORKER_3D[key] = (prepare_3d(model_file.model), model_file.info)
    module, info = _WORKER_3D[key]
    local = copy.copy(tiler)
    local.device = resolve_device("auto")
    local.model = module.to(local.device)
    volume = Volume(_open_image(image), axes=axes, in_channels=info.in_channels, color=info.color)
    sink.write_block(
        block_id, block, block_result(local.block_probabilities(volume, block), encode)
    )
    return block_id


def _run_block(model_path, engine, image, axes, sink, block_id, z, block, encode):
    """One block on a worker: read, predict, write, mark done. Returns the block id."""
    image = _open_image(image)
    module, in_channels, color = _worker_model(model_path, engine.optimized)
    device = resolve_device("auto")
    local = replace(engine, model=module.to(device), device=device)
    volume = Volume(image, axes=axes, in_channels=in_channels, color=color)
    result = local.compute_block(local.read_block(volume, z, block), encode=encode)
    index = (z, *block) if volume.is_stack else tuple(block)
    raw = volume.read_pixels(z, *block) if sink.wants_image else None
    sink.write_block(block_id, index, result, image=raw)
    return block_id


def run_on_cluster(
    client,
    resolved,
    engine,
    image,
    axes,
    sink,
    blocks,
    todo,
    encode,
    progress,
    cancel,
    n_done,
    task=_run_block,
):
    """Submit the unfinished blocks to `client`; report progress as they finish.

    Parameters
    ----------
    client : dask.distributed.Client
    resolved : the resolved model (must come from a model file: workers load it)
    engine : TileEngine or VolumeTiler
        Settings; workers use their own copy of the model.
    image : array, Stack or path
        numpy arrays are scattered once; a Stack travels as its path.
    axes : str or None
    sink : ZarrSink
    blocks : list of (z, (slice, slice)), or of ((slice, slice, slice),) for 3D
    task : callable
        What a worker runs per block (``_run_block``, ``_run_block_3d`` for 3D models).
    todo : list of int
        Ids of the blocks still to predict.
    encode : (bool, str or None)
        Labels wanted, probabilities dtype (see ``TileEngine.compute_block``).
    progress : callable or None
        ``progress(done, total)`` as blocks finish.
    cancel : Event, callable or None
    n_done : int
        Blocks finished before this run (resume).

    Returns
    -------
    None

    Raises
    ------
    PredictionCancelled
    """
    import numpy as np
    from dask.distributed import as_completed

    if resolved.path is None:
        raise ValueError(
            "client= needs the model as a model file (path or load_model result) "
            "so that each worker can load it"
        )
    if isinstance(image, np.ndarray):
        image = client.scatter(image, broadcast=True)
    elif hasattr(image, "data") and hasattr(image, "axes") and hasattr(image, "path"):  # a Stack
        options = {k: image.metadata[k] for k in ("array", "level") if image.metadata.get(k)}
        image, axes = (image.path, options), axes or image.axes
    # workers use their own copy of the model
    if dataclasses.is_dataclass(engine):
        light = replace(engine, model=None)
    else:
        light = copy.copy(engine)
        light.model = None
    futures = [
        client.submit(
            task,
            resolved.path,
            light,
            image,
            axes,
            sink,
            i,
            *blocks[i],
            encode,
            pure=False,
        )
        for i in todo
    ]
    done = n_done
    try:
        for future in as_completed(futures):
            future.result()  # re-raises a worker's error here
            done += 1
            report(progress, done, len(blocks))
            raise_if_cancelled(cancel, PredictionCancelled, "prediction cancelled")
    finally:
        for f in futures:
            f.cancel()
