"""Inference-only model preparation: fold batch normalisation into the convolutions.

In eval mode a BatchNorm after a convolution is an affine map per channel, so it
can be folded into the convolution's weights and bias: one pass over memory less
per layer, and the same result up to float rounding. torch.fx finds the
conv -> bn pairs in each traceable sub-module (``torch.fx.experimental.optimization.fuse``
checks that the convolution feeds nothing else); sub-modules that cannot be traced
(data-dependent Python control flow) are searched one level deeper. The caller's
model is never modified: a copy is fused.
"""

from __future__ import annotations

import copy

from torch import nn


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """A copy of `model` (in eval mode) with conv + batch-norm pairs folded together."""
    fused = copy.deepcopy(model).eval()
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules()):
        return fused
    _fuse_children(fused)
    return fused


def _fuse_children(module: nn.Module) -> None:
    from torch import fx
    from torch.fx.experimental.optimization import fuse

    for name, child in list(module.named_children()):
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in child.modules()):
            continue
        try:
            traced = fuse(fx.symbolic_trace(child))
        except Exception:  # not traceable as a whole: try its parts
            _fuse_children(child)
            continue
        setattr(module, name, traced)

