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


def torch_job(threads: int) -> bool:
    """Set torch up for a training job on ``threads`` CPU threads: intra-op threads, and denormal floats flushed to
    zero. Returns whether the CPU supports the flush.

    As training converges, attention weights and activations underflow into the denormal range, where CPU
    arithmetic is up to ten times slower: MuSe-GNN on the four breast-cancer ST sections went from 1.1 s to 6.8 s
    per epoch between epochs 30 and 100, and back to 0.9 s with the flush. The setting is per thread and torch's
    worker threads inherit it when they start, so call this at the top of a job's script, before any torch
    operation. Values below 1.2e-38 (float32) become 0, deterministically. Not for a process whose other numerical
    work must keep denormals (the statistics that replay R's arithmetic): it affects NumPy on this thread too."""
    flushed = torch.set_flush_denormal(True)
    torch.set_num_threads(int(threads))
    return flushed
