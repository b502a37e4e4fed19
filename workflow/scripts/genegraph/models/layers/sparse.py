"""Sparse message passing: a cached-transpose SpMM with a custom backward, and a weighted GraphSAGE-mean conv.

PyTorch's built-in backward for ``sparse @ dense`` rebuilds the transpose on every call and is about 40x slower
than it needs to be on CPU (spec §1). :class:`SparseAdjacency` holds a constant (n_dst, n_src) weight matrix A
in CSR *and* its transpose Aᵀ in CSR (built once), so that :func:`spmm` computes A·X forward and Aᵀ·G backward
with two plain CSR products. Edge weights are constants (no gradient flows to them); edge dropout re-weights
them per call (:func:`edge_dropout`) and the same dropped weights are used in the backward.

Conventions: a relation src -> dst is stored as the (n_dst, n_src) matrix A with A[i, j] = weight of the edge
j -> i, so that ``A @ h_src`` sums the weighted messages arriving at each dst node. Index tensors are int32
(CSR products accept them on CPU and CUDA and they halve the memory of ~90 M-edge graphs). Parallel edges
(the same (dst, src) pair given several times) are merged into one stored entry whose weight is the sum of
theirs, but each is still counted in the in-degree used by the mean (as DGL counts parallel edges); edge
dropout then drops a merged pair together.

Works on any device: build on CPU with :meth:`SparseAdjacency.from_edges` / :meth:`from_scipy`, then
:meth:`SparseAdjacency.to`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow, col, values, size=shape, check_invariants=False)


@dataclass(frozen=True)
class SparseAdjacency:
    """A constant (n_dst, n_src) edge-weight matrix A with its CSR transpose cached.

    ``crow`` (n_dst + 1,), ``col`` (nnz,), ``values`` (nnz,) float32: A in CSR. ``t_crow`` (n_src + 1,),
    ``t_col`` (nnz,), ``t_values`` (nnz,): Aᵀ in CSR. ``to_t`` (nnz,): ``t_values == values[to_t]``;
    ``from_t`` (nnz,): ``values == t_values[from_t]``. ``degree`` (n_dst,) and ``t_degree`` (n_src,) float32:
    number of edges into each dst (resp. out of each src) node, parallel edges counted one by one.
    """

    shape: tuple[int, int]
    crow: Tensor
    col: Tensor
    values: Tensor
    t_crow: Tensor
    t_col: Tensor
    t_values: Tensor
    to_t: Tensor
    from_t: Tensor
    degree: Tensor
    t_degree: Tensor

    @classmethod
    def from_edges(
        cls, dst: np.ndarray, src: np.ndarray, weight: np.ndarray, shape: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> SparseAdjacency:
        """From an edge list: edge k goes ``src[k] -> dst[k]`` with weight ``weight[k]``; ``shape`` is
        (n_dst, n_src). Parallel edges are merged (weights summed) but counted separately in the degrees."""
        dst = np.asarray(dst, dtype=np.int64)
        src = np.asarray(src, dtype=np.int64)
        weight = np.asarray(weight, dtype=np.float32)
        if not (dst.shape == src.shape == weight.shape) or dst.ndim != 1:
            raise ValueError("dst, src and weight must be 1-d arrays of the same length")
        n_dst, n_src = int(shape[0]), int(shape[1])
        if dst.size and (dst.min() < 0 or dst.max() >= n_dst or src.min() < 0 or src.max() >= n_src):
            raise ValueError(f"edge endpoints out of range for shape {shape}")
        if dst.size >= 2**31 - 1:
            raise ValueError("more than 2^31 edges: int32 CSR indices cannot hold them")
        m = sp.coo_matrix((weight, (dst, src)), shape=(n_dst, n_src)).tocsr()
        m.sum_duplicates()
        degree = np.bincount(dst, minlength=n_dst).astype(np.float32)
        t_degree = np.bincount(src, minlength=n_src).astype(np.float32)
        return cls._from_csr(m, degree, t_degree, device)

    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix | sp.sparray, device: torch.device | str = "cpu") -> SparseAdjacency:
        """From a scipy sparse (n_dst, n_src) matrix; every stored entry (explicit zeros included) is an edge."""
        m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        m.sum_duplicates()
        degree = np.diff(m.indptr).astype(np.float32)
        t_degree = np.bincount(m.indices, minlength=m.shape[1]).astype(np.float32)
        return cls._from_csr(m, degree, t_degree, device)

    @classmethod
    def _from_csr(
        cls, m: sp.csr_matrix, degree: np.ndarray, t_degree: np.ndarray, device: torch.device | str,
    ) -> SparseAdjacency:
        m.sort_indices()
        n_dst, n_src = m.shape
        crow = torch.from_numpy(m.indptr.astype(np.int32))
        col = torch.from_numpy(m.indices.astype(np.int32))
        values = torch.from_numpy(m.data.astype(np.float32))
        # Aᵀ in CSR: edges ordered by (col, row); a stable sort by col keeps the rows sorted within each col.
        to_t = torch.sort(col.long(), stable=True).indices
        from_t = torch.empty_like(to_t)
        from_t[to_t] = torch.arange(to_t.numel())
        rows = torch.repeat_interleave(torch.arange(n_dst, dtype=torch.int32), torch.from_numpy(np.diff(m.indptr)))
        t_counts = torch.bincount(col.long(), minlength=n_src)
        t_crow = torch.zeros(n_src + 1, dtype=torch.int64)
        t_crow[1:] = torch.cumsum(t_counts, 0)
        adj = cls(
            shape=(int(n_dst), int(n_src)), crow=crow, col=col, values=values,
            t_crow=t_crow.to(torch.int32), t_col=rows[to_t], t_values=values[to_t],
            to_t=to_t.to(torch.int32), from_t=from_t.to(torch.int32),
            degree=torch.from_numpy(degree), t_degree=torch.from_numpy(t_degree),
        )
        return adj.to(device)

    @property
    def nnz(self) -> int:
        return int(self.values.numel())

    @property
    def device(self) -> torch.device:
        return self.values.device

    def to(self, device: torch.device | str) -> SparseAdjacency:
        """The same matrix on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in moved.items():
            if isinstance(value, Tensor):
                moved[key] = value.to(device)
        return SparseAdjacency(**moved)

    def transpose(self) -> SparseAdjacency:
        """Aᵀ (the reverse relation dst -> src), sharing every tensor with A (no copy)."""
        return SparseAdjacency(
            shape=(self.shape[1], self.shape[0]), crow=self.t_crow, col=self.t_col, values=self.t_values,
            t_crow=self.crow, t_col=self.col, t_values=self.values, to_t=self.from_t, from_t=self.to_t,
            degree=self.t_degree, t_degree=self.degree,
        )

    def with_values(self, values: Tensor) -> SparseAdjacency:
        """The same sparsity pattern and degrees with new edge weights ``values`` (nnz,) in A's CSR order."""
        if values.shape != self.values.shape:
            raise ValueError(f"expected {self.nnz} edge weights, got shape {tuple(values.shape)}")
        values = values.detach().to(torch.float32)
        return dataclasses.replace(self, values=values, t_values=values[self.to_t.long()])

    def to_dense(self) -> Tensor:
        """A as a dense (n_dst, n_src) tensor (for tests and small graphs only)."""
        return _csr(self.crow, self.col, self.values, self.shape).to_dense()


