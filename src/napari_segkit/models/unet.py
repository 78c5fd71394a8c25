"""The original U-Net and the residual U-Net, with same padding.

* U-Net: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical
  Image Segmentation", MICCAI 2015. Two 3x3 conv + ReLU per level, 2x2 max pooling,
  feature maps doubling per level, upsampling + concatenation of the encoder's maps
  (long skips), 1x1 conv to the classes. Here with same padding (zero or reflect) so
  the output has the input's size, and batch normalisation (optional).
* Residual U-Net: Drozdzal et al., "The Importance of Skip Connections in Biomedical
  Image Segmentation", DLMIA 2016: each level's two convolutions form a residual
  block (short skip: x + F(x), 1x1 projection when the width changes) inside the
  U-Net's long skips.

Upsampling options: ``"transpose"`` (2x2 transposed conv, kernel == stride, so output
pixels never receive overlapping contributions and no checkerboard artefacts
appear), ``"bilinear"`` (bilinear x2 then 1x1 conv) and ``"unpool"`` (max-unpooling
with the encoder's saved pooling indices, SegNet-style, then 1x1 conv).

Shape: ``(N, C, H, W)`` -> ``(N, K, H, W)`` with H, W multiples of ``2 ** depth``
(the registry's wrapper pads any other size).
"""

from __future__ import annotations

import torch
from torch import nn

UPSAMPLING_MODES = ("transpose", "bilinear", "unpool")


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with ReLU (plain) or as a residual block (x + F(x)).

    `dims` 3 makes them 3x3x3 (the 3D U-Net's), or 1x3x3 with `planar` (a level that
    keeps z, for coarse-z voxels).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        *,
        padding_mode: str,
        batch_norm: bool,
        residual: bool,
        dilation: int = 1,
        dims: int = 2,
        planar: bool = False,
    ):
        super().__init__()
        conv_cls, norm_cls = (
            (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        )
        kernel, padding, spread = 3, dilation, dilation
        if planar:
            kernel, padding, spread = (1, 3, 3), (0, dilation, dilation), (1, dilation, dilation)

        def conv(a, b):
            layers = [
                conv_cls(
                    a,
                    b,
                    kernel,
                    padding=padding,
                    dilation=spread,
                    padding_mode=padding_mode,
                    bias=not batch_norm,
                )
            ]
            if batch_norm:
                layers.append(norm_cls(b))
            return layers

        self.body = nn.Sequential(*conv(cin, cout), nn.ReLU(inplace=True), *conv(cout, cout))
        self.residual = residual
        if residual:
            self.shortcut = nn.Identity() if cin == cout else conv_cls(cin, cout, 1, bias=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.body(x)
        if self.residual:
            y = y + self.shortcut(x)
        return self.act(y)


class Up(nn.Module):
    """Upsample x2 halving the width, concatenate the skip, then a ConvBlock."""

    def __init__(self, cin: int, cout: int, *, mode: str, block_kwargs: dict):
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        elif mode == "bilinear":
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(cin, cout, 1),
            )
        else:
            self.unpool = nn.MaxUnpool2d(2, stride=2)
            self.up = nn.Conv2d(cin, cout, 1)
        self.block = ConvBlock(2 * cout, cout, **block_kwargs)

    def forward(self, x, skip, indices=None):
        if self.mode == "unpool":
            # indices come from pooling the skip's maps, which have cout channels; reduce first
            x = self.unpool(self.up(x), indices, output_size=skip.shape[-2:])
        else:
            x = self.up(x)
        return self.block(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with same padding; residual blocks optional.

    Parameters
    ----------
    in_channels, num_classes : int
    width : int
        Feature maps at the first level (64 in the paper); doubles per level.
    depth : int
        Number of poolings (4 in the paper).
    padding_mode : {"zeros", "reflect"}
    upsampling : {"transpose", "bilinear", "unpool"}
    batch_norm : bool
    residual : bool
        Residual blocks in every level (Drozdzal et al. 2016).
    bottleneck_dilation : int
        Dilation of the bottleneck convolutions (atrous convolution: a larger
        receptive field at the coarsest level without more pooling).

    Shape
    -----
    ``(N, C, H, W)`` -> ``(N, K, H, W)``, H and W multiples of ``2 ** depth``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        width: int = 64,
        depth: int = 4,
        padding_mode: str = "zeros",
        upsampling: str = "transpose",
        batch_norm: bool = True,
        residual: bool = False,
        bottleneck_dilation: int = 1,
    ):
        super().__init__()
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(f"upsampling must be one of {UPSAMPLING_MODES}, got {upsampling!r}")
        if padding_mode not in ("zeros", "reflect"):
            raise ValueError(f"padding_mode must be 'zeros' or 'reflect', got {padding_mode!r}")
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        kw = {"padding_mode": padding_mode, "batch_norm": batch_norm, "residual": residual}
        widths = [width * 2**i for i in range(depth + 1)]
        self.upsampling = upsampling
        self.down = nn.ModuleList(
            ConvBlock(a, b, **kw)
            for a, b in zip([in_channels] + widths[:-2], widths[:-1], strict=False)
        )
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=upsampling == "unpool")
        self.bottleneck = ConvBlock(widths[-2], widths[-1], dilation=bottleneck_dilation, **kw)
        self.up = nn.ModuleList(
            Up(widths[i + 1], widths[i], mode=upsampling, block_kwargs=kw)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        skips, indices = [], []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
            if self.upsampling == "unpool":
                x, idx = x
                indices.append(idx)
        x = self.bottleneck(x)
        for up in self.up:
            x = up(x, skips.pop(), indices.pop() if indices else None)
        return self.head(x)
