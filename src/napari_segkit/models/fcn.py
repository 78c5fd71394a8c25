"""FCN-32s / 16s / 8s (Long, Shelhamer & Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015).

A VGG16-style encoder (five stages of 3x3 conv + ReLU, each ending in 2x2 max pooling),
the classifier turned into convolutions (fc6: 7x7, fc7: 1x1), a 1x1 score layer,
and learned upsampling by transposed convolutions initialised to bilinear
interpolation. FCN-16s adds the scored pool4 maps to the x2-upsampled prediction
(a skip sum), FCN-8s adds pool3 as well, so finer layers refine the coarse output.

Convolutions use same padding (the paper pads the input by 100 pixels and crops
instead), so the output has the input's size for inputs divisible by 32.

Shape: ``(N, C, H, W)`` -> ``(N, K, H, W)``, H and W multiples of 32.
"""

from __future__ import annotations

import torch
from torch import nn

VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}


def _bilinear_kernel(channels: int, kernel: int) -> torch.Tensor:
    """Weights making a transposed convolution a per-channel bilinear upsampling."""
    factor = (kernel + 1) // 2
    centre = factor - 1 if kernel % 2 == 1 else factor - 0.5
    og = torch.arange(kernel, dtype=torch.float32)
    filt = 1 - (og - centre).abs() / factor
    filt2d = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, kernel, kernel)
    weight[range(channels), range(channels)] = filt2d
    return weight


def _upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Transposed conv (kernel 2f, stride f, padding f/2): exactly x f, bilinear at init."""
    up = nn.ConvTranspose2d(
        channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        up.weight.copy_(_bilinear_kernel(channels, 2 * factor))
    return up


class FCN(nn.Module):
    """FCN with a VGG16-style encoder.

    Parameters
    ----------
    in_channels, num_classes : int
    variant : {"fcn32s", "fcn16s", "fcn8s"}
    width : int
        Maps of the first stage (64 in VGG16); later stages scale with it.
    fc_channels : int
        Maps of fc6/fc7 (4096 in the paper).

    Shape
    -----
    ``(N, C, H, W)`` -> ``(N, K, H, W)``, H and W multiples of 32.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        variant: str = "fcn8s",
        width: int = 64,
        fc_channels: int = 4096,
        dropout: float = 0.5,
    ):
        super().__init__()
        if variant not in STRIDES:
            raise ValueError(f"variant must be one of {sorted(STRIDES)}, got {variant!r}")
        self.variant = variant
        self.stages = nn.ModuleList()
        cin = in_channels
        for maps, n_convs in VGG16_STAGES:
            maps = maps * width // 64
            layers = []
            for _ in range(n_convs):
                layers += [nn.Conv2d(cin, maps, 3, padding=1), nn.ReLU(inplace=True)]
                cin = maps
            self.stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
        self.fc = nn.Sequential(
            nn.Conv2d(cin, fc_channels, 7, padding=3),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(fc_channels, fc_channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        stride = STRIDES[variant]
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(512 * width // 64, num_classes, 1)
            self.upscore2 = _upsample(num_classes, 2)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(256 * width // 64, num_classes, 1)
            self.upscore_pool4 = _upsample(num_classes, 2)
        self.upscore_final = _upsample(num_classes, stride)
        for score in (m for name, m in self.named_children() if name.startswith("score")):
            nn.init.zeros_(score.weight)  # as in the paper: skips start neutral
            nn.init.zeros_(score.bias)

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        pool3, pool4 = feats[2], feats[3]
        score = self.score_fr(self.fc(x))  # 1/32
        if self.variant != "fcn32s":
            score = self.upscore2(score) + self.score_pool4(pool4)  # 1/16
        if self.variant == "fcn8s":
            score = self.upscore_pool4(score) + self.score_pool3(pool3)  # 1/8
        return self.upscore_final(score)
