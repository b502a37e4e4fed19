"""Bi-level masking of one section at a training step (spec §4.2, Eq. 4.10-4.11; the reference's order).

1. theta = ``cell_rate``: int(theta n) cells (at least one), chosen by a random permutation, are masked;
2. inside each masked cell every feature is dropped with probability gamma = ``feature_rate``; the kept
   ones are rescaled by 1 / (1 - gamma) (inverted dropout, mean-preserving); gamma = 1 zeroes the masked
   cells (a masked autoencoder), theta = 1 masks every cell (a denoising autoencoder);
3. the other cells are untouched;
4. drop-node: each cell is then removed from the sequence with probability ``drop_node_rate``. If no
   masked cell survives, no cell is removed at that step (so the loss is never empty).

All draws come from the CPU ``generator`` (bit-identical on every device) and are then moved to x's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class StepMask:
    """``keep`` (m,) int64 ascending cells kept after drop-node; ``masked`` (m,) bool masked cells among
    them; ``dropped`` (m, g) bool dropped entries (only in masked cells); ``x`` (m, g) the corrupted input."""

    keep: Tensor
    masked: Tensor
    dropped: Tensor
    x: Tensor


def bilevel_mask(
    x: Tensor, cell_rate: float, feature_rate: float, drop_node_rate: float, generator: torch.Generator
) -> StepMask:
    """Mask the section x (n, g) as above."""
    n, g = x.shape
    dev = x.device
    n_mask = min(n, max(1, int(cell_rate * n)))
    chosen = torch.randperm(n, generator=generator)[:n_mask]
    drop = torch.rand(n_mask, g, generator=generator) < feature_rate
    survive = torch.rand(n, generator=generator) >= drop_node_rate
    masked = torch.zeros(n, dtype=torch.bool)
    masked[chosen] = True
    if not (survive & masked).any():
        survive[:] = True
    masked, chosen, drop, survive = masked.to(dev), chosen.to(dev), drop.to(dev), survive.to(dev)
    dropped = torch.zeros(n, g, dtype=torch.bool, device=dev)
    dropped[chosen] = drop
    corrupted = x.clone()
    if feature_rate < 1:
        corrupted[chosen] = x[chosen] * (~drop) / (1 - feature_rate)
    else:
        corrupted[chosen] = 0
    keep = torch.nonzero(survive).squeeze(1)
    return StepMask(keep, masked[keep], dropped[keep], corrupted[keep])
