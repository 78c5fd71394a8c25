"""The module every registered architecture is wrapped in: any H, W in, same H, W out."""

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
    divisor : int
        Spatial multiple the network needs (32 for five poolings).
    pad_mode : str
        ``"reflect"`` (default), ``"replicate"`` or ``"constant"`` (zeros).

    Shape
    -----
    - input: ``(N, C, H, W)``, any H, W >= 1
    - output: ``(N, K, H, W)`` logits, K = `num_classes`
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        arch: str,
        options: dict,
        in_channels: int,
        num_classes: int,
        divisor: int,
        pad_mode: str = "reflect",
    ):
        super().__init__()
        self.net = net
        self.arch = arch
        self.options = dict(options)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.divisor = divisor
        self.pad_mode = pad_mode

    @property
    def activation(self) -> str:
        """``"sigmoid"`` for one output channel, ``"softmax"`` otherwise."""
        return "sigmoid" if self.num_classes == 1 else "softmax"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.arch} expects input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        ph, pw = -h % self.divisor, -w % self.divisor
        if ph or pw:
            x = _pad(x, (0, pw, 0, ph), self.pad_mode)
        out = self.net(x)
        return out[..., :h, :w]


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
