"""Where torch work runs: the one device resolver of every stage."""

from __future__ import annotations

import torch

from genegraph.errors import DataError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else the CPU; ``cpu``, ``cuda`` or ``cuda:k`` as given. Asking for
    CUDA without it, or for another device type, is a :class:`DataError` (a ``ValueError``)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DataError(f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:k'") from err
    if dev.type not in ("cpu", "cuda"):
        raise DataError(f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:k'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {str(device)!r} requested but CUDA is not available to torch {torch.__version__} "
                        f"(CUDA build: {torch.version.cuda}); use 'auto' or 'cpu'")
    return dev