class _CachedTransposeSpMM(torch.autograd.Function):
    """out = A @ x with grad_x = Aᵀ @ grad_out; A's weights are constants."""

    @staticmethod
    def forward(ctx, x, crow, col, values, t_crow, t_col, t_values, shape):
        ctx.save_for_backward(t_crow, t_col, t_values)
        ctx.t_shape = (shape[1], shape[0])
        return _csr(crow, col, values, shape) @ x

    @staticmethod
    def backward(ctx, grad_out):
        grad_x = None
        if ctx.needs_input_grad[0]:
            t_crow, t_col, t_values = ctx.saved_tensors
            grad_x = _csr(t_crow, t_col, t_values, ctx.t_shape) @ grad_out.contiguous()
        return grad_x, None, None, None, None, None, None, None


def spmm(adj: SparseAdjacency, x: Tensor, values: Tensor | None = None) -> Tensor:
    """A @ x: (n_dst, n_src) x (n_src, d) -> (n_dst, d), differentiable in ``x`` only.

    ``values`` (nnz,) in A's CSR order replaces the stored weights for this call (e.g. after
    :func:`edge_dropout`); it is treated as a constant."""
    if x.dim() != 2 or x.shape[0] != adj.shape[1]:
        raise ValueError(f"x must be ({adj.shape[1]}, d), got {tuple(x.shape)}")
    if values is None:
        vals, t_vals = adj.values, adj.t_values
    else:
        vals = values.detach().to(adj.values.dtype)
        t_vals = vals[adj.to_t.long()]
    x = x.contiguous()
    if x.dtype != vals.dtype:
        vals, t_vals = vals.to(x.dtype), t_vals.to(x.dtype)
    return _CachedTransposeSpMM.apply(x, adj.crow, adj.col, vals, adj.t_crow, adj.t_col, t_vals, adj.shape)


