"""Where torch runs: device choice and the torch-compiler import that is safe beside napari.

The one module that knows about devices; the tile engine, the fit loop, the CLI's
``segkit info`` and the widgets all ask it.
"""

from __future__ import annotations

import sys

import torch

from .config import DEVICE_CHOICES


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device to run on.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``: CUDA, then MPS, then CPU. Anything else as torch understands it
        (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        An unknown device name, or CUDA / MPS asked for where torch sees none.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"unknown device {device!r}: use one of {', '.join(DEVICE_CHOICES)} "
            "or a torch device such as 'cuda:1'"
        ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA GPU here")
    if resolved.type == "mps" and not _mps_available():
        raise ValueError("device='mps' was asked for but torch sees no Apple GPU here")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"device {device!r} is not supported: use one of {', '.join(DEVICE_CHOICES)}"
        )
    return resolved


def available_devices() -> list[str]:
    """Torch devices usable here, best first.

    Returns
    -------
    list of str
        ``"cuda:N (name)"`` for each GPU, then ``"mps"`` where available, then ``"cpu"``.
    """
    devices = [
        f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
    ]
    if _mps_available():
        devices.append("mps")
    return [*devices, "cpu"]


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def import_torch_compiler_safely() -> None:
    """Import torch._dynamo without triton when an OpenGL stack (napari / vispy) is loaded.

    torch's optimisers import torch._dynamo on first use, which imports triton if it is
    installed (CUDA builds ship it). Loading triton's LLVM after napari has created an
    OpenGL context on Mesa (llvmpipe: virtual machines, remote desktops, headless CI)
    crashes the process with a segfault -- reproduced here with torch 2.14 / triton 3.8,
    from the main thread and from workers alike. Training never uses torch.compile, so
    in such a process torch._dynamo is imported with triton hidden and torch records
    "no triton" for the session. Scripts and the CLI (no GL) are untouched.

    Returns
    -------
    None
    """
    if "vispy" not in sys.modules or "torch._dynamo" in sys.modules or "triton" in sys.modules:
        return
    sys.modules["triton"] = None  # `import triton` now raises ImportError
    try:
        import torch._dynamo  # noqa: F401
    finally:
        del sys.modules["triton"]


__all__ = [
    "available_devices",
    "import_torch_compiler_safely",
    "resolve_device",
]
