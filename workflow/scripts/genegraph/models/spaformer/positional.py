"""Spatial positional encodings of a section's tokens.

* ``sinusoid``: fixed 2-D sinusoid. The scaled position (x, y) in [0, 1] is binned on a grid of ``grid``
  cells per side (as the reference's 100-cell grid); the first half of the channels encodes the x bin, the
  second the y bin, each as [sin(b w_0), cos(b w_0), sin(b w_1), ...] with w_j = 10000^(-4j / dim).
* ``lap``: the k eigenvectors of the symmetric normalised Laplacian I - D^-1/2 A D^-1/2 of the section's
  spatial graph with the smallest eigenvalues, the first (trivial) one left out, zero-padded for tiny
  sections; Linear(k -> dim). Each eigenvector's sign is flipped at random at every training step.
* ``cond``: conditional PE -- a GAT layer (PyG ``GATConv``, ``cond_heads`` heads concatenated) over the
  section's spatial graph applied to the embedded expression; its output is added to the token.
* ``none``.

:class:`Context` holds what the encodings need for one section on the model's device, and restricts it to
the cells kept by drop-node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import eigh
from scipy.sparse.linalg import eigsh
from torch import Tensor, nn
from torch_geometric.nn import GATConv

PE_KINDS = ("cond", "lap", "sinusoid", "none")
#: Sections up to this many cells get a dense eigendecomposition; larger ones ARPACK shift-invert.
DENSE_EIGEN_MAX = 2000


@dataclass(frozen=True)
class Context:
    """One section's positional inputs: ``n_cells``; ``sinusoid`` (n, dim) or None; ``eigvecs`` (n, k) or None;
    ``edge_index`` (2, E) int64 spatial edges without self-loops [source; target]."""

    n_cells: int
    sinusoid: Tensor | None
    eigvecs: Tensor | None
    edge_index: Tensor

    def subset(self, keep: Tensor) -> Context:
        """The context of the cells ``keep`` (ascending int64 indices), edges renumbered."""
        new_id = torch.full((self.n_cells,), -1, dtype=torch.long, device=keep.device)
        new_id[keep] = torch.arange(len(keep), device=keep.device)
        e = new_id[self.edge_index]
        return Context(
            len(keep),
            None if self.sinusoid is None else self.sinusoid[keep],
            None if self.eigvecs is None else self.eigvecs[keep],
            e[:, (e >= 0).all(0)],
        )


def sinusoid_encoding(positions: np.ndarray, dim: int, grid: int) -> np.ndarray:
    """(n, dim) float32 2-D sinusoid of positions (n, 2) in [0, 1] binned on a grid x grid lattice."""
    bins = np.clip(np.floor(positions * grid), 0, grid - 1)
    half = dim // 2
    freq = np.exp(-math.log(10000.0) * np.arange(0, half, 2) / half)
    out = np.zeros((positions.shape[0], dim), dtype=np.float32)
    for axis in range(2):
        angle = bins[:, axis, None] * freq[None, :]
        out[:, axis * half:(axis + 1) * half:2] = np.sin(angle)
        out[:, axis * half + 1:(axis + 1) * half:2] = np.cos(angle)
    return out


def laplacian_eigvecs(adjacency: sp.spmatrix, k: int) -> np.ndarray:
    """(n, k) float32: eigenvectors 2..k+1 (by increasing eigenvalue) of the symmetric normalised Laplacian of
    ``adjacency`` (self-loops ignored), zero columns when n <= k + 1."""
    a = sp.csr_matrix(adjacency, dtype=np.float64, copy=True)
    a.setdiag(0)
    a.eliminate_zeros()
    n = a.shape[0]
    deg = np.asarray(a.sum(axis=1)).ravel()
    dinv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    lap = sp.eye(n) - sp.diags(dinv) @ a @ sp.diags(dinv)
    m = min(k + 1, n)
    if n <= DENSE_EIGEN_MAX:
        _, vecs = eigh(lap.toarray(), subset_by_index=[0, m - 1])
    else:
        v0 = np.cos(np.arange(n) + 1.0)
        vals, vecs = eigsh(sp.csc_matrix(lap), k=m, sigma=-1e-2, which="LM", v0=v0)
        vecs = vecs[:, np.argsort(vals)]
    out = np.zeros((n, k), dtype=np.float32)
    out[:, : m - 1] = vecs[:, 1:m]
    return out


class PositionalEncoding(nn.Module):
    """The PE of kind ``kind`` for tokens of width ``dim``: forward(h (n, dim), ctx, signs) -> (n, dim) to add
    to the tokens, or None for ``"none"``. ``signs`` (k,) +-1 flips the Laplacian eigenvectors (training)."""

    def __init__(self, kind: str, dim: int, lap_k: int, cond_heads: int):
        super().__init__()
        if kind not in PE_KINDS:
            raise ValueError(f"pe must be one of {', '.join(PE_KINDS)}, not {kind!r}")
        self.kind = kind
        if kind == "lap":
            self.proj = nn.Linear(lap_k, dim)
        elif kind == "cond":
            self.gat = GATConv(dim, dim // cond_heads, heads=cond_heads)

    def forward(self, h: Tensor, ctx: Context, signs: Tensor | None = None) -> Tensor | None:
        if self.kind == "sinusoid":
            return ctx.sinusoid
        if self.kind == "lap":
            vecs = ctx.eigvecs if signs is None else ctx.eigvecs * signs
            return self.proj(vecs)
        if self.kind == "cond":
            return self.gat(h, ctx.edge_index)
        return None
