"""One registry of architectures: the CLI's choices, the widgets' lists and the tests read it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .fcdensenet import VARIANTS as DENSENET_VARIANTS
from .fcdensenet import FCDenseNet
from .fcn import FCN
from .smp_models import SMP_ARCHITECTURES, build_smp
from .unet import UNet
from .unet3d import UNet3D, divisors_3d
from .wrapper import SegmentationModel


@dataclass(frozen=True)
class Architecture:
    """A registered architecture.

    Attributes
    ----------
    name : str
        Registry key, lower case (``"unet"``, ``"fcdensenet103"``).
    family : str
        ``"smp"`` or ``"segkit"`` (written here).
    description : str
    build : callable
        ``build(in_channels, num_classes, **options) -> nn.Module``.
    divisor : callable
        ``divisor(options) -> int``: the spatial multiple the network needs (3D:
        ``(dz, dy, dx)``).
    options : dict
        Option names and defaults (what ``build_model(..., **options)`` accepts).
    tiny_options : dict
        The smallest sensible configuration (for tests and quick checks).
    spatial_dims : {2, 3}
        2D networks take ``(N, C, H, W)``, 3D ones ``(N, C, D, H, W)``.
    network : callable, optional
        ``network(options) -> (cls, kwargs)``: the class written here and the keyword
        arguments ``build`` passes it (besides the channel and class counts), so that
        an export can ship the architecture's source (see ``models.bioimageio``).
        None for SMP's architectures (their source is SMP's).
    """

    name: str
    family: str
    description: str
    build: Callable[..., nn.Module]
    divisor: Callable[[dict], int]
    options: dict
    tiny_options: dict
    network: Callable[[dict], tuple[type, dict]] | None = None
    spatial_dims: int = 2


_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> None:
    """Add an architecture to the registry (``build_model``, the CLI and widgets list it).

    Parameters
    ----------
    arch : Architecture
        Its ``name`` replaces an entry of the same name.

    Returns
    -------
    None
    """
    _REGISTRY[arch.name] = arch


def _defaults(fn, skip=("in_channels", "num_classes", "arch", "options")) -> dict:
    return {
        n: p.default
        for n, p in inspect.signature(fn).parameters.items()
        if n not in skip and p.default is not inspect.Parameter.empty
    }


_SMP_DESCRIPTIONS = {
    "unet": "U-Net with a pretrained-style encoder (SMP)",
    "unetplusplus": "U-Net++: nested dense skip pathways (SMP)",
    "fpn": "Feature Pyramid Network decoder (SMP)",
    "linknet": "LinkNet: additive skips, light decoder (SMP)",
    "manet": "MA-Net: multi-scale attention (SMP)",
    "pspnet": "PSPNet: pyramid pooling module (SMP)",
    "pan": "Pyramid Attention Network (SMP)",
    "deeplabv3": "DeepLabV3: atrous (dilated) convolutions + ASPP, output stride 8 or 16 (SMP)",
    "deeplabv3plus": "DeepLabV3+: ASPP with a decoder, atrous rates option (SMP)",
    "segformer": "SegFormer all-MLP decoder (SMP)",
    "upernet": "UPerNet: pyramid pooling + FPN (SMP)",
}

for _name in SMP_ARCHITECTURES:
    register(
        Architecture(
            name=_name,
            family="smp",
            description=_SMP_DESCRIPTIONS[_name],
            build=lambda cin, k, _n=_name, **o: build_smp(_n, cin, k, **o),
            divisor=lambda o: 32,
            options={
                "encoder_name": "resnet34",
                "encoder_weights": None,
                "encoder_depth": 5,
                "(any SMP option)": "see SMP docs",
            },
            tiny_options={"encoder_name": "resnet18"},
        )
    )


def _register_segkit(
    name, description, network, divisor, options, tiny_options, spatial_dims=2
) -> None:
    """Register an architecture written here: `network(options)` names its class and
    keyword arguments, and ``build`` is that class called with them."""

    def build(cin, k, **o):
        cls, kwargs = network(o)
        return cls(cin, k, **kwargs)

    register(
        Architecture(
            name,
            "segkit",
            description,
            build,
            divisor,
            options,
            tiny_options,
            network,
            spatial_dims,
        )
    )


_register_segkit(
    "unet_original",
    "Original U-Net (Ronneberger 2015), same padding; transpose/bilinear/unpool upsampling",
    lambda o: (UNet, dict(o)),
    lambda o: 2 ** o.get("depth", 4),
    _defaults(UNet.__init__),
    {"width": 4, "depth": 2},
)
_register_segkit(
    "resunet",
    "Residual U-Net (Drozdzal 2016): residual blocks inside the long skips",
    lambda o: (UNet, {"residual": True, **o}),
    lambda o: 2 ** o.get("depth", 4),
    {**_defaults(UNet.__init__), "residual": True},
    {"width": 4, "depth": 2},
)
for _name, _variant in DENSENET_VARIANTS.items():
    _register_segkit(
        _name,
        f"FC-DenseNet{_name[len('fcdensenet') :]} / Tiramisu (Jegou 2017)",
        lambda o, _v=_variant: (FCDenseNet, {**_v, **o}),
        lambda o: 2 ** len(o.get("down_layers", (1,) * 5)),
        {**_defaults(FCDenseNet.__init__), **_variant},
        {
            "down_layers": (1, 1, 1, 1, 1),
            "bottleneck_layers": 1,
            "growth_rate": 2,
            "first_channels": 4,
        },
    )
for _variant in ("fcn32s", "fcn16s", "fcn8s"):
    _register_segkit(
        _variant,
        f"{_variant.upper().replace('S', 's')}: VGG16-style encoder, 1x1 scores, transposed-conv "
        "upsampling" + ("" if _variant == "fcn32s" else " and skip sums") + " (Long 2015)",
        lambda o, _v=_variant: (FCN, {"variant": _v, **o}),
        lambda o: 32,
        _defaults(FCN.__init__, skip=("in_channels", "num_classes", "variant")),
        {"width": 4, "fc_channels": 8},
    )

_register_segkit(
    "unet3d",
    "3D U-Net (Cicek 2016), same padding; transpose/trilinear upsampling; anisotropic_levels "
    "keep z for the first levels (coarse z spacing)",
    lambda o: (UNet3D, dict(o)),
    divisors_3d,
    _defaults(UNet3D.__init__),
    {"width": 2, "depth": 2},
    spatial_dims=3,
)
_register_segkit(
    "resunet3d",
    "Residual 3D U-Net: residual blocks inside the long skips, anisotropic levels optional",
    lambda o: (UNet3D, {"residual": True, **o}),
    divisors_3d,
    {**_defaults(UNet3D.__init__), "residual": True},
    {"width": 2, "depth": 2},
    spatial_dims=3,
)


def get_architecture(name: str) -> Architecture:
    """The registered architecture called `name` (case-insensitive).

    Parameters
    ----------
    name : str
        ``"unet"``, ``"UNet"``, ``"fc-densenet103"`` all find their entry.

    Returns
    -------
    Architecture

    Raises
    ------
    ValueError
        Unknown name; the message lists the registered ones.
    """
    key = name.lower().replace("-", "").replace("_", "") if name else name
    for arch in _REGISTRY.values():
        if arch.name.replace("_", "") == key:
            return arch
    raise ValueError(f"Unknown architecture {name!r}. Available: {', '.join(sorted(_REGISTRY))}")


def list_architectures() -> list[dict]:
    """Every registered architecture: name, family, description and options (with defaults).

    Returns
    -------
    list of dict
        ``{"name", "family", "description", "options", "spatial_dims"}`` sorted by name.
    """
    return [
        {
            "name": a.name,
            "family": a.family,
            "description": a.description,
            "options": dict(a.options),
            "spatial_dims": a.spatial_dims,
        }
        for a in sorted(_REGISTRY.values(), key=lambda a: a.name)
    ]


def build_model(
    arch: str, in_channels: int = 1, num_classes: int = 2, *, pad_mode: str = "reflect", **options
) -> SegmentationModel:
    """Build a registered architecture, wrapped to accept any input height and width.

    Parameters
    ----------
    arch : str
        A name from :func:`list_architectures` (``"unet"``, ``"fcdensenet103"``, ...).
    in_channels : int
        Image channels C.
    num_classes : int
        Output classes K; 1 means one binary (sigmoid) output.
    pad_mode : {"reflect", "replicate", "constant"}
        How inputs are padded to the multiple the network needs (then cropped back).
    **options
        Architecture options (see ``list_architectures()``), e.g. ``encoder_name="resnet18"``,
        ``encoder_output_stride=8`` and ``decoder_atrous_rates=(6, 12, 18)`` for DeepLab,
        ``width=16, depth=3, upsampling="bilinear"`` for ``unet_original``.

    Returns
    -------
    SegmentationModel
        ``(N, C, H, W)`` -> ``(N, K, H, W)`` logits for any H, W (3D architectures:
        ``(N, C, D, H, W)`` -> ``(N, K, D, H, W)``).

    Examples
    --------
    >>> import torch
    >>> model = build_model("unet_original", 1, 3, width=8, depth=3)
    >>> model(torch.zeros(2, 1, 97, 131)).shape
    torch.Size([2, 3, 97, 131])
    """
    spec = get_architecture(arch)
    if int(in_channels) < 1 or int(num_classes) < 1:
        raise ValueError(
            f"in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}"
        )
    if pad_mode not in ("reflect", "replicate", "constant"):
        raise ValueError(
            f"pad_mode must be 'reflect', 'replicate' or 'constant', got {pad_mode!r}"
        )
    try:
        net = spec.build(int(in_channels), int(num_classes), **options)
    except TypeError as err:
        raise ValueError(
            f"Invalid options for {spec.name}: {err}. Options: {spec.options}"
        ) from err
    return SegmentationModel(
        net,
        arch=spec.name,
        options=options,
        in_channels=int(in_channels),
        num_classes=int(num_classes),
        divisor=spec.divisor(options),
        pad_mode=pad_mode,
        spatial_dims=spec.spatial_dims,
    )
