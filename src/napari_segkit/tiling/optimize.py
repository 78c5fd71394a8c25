"""Inference-only model preparation: fold batch normalisation into the convolutions.

(and store the weights channels-last, the layout fast CPU and GPU convolutions prefer)

In eval mode a BatchNorm after a convolution is an affine map per channel, so it
can be folded into the convolution's weights and bias: one pass over memory less
per layer, and the same result up to float rounding. torch.fx finds the
conv -> bn pairs in each traceable sub-module (``torch.fx.experimental.optimization.fuse``
checks that the convolution feeds nothing else); sub-modules that cannot be traced
(data-dependent Python control flow) are searched one level deeper. The caller's
model is never modified: a copy is fused.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import weakref

import torch
from torch import nn

log = logging.getLogger(__name__)


def fuse_for_inference(
    model: nn.Module, *, in_channels: int | None = None, divisor: int = 1
) -> nn.Module:
    """A copy of `model` (in eval mode) with conv + batch-norm pairs folded together.

    The fused copy is checked against the model on one small random input
    ``(1, in_channels, s, s)`` (``s`` a multiple of `divisor`): symbolic tracing can
    succeed yet specialise a branch (e.g. an optional skip connection traced as
    present), so a copy that fails or disagrees is dropped and the unfused copy is
    returned -- same results, only slower.

    Parameters
    ----------
    model : torch.nn.Module
        ``(N, C, H, W)`` -> ``(N, K, H, W)``; not modified.
    in_channels : int, optional
        For the check input (default: ``model.in_channels``).
    divisor : int
        The model's spatial divisor.

    Returns
    -------
    torch.nn.Module
        In eval mode, weights channels-last where that is faster.
    """
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return copy.deepcopy(model).eval()
    channels = in_channels or getattr(model, "in_channels", None)
    if channels is None:
        return copy.deepcopy(model).eval()  # cannot check a fused copy: do not risk it
    # the caller's model is the reference when it is already in eval mode (no copy needed)
    reference = copy.deepcopy(model).eval() if model.training else model
    # first the thorough fusion (Sequential pairs, then torch.fx inside traceable blocks),
    # then the Sequential pairs alone (no tracing: SMP's decoders, whose traces specialise
    # the optional skip connection), else the plain copy
    for trace in (True, False):
        fused = copy.deepcopy(model).eval()
        _fuse_sequential_pairs(fused)
        if trace:
            _fuse_children(fused)
        # NHWC weights: oneDNN (CPU) and cuDNN convolutions run ~20 % faster on them
        # (measured on an SMP U-Net resnet18, 2 CPU cores); the engine feeds NHWC batches
        fused = fused.to(memory_format=torch.channels_last)
        if _agree(reference, fused, int(channels), max(int(divisor), 1)):
            return fused
    return copy.deepcopy(model).eval()


def _fuse_sequential_pairs(module: nn.Module) -> None:
    """Fold each Conv2d (Conv3d) directly followed by a BatchNorm2d (BatchNorm3d) inside an
    nn.Sequential.

    In a Sequential the convolution's output feeds only the batch norm, so folding
    needs no tracing; the batch norm becomes an Identity.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        names = list(child._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = child._modules[first], child._modules[second]
            pair_2d = isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            if pair_2d or (isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d)):
                child._modules[first] = fuse_conv_bn_eval(conv, bn)
                child._modules[second] = nn.Identity()


#: prepared copies: model -> (weights state, device, prepared copy); weak, so a model
#: that is no longer used releases its copy
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: how many times a model was prepared (tests count these, not seconds)
preparations = 0


def prepare_for_inference(
    model: nn.Module, *, in_channels: int | None = None, divisor: int = 1
) -> nn.Module:
    """:func:`fuse_for_inference`, prepared once per model and weights, then reused.

    A folder of 3,000 small images predicted with one loaded model prepares it once.
    The cache follows the weights: training the model in place (any optimiser step),
    loading other weights or moving it to another device prepares it again.

    Parameters
    ----------
    model : torch.nn.Module
    in_channels : int, optional
    divisor : int

    Returns
    -------
    torch.nn.Module
        The prepared copy (shared between calls: do not modify it).
    """
    global preparations
    state = tuple(
        (t.device.type, t.device.index, t.data_ptr(), t._version)
        for t in (*model.parameters(), *model.buffers())
    )
    cached = _PREPARED.get(model)
    if cached is not None and cached[0] == state:
        return cached[1]
    prepared = fuse_for_inference(model, in_channels=in_channels, divisor=divisor)
    preparations += 1
    _PREPARED[model] = (state, prepared)
    return prepared


def _agree(plain: nn.Module, fused: nn.Module, channels: int, divisor: int) -> bool:
    side = divisor * max(1, -(-32 // divisor))  # >= 32 pixels, a multiple of the divisor
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, channels, side, side, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last)
    device = next(plain.parameters(), torch.empty(0)).device
    x = x.to(device)
    try:
        # torch.fx prints the whole traceback of a failing traced module to stderr itself;
        # a fallback is normal, so it is one debug line instead
        with torch.inference_mode(), contextlib.redirect_stderr(io.StringIO()):
            expected, got = plain(x), fused(x)
    except Exception as err:  # noqa: BLE001 -- a broken trace: use the plain copy
        log.debug(
            "batch-norm folding fell back to the plain model: %s: %s", type(err).__name__, err
        )
        return False
    scale = float(expected.abs().max()) or 1.0
    agree = got.shape == expected.shape and float((got - expected).abs().max()) <= 1e-3 * scale
    if not agree:
        log.debug("batch-norm folding fell back to the plain model: the traced copy disagrees")
    return agree


def _fuse_children(module: nn.Module) -> None:
    from torch import fx
    from torch.fx.experimental.optimization import fuse

    for name, child in list(module.named_children()):
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in child.modules()):
            continue
        try:
            traced = fuse(fx.symbolic_trace(child))
        except Exception:  # noqa: BLE001 -- any trace failure: try its parts
            _fuse_children(child)
            continue
        setattr(module, name, traced)


_PREPARED_3D: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare_3d(model: nn.Module) -> nn.Module:
    """A 3D model with its conv + batch-norm pairs folded (a copy, made once per weights),
    checked against the model on a small random volume; the plain model if they disagree.

    Parameters
    ----------
    model : torch.nn.Module
        A 3D SegmentationModel (``divisors``, ``in_channels``); not modified.

    Returns
    -------
    torch.nn.Module
    """
    state = tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))
    cached = _PREPARED_3D.get(model)
    if cached is not None and cached[0] == state:
        return cached[1]
    fused = copy.deepcopy(model).eval()
    _fuse_sequential_pairs(fused)
    fused = fused.to(memory_format=torch.channels_last_3d)
    device = next(model.parameters(), torch.empty(0)).device
    size = [2 * d for d in model.divisors]
    x = torch.randn(1, model.in_channels, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = model.eval()(x.to(device)), fused(x.to(device))
    scale = float(expected.abs().max()) or 1.0
    if float((got - expected).abs().max()) > 1e-3 * scale:
        fused = model
    _PREPARED_3D[model] = (state, fused)
    return fused