def edge_dropout(values: Tensor, p: float, training: bool) -> Tensor:
    """Edge weights (nnz,) with each edge zeroed with probability ``p`` and the kept ones scaled by 1/(1-p)
    (``torch.nn.functional.dropout`` on the weight vector, as the reference does), only when ``training``.
    Uses the global torch generator (seed it, or fork it, for repeatable runs). Dropped edges still count
    in the in-degree of the mean aggregator. No gradient flows to the weights."""
    if not training or p <= 0.0:
        return values
    return F.dropout(values.detach(), p=p, training=True)


class WeightedSAGEConv(nn.Module):
    """GraphSAGE convolution with the edge-weighted mean aggregator, for one relation src -> dst.

    h_dst' = W_self · h_dst + W_neigh · (1/deg(i)) Σ_{j -> i} e_ji · h_j + b

    where deg(i) is the number of edges into dst node i (parallel edges and dropped edges counted; nodes
    without in-edges get a zero neighbour term). This is DGL's ``SAGEConv(aggregator_type='mean')`` called
    with ``edge_weight``: messages u·e summed and divided by the in-degree count, not by the weight sum.
    W_self and W_neigh have no bias; b is a separate zero-initialised bias; both weights are Xavier-uniform
    with the ReLU gain (DGL's initialisation). When ``in_src > out`` W_neigh is applied before the product
    (same result, cheaper).

    Shapes: ``h_src`` (n_src, in_src), ``h_dst`` (n_dst, in_dst) -> (n_dst, out). ``edge_drop``: edge dropout
    probability on the weights (training mode only).
    """

    def __init__(self, in_src: int, in_dst: int, out: int, edge_drop: float = 0.0, bias: bool = True):
        super().__init__()
        self.fc_self = nn.Linear(in_dst, out, bias=False)
        self.fc_neigh = nn.Linear(in_src, out, bias=False)
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None
        self.edge_drop = float(edge_drop)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        gain = nn.init.calculate_gain("relu")
        nn.init.xavier_uniform_(self.fc_self.weight, gain=gain)
        nn.init.xavier_uniform_(self.fc_neigh.weight, gain=gain)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, adj: SparseAdjacency, h_src: Tensor, h_dst: Tensor) -> Tensor:
        values = edge_dropout(adj.values, self.edge_drop, self.training)
        inv_deg = 1.0 / adj.degree.clamp(min=1.0)
        if self.fc_neigh.in_features > self.fc_neigh.out_features:
            neigh = spmm(adj, self.fc_neigh(h_src), values) * inv_deg[:, None]
        else:
            neigh = self.fc_neigh(spmm(adj, h_src, values) * inv_deg[:, None])
        out = self.fc_self(h_dst) + neigh
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (f"in_src={self.fc_neigh.in_features}, in_dst={self.fc_self.in_features}, "
                f"out={self.fc_self.out_features}, edge_drop={self.edge_drop}")


def builtin_spmm(adj: SparseAdjacency, x: Tensor, values: Tensor | None = None) -> Tensor:
    """A @ x through PyTorch's own sparse autograd (a COO tensor and ``torch.sparse.mm``): the slow baseline
    the benchmark compares :func:`spmm` against. Same shapes and result as :func:`spmm`."""
    vals = adj.values if values is None else values.detach()
    coo = _csr(adj.crow, adj.col, vals.to(x.dtype), adj.shape).to_sparse_coo()
    return torch.sparse.mm(coo, x)


__all__ = ["SparseAdjacency", "WeightedSAGEConv", "builtin_spmm", "edge_dropout", "spmm"]
