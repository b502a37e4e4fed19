"""Cell embedder: bag-of-genes product E = log1p(X) · G, optional 2-D sinusoidal PE, then
Linear → ReLU → dropout → norm (spec §5.1).

The product runs as a custom autograd function on CSR tensors that uses the transposed CSR, built once per
step with the same values, for the gradient of G (∂L/∂G = Xᵀ · ∂L/∂E); PyTorch's generic sparse backward is
about 40× slower on CPU (spec §1).

Deviations:
- the 2-D sinusoidal PE is on by default (``positional_encoding: sin2d``); the released embedder computes it
  but adds 0 instead (spec §5.1 ⚠), which ``positional_encoding: none`` reproduces;
- the closing norm follows the released config (``norm: groupnorm``, 4 groups); the dissertation text says
  LayerNorm (``norm: layernorm``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .sentences import SentenceInput


class _BagOfGenes(torch.autograd.Function):
    """(n, m) CSR ``x`` times dense (m, d) ``weight``; backward uses the (m, n) CSR ``xt`` = xᵀ."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, xt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.xt = xt
        return torch.sparse.mm(x, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, torch.sparse.mm(ctx.xt, grad.contiguous())


def bag_of_genes(x: torch.Tensor, xt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x · weight for a CSR ``x`` (n, m) with its transpose ``xt`` (m, n) and ``weight`` (m, d) → (n, d)."""
    return _BagOfGenes.apply(x, xt, weight)


def sinusoid_2d(grid: torch.Tensor, dim: int) -> torch.Tensor:
    """2-D sinusoidal encoding (Eq. C.1) of integer grid positions ``grid`` (n, 2) → (n, dim), dim % 4 == 0.

    The first dim/2 channels encode x, the others y, each as [sin(p·ω_k), cos(p·ω_k)] with
    ω_k = 10000^(−2k/(dim/2)), k < dim/4."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, half, 2, dtype=torch.float32, device=grid.device) / half)
    parts = []
    for axis in range(2):
        angle = grid[:, axis:axis + 1].float() * freq[None, :]
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, dim=1)


def grid_positions(coords: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (n, 2) → integer grid positions in [0, grid) and a bool (n,) "has a position".

    The sample's coordinates are shifted to start at 0 and divided by the longer side's extent (so the
    aspect ratio is kept); NaN rows have no position."""
    present = ~torch.isnan(coords).any(dim=1)
    pos = torch.zeros(coords.shape, dtype=torch.int64, device=coords.device)
    if present.any():
        xy = coords[present]
        xy = xy - xy.min(dim=0).values
        extent = xy.max()
        unit = xy / extent if extent > 0 else torch.zeros_like(xy)
        pos[present] = torch.round(unit * (grid - 1)).long()
    return pos, present


class SpatialEncoding(nn.Module):
    """2-D sinusoidal PE of each cell's position, or a learned "missing" vector for cells without one."""

    def __init__(self, dim: int, grid: int):
        super().__init__()
        self.dim, self.grid = dim, grid
        self.missing = nn.Parameter(torch.zeros(dim))

    def forward(self, coords: torch.Tensor | None, n: int) -> torch.Tensor:
        """(n, dim) encodings; ``coords`` (n, 2) with NaN rows, or None for a non-spatial sample."""
        out = self.missing.expand(n, self.dim)
        if coords is None:
            return out
        pos, present = grid_positions(coords, self.grid)
        return torch.where(present[:, None], sinusoid_2d(pos, self.dim), out)


def make_norm(kind: str, dim: int, groups: int) -> nn.Module:
    """GroupNorm(groups, dim) or LayerNorm(dim) on (n, dim) inputs."""
    return nn.GroupNorm(groups, dim) if kind == "groupnorm" else nn.LayerNorm(dim)


class CellEmbedder(nn.Module):
    """Cells (sparse counts over measured genes) → (n, hidden) token embeddings.

    ``gene_embedding`` is the (vocabulary, hidden) table G; a sentence uses the rows of its measured genes."""

    def __init__(self, vocab_size: int, hidden: int, dropout: float, norm: str, norm_groups: int,
                 positional_encoding: str, pe_grid: int, init_std: float):
        super().__init__()
        self.gene_embedding = nn.Parameter(torch.randn(vocab_size, hidden) * init_std)
        self.pe = SpatialEncoding(hidden, pe_grid) if positional_encoding == "sin2d" else None
        self.project = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                     make_norm(norm, hidden, norm_groups))

    def forward(self, inp: SentenceInput) -> torch.Tensor:
        h = bag_of_genes(inp.x, inp.xt, self.gene_embedding.index_select(0, inp.genes))
        if self.pe is not None:
            h = h + self.pe(inp.coords, inp.n_cells)
        return self.project(h)
