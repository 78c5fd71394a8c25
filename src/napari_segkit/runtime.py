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


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast dtype for `device`: bfloat16 where the GPU supports it, else float16.

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    torch.dtype
        bf16 keeps float32's range (no overflow in long sums), fp16 is the fallback for
        older GPUs; CPU inference runs in float32 and ignores it.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class CompiledOrEager(torch.nn.Module):
    """``torch.compile``'s version of a module, falling back to the module on any failure.

    Compilation happens at the first call (and again for new shapes); if it fails -- no
    compiler, an unsupported operation, a backend error -- the eager module is used
    from then on and one warning says why. Results are the eager module's to float
    rounding either way.

    Parameters
    ----------
    module : torch.nn.Module
        Keeps its ``in_channels``, ``num_classes`` and ``divisor`` attributes visible.
    backend : str
        A ``torch.compile`` backend.
    """

    def __init__(self, module: torch.nn.Module, backend: str = "inductor"):
        super().__init__()
        import_torch_compiler_safely()
        self.eager, self.compiled, self.failed = module, None, False
        try:
            self.compiled = torch.compile(module, backend=backend)
        except Exception as err:  # noqa: BLE001 -- an unknown backend, no compiler, ...
            self._fall_back(err)
        for name in ("in_channels", "num_classes", "divisor"):
            if hasattr(module, name):
                setattr(self, name, getattr(module, name))

    def forward(self, x):
        if not self.failed:
            try:
                return self.compiled(x)
            except Exception as err:  # noqa: BLE001 -- any compiler failure: run eagerly
                self._fall_back(err)
        return self.eager(x)

    def _fall_back(self, err: Exception) -> None:
        import warnings

        self.failed = True
        warnings.warn(
            f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
            "predicting with the uncompiled model",
            RuntimeWarning,
            stacklevel=3,
        )


def choose_batch_size(
    model: torch.nn.Module,
    in_channels: int,
    tile: tuple[int, int],
    device: torch.device,
    *,
    default: int = 4,
    cap: int = 256,
    budget: float = 0.6,
) -> int:
    """Tiles per forward pass: `default` on CPU/MPS, from free GPU memory on CUDA.

    On CUDA a real forward of two tiles measures the memory one tile needs (model
    activations under the same autocast the engine uses); the batch then fills
    `budget` of the free memory, at most `cap`. An out-of-memory error while probing
    gives 1. (The engine also halves the batch and retries if a later batch runs out
    of memory, instead of crashing.)

    Parameters
    ----------
    model : torch.nn.Module
        On `device`, in eval mode.
    in_channels : int
    tile : (int, int)
    device : torch.device
    default, cap : int
    budget : float
        Fraction of the free GPU memory to use.

    Returns
    -------
    int
    """
    if device.type != "cuda":
        return default
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    try:
        x = torch.zeros((2, in_channels, *tile), device=device)
        with torch.inference_mode(), torch.autocast("cuda", dtype=amp_dtype(device)):
            model(x)
        torch.cuda.synchronize(device)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return 1
    per_tile = max((torch.cuda.max_memory_allocated(device) - before) / 2, 1)
    torch.cuda.empty_cache()
    return int(max(1, min(cap, budget * free // per_tile)))


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
    "CompiledOrEager",
    "amp_dtype",
    "available_devices",
    "choose_batch_size",
    "import_torch_compiler_safely",
    "resolve_device",
]
