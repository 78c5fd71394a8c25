"""The module every registered architecture is wrapped in: any H, W (and D, for 3D
networks) in, the same size out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationModel(nn.Module):
    """Wrap a network that needs inputs divisible by `divisor`; pad, run, crop back.

    Parameters
    ----------
    net : nn.Module
        Maps ``(N, C, H, W)`` to ``(N, K, H, W)`` logits when H and W are multiples
        of `divisor`.
    arch : str
        Registry name (stored in model files).
    options : dict
        The builder options that recreate `net` (stored in model files).
    in_channels, num_classes : int
        ``num_classes == 1`` means one sigmoid (binary) output channel.
    divisor : int or tuple of int
        Spatial multiple the network needs (32 for five poolings); for a 3D network
        ``(dz, dy, dx)`` (z may pool less than y and x).
    pad_mode : str
        ``"reflect"`` (default), ``"replicate"`` or ``"constant"`` (zeros).
    spatial_dims : {2, 3}

    Shape
    -----
    - input: ``(N, C, H, W)`` (``(N, C, D, H, W)`` in 3D), any size >= 1
    - output: ``(N, K, H, W)`` (``(N, K, D, H, W)``) logits, K = `num_classes`
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        arch: str,
        options: dict,
        in_channels: int,
        num_classes: int,
        divisor,
        pad_mode: str = "reflect",
        spatial_dims: int = 2,
    ):
        super().__init__()
        self.net = net
        self.arch = arch
        self.options = dict(options)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.spatial_dims = int(spatial_dims)
        divisors = tuple(divisor) if isinstance(divisor, (tuple, list)) else (divisor,) * 2
        if len(divisors) == 2 and self.spatial_dims == 3:
            divisors = (divisors[0], *divisors)
        #: the multiple per spatial axis ((y, x), or (z, y, x))
        self.divisors = tuple(int(d) for d in divisors)
        #: the in-plane multiple (tile alignment)
        self.divisor = self.divisors[-1]
        self.pad_mode = pad_mode

    @property
    def activation(self) -> str:
        """``"sigmoid"`` for one output channel, ``"softmax"`` otherwise."""
        return "sigmoid" if self.num_classes == 1 else "softmax"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 + self.spatial_dims or x.shape[1] != self.in_channels:
            axes = "H, W" if self.spatial_dims == 2 else "D, H, W"
            raise ValueError(
                f"{self.arch} expects input of shape (N, {self.in_channels}, {axes}), got "
                f"{tuple(x.shape)}"
            )
        size = x.shape[2:]
        pads = [-n % d for n, d in zip(size, self.divisors, strict=True)]
        if self.spatial_dims == 2:
            if any(pads):
                x = _pad(x, (0, pads[1], 0, pads[0]), self.pad_mode)
            return self.net(x)[..., : size[0], : size[1]]
        if any(pads):
            x = _pad_3d(x, pads, self.pad_mode)
        return self.net(x)[..., : size[0], : size[1], : size[2]]


def _pad(x: torch.Tensor, pad: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Pad right/bottom; reflect padding needs pad < size, so repeat it for tiny inputs."""
    if mode == "constant":
        return F.pad(x, pad)
    while pad[1] or pad[3]:
        step = (0, min(pad[1], x.shape[-1] - 1), 0, min(pad[3], x.shape[-2] - 1))
        if mode == "reflect" and (step[1] or step[3]):
            x = F.pad(x, step, mode="reflect")
        else:  # 1-pixel-wide input: nothing to reflect
            step = (0, pad[1], 0, pad[3])
            x = F.pad(x, step, mode="replicate")
        pad = (0, pad[1] - step[1], 0, pad[3] - step[3])
    return x


def _pad_3d(x: torch.Tensor, pads, mode: str) -> torch.Tensor:
    """Pad the end of D, H and W by `pads`; reflection needs pad < size, so repeat it."""
    if mode == "constant":
        return F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))
    pads = list(pads)
    while any(pads):
        step = [min(p, n - 1) for p, n in zip(pads, x.shape[2:], strict=True)]
        if mode == "reflect" and any(step):
            x = F.pad(x, (0, step[2], 0, step[1], 0, step[0]), mode="reflect")
        else:  # 1-voxel-thin input: nothing to reflect
            step = pads
            x = F.pad(x, (0, step[2], 0, step[1], 0, step[0]), mode="replicate")
        pads = [p - s for p, s in zip(pads, step, strict=True)]
    return x
