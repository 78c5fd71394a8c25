"""The 3D U-Net (Cicek et al. 2016) and its residual variant, with same padding, and
anisotropic levels for stacks whose voxels are coarse in z.

* 3D U-Net: Cicek, Abdulkadir, Lienkamp, Brox & Ronneberger, "3D U-Net: Learning Dense
  Volumetric Segmentation from Sparse Annotation", MICCAI 2016. The 2D U-Net with every
  operation in 3D: two 3x3x3 conv + BN + ReLU per level, 2x2x2 max pooling, upsampling
  (2x2x2 transposed conv, or trilinear then 1x1x1 conv), concatenated skips. Same padding
  here, so the output has the input's size.
* Residual 3D U-Net: each level's two convolutions form a residual block (as
  :class:`~napari_segkit.models.unet.UNet` with ``residual=True``).
* Anisotropic levels (as nnU-Net plans them for coarse z spacing): the first
  ``anisotropic_levels`` levels use 1x3x3 kernels and pool 1x2x2, so z is not pooled
  until the in-plane resolution has caught up with it.

Shape: ``(N, C, D, H, W)`` -> ``(N, K, D, H, W)`` with D a multiple of
``2 ** (depth - anisotropic_levels)`` and H, W multiples of ``2 ** depth`` (the registry's
wrapper pads any other size).
"""

from __future__ import annotations

import torch
from torch import nn

from .unet import ConvBlock

UPSAMPLING_MODES_3D = ("transpose", "trilinear")


class UNet3D(nn.Module):
    """3D U-Net with same padding; residual blocks and anisotropic levels optional.

    Parameters
    ----------
    in_channels, num_classes : int
    width : int
        Feature maps at the first level (32 in the paper); doubles per level.
    depth : int
        Number of poolings (3 in the paper).
    upsampling : {"transpose", "trilinear"}
    batch_norm : bool
    residual : bool
    anisotropic_levels : int
        How many of the first levels keep z: 1x3x3 kernels and 1x2x2 pooling
        (0: isotropic; at most `depth`).

    Shape
    -----
    ``(N, C, D, H, W)`` -> ``(N, K, D, H, W)``; D a multiple of
    ``2 ** (depth - anisotropic_levels)``, H and W of ``2 ** depth``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        width: int = 16,
        depth: int = 3,
        upsampling: str = "transpose",
        batch_norm: bool = True,
        residual: bool = False,
        anisotropic_levels: int = 0,
    ):
        super().__init__()
        if upsampling not in UPSAMPLING_MODES_3D:
            raise ValueError(
                f"upsampling must be one of {UPSAMPLING_MODES_3D}, got {upsampling!r}"
            )
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        if not 0 <= anisotropic_levels <= depth:
            raise ValueError(
                f"anisotropic_levels must be between 0 and depth ({depth}), got "
                f"{anisotropic_levels}"
            )
        widths = [width * 2**i for i in range(depth + 1)]
        planar = [i < anisotropic_levels for i in range(depth + 1)]
        kw = {"batch_norm": batch_norm, "residual": residual, "padding_mode": "zeros", "dims": 3}
        self.down = nn.ModuleList(
            ConvBlock(a, b, planar=planar[i], **kw)
            for i, (a, b) in enumerate(zip([in_channels] + widths[:-2], widths[:-1], strict=False))
        )
        self.pools = nn.ModuleList(
            nn.MaxPool3d((1, 2, 2) if planar[i] else 2) for i in range(depth)
        )
        self.bottleneck = ConvBlock(widths[-2], widths[-1], planar=planar[depth], **kw)
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(depth)):
            scale = (1, 2, 2) if planar[i] else (2, 2, 2)
            if upsampling == "transpose":
                up = nn.ConvTranspose3d(widths[i + 1], widths[i], kernel_size=scale, stride=scale)
            else:
                up = nn.Sequential(
                    nn.Upsample(scale_factor=scale, mode="trilinear", align_corners=False),
                    nn.Conv3d(widths[i + 1], widths[i], 1),
                )
            self.ups.append(up)
            self.up_blocks.append(ConvBlock(2 * widths[i], widths[i], planar=planar[i], **kw))
        self.head = nn.Conv3d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block, pool in zip(self.down, self.pools, strict=True):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for up, block in zip(self.ups, self.up_blocks, strict=True):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


def divisors_3d(options: dict) -> tuple[int, int, int]:
    """(z, y, x) multiples a :class:`UNet3D` with these options needs.

    Parameters
    ----------
    options : dict
        ``depth`` and ``anisotropic_levels`` (defaults 3 and 0).

    Returns
    -------
    tuple of int
    """
    depth = int(options.get("depth", 3))
    planar = int(options.get("anisotropic_levels", 0))
    return 2 ** (depth - planar), 2**depth, 2**depth
