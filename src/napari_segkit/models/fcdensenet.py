"""FC-DenseNet ("The One Hundred Layers Tiramisu").

Jegou, Drozdzal, Vazquez, Romero & Bengio, "The One Hundred Layers Tiramisu: Fully
Convolutional DenseNets for Semantic Segmentation", CVPR Workshops 2017.

A first 3x3 convolution (48 maps); on the way down, dense blocks (each layer: BN,
ReLU, 3x3 conv to `growth_rate` maps, dropout; its output concatenated to its
input) followed by transitions down (BN, ReLU, 1x1 conv, dropout, 2x2 max pool);
a bottleneck dense block; on the way up, transitions up (3x3 transposed conv,
stride 2) applied **only to the maps the previous dense block created** (not to its
input: that is what keeps the up path's width, and cost, bounded), concatenated
with the skip, then a dense block; finally a 1x1 conv to the classes.

Variants (paper, Table 2 / section 4): FC-DenseNet56 (4 layers per block, k=12),
FC-DenseNet67 (5 layers per block, k=16), FC-DenseNet103 (4,5,7,10,12 | 15 |
12,10,7,5,4, k=16): 1.5 M, 3.5 M and 9.4 M parameters.

Shape: ``(N, C, H, W)`` -> ``(N, K, H, W)``, H and W multiples of 32 (5 poolings).
"""

from __future__ import annotations

import torch
from torch import nn

VARIANTS = {
    "fcdensenet56": {"down_layers": (4, 4, 4, 4, 4), "bottleneck_layers": 4, "growth_rate": 12},
    "fcdensenet67": {"down_layers": (5, 5, 5, 5, 5), "bottleneck_layers": 5, "growth_rate": 16},
    "fcdensenet103": {
        "down_layers": (4, 5, 7, 10, 12),
        "bottleneck_layers": 15,
        "growth_rate": 16,
    },
}


def _bn_relu_conv(cin, cout, kernel, dropout):
    layers = [
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2),
    ]
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class DenseBlock(nn.Module):
    """`n_layers` layers, each seeing all previous maps; returns only the new maps.

    Shape: ``(N, C, H, W)`` -> ``(N, n_layers * growth_rate, H, W)``.
    """

    def __init__(self, cin: int, n_layers: int, growth_rate: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            _bn_relu_conv(cin + i * growth_rate, growth_rate, 3, dropout) for i in range(n_layers)
        )

    def forward(self, x):
        new = []
        for layer in self.layers:
            out = layer(torch.cat([x, *new], dim=1) if new else x)
            new.append(out)
        return torch.cat(new, dim=1)


class FCDenseNet(nn.Module):
    """Fully convolutional DenseNet (Jegou et al. 2017).

    Parameters
    ----------
    in_channels, num_classes : int
    down_layers : tuple of int
        Layers in each dense block of the down path (mirrored on the way up).
    bottleneck_layers : int
    growth_rate : int
        Maps added by each layer (k).
    first_channels : int
        Maps of the first 3x3 convolution (48 in the paper).
    dropout : float
        Dropout after each convolution (0.2 in the paper).

    Shape
    -----
    ``(N, C, H, W)`` -> ``(N, K, H, W)``, H and W multiples of ``2 ** len(down_layers)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        down_layers=(4, 4, 4, 4, 4),
        bottleneck_layers: int = 4,
        growth_rate: int = 12,
        first_channels: int = 48,
        dropout: float = 0.2,
    ):
        super().__init__()
        down_layers = tuple(down_layers)
        self.first = nn.Conv2d(in_channels, first_channels, 3, padding=1)
        self.down_blocks, self.transitions_down = nn.ModuleList(), nn.ModuleList()
        channels, skip_channels = first_channels, []
        for n in down_layers:
            self.down_blocks.append(DenseBlock(channels, n, growth_rate, dropout))
            channels += n * growth_rate  # the block's input is concatenated to its output
            skip_channels.append(channels)
            self.transitions_down.append(
                nn.Sequential(_bn_relu_conv(channels, channels, 1, dropout), nn.MaxPool2d(2))
            )
        self.bottleneck = DenseBlock(channels, bottleneck_layers, growth_rate, dropout)
        upsampled = bottleneck_layers * growth_rate
        self.transitions_up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for n, skip in zip(reversed(down_layers), reversed(skip_channels), strict=False):
            self.transitions_up.append(
                nn.ConvTranspose2d(upsampled, upsampled, 3, stride=2, padding=1, output_padding=1)
            )
            self.up_blocks.append(DenseBlock(upsampled + skip, n, growth_rate, dropout))
            last_in = upsampled + skip
            upsampled = n * growth_rate
        # the last block's input is kept, as in the paper's final stack
        self.head = nn.Conv2d(last_in + upsampled, num_classes, 1)

    def forward(self, x):
        x = self.first(x)
        skips = []
        for block, down in zip(self.down_blocks, self.transitions_down, strict=False):
            x = torch.cat([x, block(x)], dim=1)
            skips.append(x)
            x = down(x)
        new = self.bottleneck(x)
        for up, block in zip(self.transitions_up, self.up_blocks, strict=True):
            x = torch.cat([up(new), skips.pop()], dim=1)
            new = block(x)
        return self.head(torch.cat([x, new], dim=1))
