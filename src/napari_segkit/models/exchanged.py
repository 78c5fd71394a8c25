"""Models from elsewhere -- ONNX graphs, TorchScript files, bioimage.io packages -- as the
tile engine sees every model: a module mapping ``(N, C, H, W)`` to ``(N, K, H, W)``
logits for any H and W, with ``in_channels``, ``num_classes`` and ``divisor``.

:class:`ExchangedModel` adapts one: it pads the input to a size the network accepts
(``min + n * step`` per spatial axis, reflecting like
:class:`~napari_segkit.models.SegmentationModel`), orders the axes as the network wants
them, runs it (onnxruntime on the CPU, or a TorchScript module on the model's device),
and crops back. A network that outputs probabilities (ours do, and most bioimage.io
packages) is turned back into logits -- ``log p`` for softmax outputs, ``log(p / (1 -
p))`` for one sigmoid channel -- so the engine's own softmax / sigmoid, blending and
test-time augmentation give back the same probabilities (to float rounding).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from .wrapper import _pad

#: probabilities are clipped away from 0 and 1 before the logarithm
_EPS = 1e-12


class ExchangedModel(nn.Module):
    """A foreign network behind the interface of :class:`SegmentationModel`.

    Parameters
    ----------
    network : torch.nn.Module or onnxruntime.InferenceSession
        TorchScript module (tensors in and out) or an onnxruntime session (numpy).
    in_channels, num_classes : int
    arch : str
        Shown in messages and widgets (``"onnx"``, ``"torchscript"``, ``"bioimageio:NAME"``).
    min_size, step : (int, int)
        Sizes (H, W) the network accepts: ``min + n * step``; step 0 means exactly min.
    axes : str
        The network's input axis order, from ``"bcyx"`` (e.g. ``"byxc"``; ``"byx"`` for a
        network without a channel axis); its output uses the same order.
    outputs : {"probabilities", "logits", "sigmoid"}
        What the network returns: probabilities, logits (the engine applies softmax, or
        sigmoid for one channel), or logits of independent channels (a sigmoid each,
        applied here: several labels per pixel, shown as the most likely one).
    digest : str
        A hash of the weights (resumable zarr outputs record it).
    pad_mode : {"reflect", "replicate", "constant"}

    Shape
    -----
    - input: ``(N, C, H, W)`` float32, any H, W >= 1
    - output: ``(N, K, H, W)`` logits
    """

    def __init__(
        self,
        network,
        *,
        in_channels: int,
        num_classes: int,
        arch: str,
        min_size=(1, 1),
        step=(1, 1),
        axes: str = "bcyx",
        outputs: str = "probabilities",
        digest: str = "",
        pad_mode: str = "reflect",
    ):
        super().__init__()
        if outputs not in ("probabilities", "logits", "sigmoid"):
            raise ValueError(
                f"outputs must be 'probabilities', 'logits' or 'sigmoid', got {outputs!r}"
            )
        if sorted(axes) not in (sorted("bcyx"), sorted("byx")):
            raise ValueError(f"axes must order b, c, y, x (or b, y, x); got {axes!r}")
        self.torchscript = network if isinstance(network, nn.Module) else None
        self.session = None if self.torchscript is not None else network
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.arch = arch
        self.options = {}
        self.min_size = tuple(int(v) for v in min_size)
        self.step = tuple(int(v) for v in step)
        self.axes = axes
        self.outputs = outputs
        self.weights_digest = digest
        self.pad_mode = pad_mode
        # the engine aligns tile starts to this; a fixed-size network aligns to nothing
        self.divisor = max(1, min(s for s in self.step) if all(self.step) else 1)

    @property
    def activation(self) -> str:
        """``"sigmoid"`` for one output channel, ``"softmax"`` otherwise."""
        return "sigmoid" if self.num_classes == 1 else "softmax"

    def accepted_size(self, n: int, axis: int) -> int:
        """The smallest size >= `n` the network accepts along spatial `axis` (0: y, 1: x)."""
        low, step = self.min_size[axis], self.step[axis]
        if n <= low or step == 0:
            return low
        return low + -(-(n - low) // step) * step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.arch} expects input of shape (N, {self.in_channels}, H, W), got "
                f"{tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        th, tw = self.accepted_size(h, 0), self.accepted_size(w, 1)
        if th < h or tw < w:
            raise ValueError(
                f"{self.arch} takes tiles of at most {self.min_size} pixels (fixed size); got "
                f"{h} x {w}: use a smaller tile size"
            )
        if (th, tw) != (h, w):
            x = _pad(x, (0, tw - w, 0, th - h), self.pad_mode)
        out = self._run(self._to_network(x))[..., :h, :w]
        if self.outputs == "logits":
            return out
        if self.outputs == "sigmoid":
            out = torch.sigmoid(out.float())
        p = out.float().clamp(_EPS, 1 - _EPS if self.num_classes == 1 else 1.0)
        return torch.log(p) - torch.log1p(-p) if self.num_classes == 1 else torch.log(p)

    def _to_network(self, x: torch.Tensor) -> torch.Tensor:
        if "c" not in self.axes:
            return x[:, 0]
        return x.permute(*["bcyx".index(a) for a in self.axes])

    def _from_network(self, y: torch.Tensor) -> torch.Tensor:
        if "c" not in self.axes:
            return y[:, None]
        return y.permute(*[self.axes.index(a) for a in "bcyx"])

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.torchscript is not None:
            return self._from_network(self.torchscript(x.float()))
        name = self.session.get_inputs()[0].name
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        out = torch.from_numpy(self.session.run(None, {name: array})[0])
        return self._from_network(out).to(x.device)


def digest_of(data: bytes) -> str:
    """sha256 of a serialised network (recorded in resumable outputs).

    Parameters
    ----------
    data : bytes

    Returns
    -------
    str
    """
    return hashlib.sha256(data).hexdigest()


def jit_load(path) -> torch.jit.ScriptModule:
    """Load a TorchScript file on the CPU, in eval mode.

    torch.jit is deprecated in favour of torch.export, but TorchScript is what
    bioimage.io consumers such as deepImageJ read; its deprecation warning is silenced.

    Parameters
    ----------
    path : path

    Returns
    -------
    torch.jit.ScriptModule
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()
