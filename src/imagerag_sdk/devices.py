"""Device and thread settings shared by local-model plugins; torch is imported only when called."""

from __future__ import annotations

from .errors import ConfigError


def resolve_device(device: str, *, component: str) -> str:
    """``auto`` → cuda, else Apple mps, else cpu; an explicit cuda device without CUDA is a
    :class:`ConfigError` naming ``component``."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{component}: device '{device}' asked for but CUDA is not available",
                          hint="set device: cpu (or auto), or install a CUDA build of torch")
    return device


def torch_threads() -> int | None:
    """torch's intra-op thread count, or None when torch has not been imported (nothing uses it)."""
    import sys

    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def set_torch_threads(n: int) -> None:
    """Set torch's intra-op thread count (process-wide: callers restore what they changed)."""
    import torch

    torch.set_num_threads(max(1, int(n)))
