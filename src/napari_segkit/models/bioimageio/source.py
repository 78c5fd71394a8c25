"""The architecture source a bioimage.io ``pytorch_state_dict`` entry ships with."""

from __future__ import annotations

import inspect
import json
import re

from .common import ARCH_CALLABLE


def architecture_source(model) -> tuple[str, dict]:
    """A self-contained Python file that rebuilds `model`'s network, and its kwargs.

    The file defines :data:`ARCH_CALLABLE`, which returns a module with our
    :class:`~napari_segkit.models.SegmentationModel`'s state-dict keys (``net.*``) and
    probabilities as output, so the package's ``pytorch_state_dict`` loads into it
    without napari-segkit installed. Our own architectures are written here: their
    module's source is included. SMP's are imported from
    ``segmentation_models_pytorch``.

    Parameters
    ----------
    model : SegmentationModel

    Returns
    -------
    source : str
    kwargs : dict
        The keyword arguments of :data:`ARCH_CALLABLE` (JSON values).
    """
    from .. import wrapper
    from ..registry import get_architecture
    from ..smp_models import SMP_ARCHITECTURES

    spec = get_architecture(model.arch)
    parts = [
        (
            f'"""Architecture of a napari-segkit model ({model.arch}), generated for bioimage.io.\n\n'
            f"{ARCH_CALLABLE}(**kwargs) builds the network; its state dict is the package's\n"
            'pytorch_state_dict weights. Output: class probabilities (softmax or sigmoid)."""\n'
        ),
        "from __future__ import annotations\n",
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n",
        _module_body(wrapper),
    ]
    options = json.loads(json.dumps(model.options, default=str))
    if spec.network is not None:
        cls, kwargs = spec.network(dict(model.options))
        parts.append(_module_body(inspect.getmodule(cls)))
        builder = f"{cls.__name__}(in_channels, num_classes, **net_kwargs)"
        options = json.loads(json.dumps(kwargs, default=str))
    else:
        parts.append("import segmentation_models_pytorch as smp\n")
        builder = (
            f"smp.{SMP_ARCHITECTURES[spec.name]}(in_channels=in_channels, classes=num_classes, "
            "encoder_weights=None, **net_kwargs)"
        )
        options = {k: v for k, v in options.items() if k != "encoder_weights"}
    parts.append(
        f'''

class _SegkitNetwork(SegmentationModel):
    def forward(self, x):
        logits = super().forward(x)
        return torch.sigmoid(logits) if self.num_classes == 1 else torch.softmax(logits, 1)


def {ARCH_CALLABLE}(arch, in_channels, num_classes, divisor, pad_mode, net_kwargs):
    """The network ({model.arch}): (N, C, H, W) -> class probabilities (N, K, H, W)."""
    net_kwargs = {{k: tuple(v) if isinstance(v, list) else v for k, v in net_kwargs.items()}}
    net = {builder}
    return _SegkitNetwork(
        net, arch=arch, options=net_kwargs, in_channels=in_channels,
        num_classes=num_classes, divisor=divisor, pad_mode=pad_mode,
    )
'''
    )
    kwargs = {
        "arch": model.arch,
        "in_channels": int(model.in_channels),
        "num_classes": int(model.num_classes),
        "divisor": int(model.divisor),
        "pad_mode": model.pad_mode,
        "net_kwargs": options,
    }
    return "\n".join(parts), kwargs


def _module_body(module) -> str:
    """A module's source without its docstring and ``from __future__`` line."""
    source = inspect.getsource(module)
    source = re.sub(r"^from __future__ import annotations\n", "", source, flags=re.M)
    doc = module.__doc__
    if doc:
        source = source.replace(f'"""{doc}"""', "", 1)
    return source
