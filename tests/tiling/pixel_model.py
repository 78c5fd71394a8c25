"""A trivial predictor whose output is known exactly (MONAI tests its sliding window the same way)."""

import torch
from torch import nn


class PixelModel(nn.Module):
    """A trivial predictor with an exactly known output: per-pixel logits
    (sum of channels, minus it, and a constant), so any tiling must reproduce it."""

    def __init__(self, in_channels=1, num_classes=3):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        s = x.sum(1, keepdim=True) * self.scale
        logits = [s, -s, torch.full_like(s, 0.3)][: self.num_classes]
        return torch.cat(logits, 1)

    def expected(self, image_cyx):
        with torch.no_grad():
            x = torch.as_tensor(image_cyx, dtype=torch.float32)[None]
            out = self(x)
            return (torch.sigmoid(out) if self.num_classes == 1 else torch.softmax(out, 1))[
                0
            ].numpy()
