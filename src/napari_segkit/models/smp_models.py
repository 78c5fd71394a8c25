"""Architectures from segmentation-models-pytorch (SMP), built offline.

SMP's default ``encoder_weights="imagenet"`` downloads weights; here the default is
None (random initialisation), and pretrained encoder weights come from a local file
the user names (``encoder_weights="/path/resnet34.safetensors"`` or ``.pth``), loaded
without executing code and checked key by key.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# registry name -> SMP class name
SMP_ARCHITECTURES = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "linknet": "Linknet",
    "manet": "MAnet",
    "pspnet": "PSPNet",
    "pan": "PAN",
    "deeplabv3": "DeepLabV3",
    "deeplabv3plus": "DeepLabV3Plus",
    "segformer": "Segformer",
    "upernet": "UPerNet",
}


class EncoderWeightsError(ValueError):
    """A local encoder-weights file does not fit the chosen encoder."""


def build_smp(
    arch: str,
    in_channels: int,
    num_classes: int,
    *,
    encoder_name: str = "resnet34",
    encoder_weights: str | None = None,
    **options,
) -> nn.Module:
    """Build SMP's `arch` with random encoder weights, or weights from a local file.

    Parameters
    ----------
    arch : str
        An SMP architecture name from the registry (``"unet"``, ``"fpn"``, ...).
    in_channels, num_classes : int
    encoder_name : str
        Any SMP encoder.
    encoder_weights : path, optional
        A local ``.safetensors`` or ``.pth`` state dict for the encoder; never downloaded.
    **options
        SMP constructor options.

    Returns
    -------
    torch.nn.Module
        ``(N, C, H, W)`` -> ``(N, K, H, W)`` logits (H, W multiples of the encoder's stride).
    """
    import segmentation_models_pytorch as smp

    if encoder_weights is not None and not Path(str(encoder_weights)).is_file():
        raise EncoderWeightsError(
            f"encoder_weights={encoder_weights!r} is not a local file: napari-segkit never "
            "downloads weights. Name a .safetensors/.pth file holding the encoder's state_dict."
        )
    cls = getattr(smp, SMP_ARCHITECTURES[arch])
    net = cls(
        encoder_name=encoder_name,
        encoder_weights=None,
        in_channels=in_channels,
        classes=num_classes,
        **options,
    )
    if encoder_weights is not None:
        load_encoder_weights(net.encoder, encoder_weights)
    return net


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load a state_dict into `encoder`; every key and shape must match.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickled code.

    Parameters
    ----------
    encoder : torch.nn.Module
    path : path

    Returns
    -------
    None

    Raises
    ------
    EncoderWeightsError
        Missing or unexpected keys, or shapes that differ (all named).
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise EncoderWeightsError(f"Cannot read encoder weights '{path}': {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = encoder.state_dict()
    # classifier heads of ImageNet checkpoints are not part of an encoder
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier.", "head."))}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs encoder {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[:2]})")
        raise EncoderWeightsError(
            f"Encoder weights '{path}' do not fit the encoder: " + "; ".join(parts)
        )
    encoder.load_state_dict(state)
