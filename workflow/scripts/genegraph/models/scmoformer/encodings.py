"""Initial node features and positional encodings of scMoFormer (spec §3.1, §3.2).

- cells: TruncatedSVD of the normalised input, train and test cells stacked (transductive: the test inputs,
  never their targets, shape the components), seeded;
- genes: the expression-weighted sum of their cells' SVD features, h_g = Xᵀ · h_c, computed as a sparse ×
  dense product (the reference builds X dense: 71k × 22k on CITE);
- proteins: a learned embedding (in the model);
- positional encodings of the gene and protein graphs: random-walk (RW-PE, diag of (A D⁻¹)^t, t = 1..k, edge
  weights used), Laplacian (Lap-PE, the k eigenvectors after the first of I − D^{-1/2} A D^{-1/2}) or none.

Deviations:
- ``gene_init='mean'`` (an option; default ``'sum'`` as the reference) divides h_g by the gene's number of
  expressing cells, so that its scale does not grow with the number of cells.
- Lap-PE eigenvector signs are fixed (the largest-magnitude entry of each vector is positive) instead of being
  left to the solver; graphs with fewer than k + 1 nodes get zero columns for the missing eigenvectors.
- RW-PE is computed exactly by sparse products on blocks of columns (no dense N × N power), on the training
  device.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from sklearn.decomposition import TruncatedSVD

from ...errors import DataError

log = logging.getLogger(__name__)

#: Graphs up to this many nodes get Lap-PE from a dense eigendecomposition.
DENSE_EIG_MAX = 2000
PE_KINDS = ("rw", "lap", "none")


def svd_cell_features(x: sp.spmatrix, n_components: int, seed: int) -> np.ndarray:
    """(n_cells, n_components) float32 TruncatedSVD scores (U·Σ) of ``x`` (n_cells, n_genes), all cells of the
    graph stacked (randomized solver, ``random_state=seed``, float32: no float64 copy of X). ``n_components`` is
    lowered to min(n_cells, n_genes) − 1 when the data are smaller."""
    k = min(n_components, min(x.shape) - 1)
    if k < 1:
        raise DataError(f"TruncatedSVD needs at least 2 cells and 2 genes, got {x.shape[0]} × {x.shape[1]}")
    if k < n_components:
        log.warning("SVD cell features: %d components asked, data %d × %d allow %d", n_components, *x.shape, k)
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=seed)
    return svd.fit_transform(sp.csr_matrix(x, dtype=np.float32)).astype(np.float32)


def gene_features(x: sp.spmatrix, h_cells: np.ndarray, how: str = "sum") -> np.ndarray:
    """(n_genes, d) float32 h_g = Xᵀ · h_c for ``x`` (n_cells, n_genes) sparse and ``h_cells`` (n_cells, d).

    ``how='mean'`` divides each gene's row by its number of non-zero cells (genes without any: zero rows). The
    product is sparse × dense in float32 on the CSR matrix as given (its transpose is a view): memory is the
    output, O(n_genes · d), never n_cells × n_genes."""
    if not sp.issparse(x):
        raise DataError("gene features need a sparse expression matrix")
    if how not in ("sum", "mean"):
        raise DataError(f"gene_init must be 'sum' or 'mean', not {how!r}")
    csr = x if sp.isspmatrix_csr(x) and x.dtype == np.float32 else sp.csr_matrix(x, dtype=np.float32)
    h = np.asarray(csr.T @ np.ascontiguousarray(h_cells, dtype=np.float32), dtype=np.float32)
    if how == "mean":
        n = np.bincount(csr.indices[csr.data != 0], minlength=csr.shape[1]).astype(np.float32)
        h = h / np.maximum(n, 1.0)[:, None]
    return h


def _check_square(adj: sp.spmatrix) -> sp.csr_matrix:
    if adj.shape[0] != adj.shape[1]:
        raise DataError(f"a positional encoding needs a square adjacency, got {adj.shape}")
    a = sp.csr_matrix(adj, dtype=np.float64)
    if a.nnz and (a.data < 0).any():
        raise DataError("positional encodings need non-negative edge weights")
    return a


def random_walk_pe(adj: sp.spmatrix, k: int, block: int = 1024, device: torch.device | str = "cpu") -> np.ndarray:
    """(n, k) float32 RW-PE: column t−1 holds diag((A D⁻¹)^t), t = 1..k, with D the weighted degrees
    (isolated nodes: 0). Exact, by float64 sparse × dense products on blocks of ``block`` columns, on
    ``device``: time O(k · nnz · n), memory O(nnz + n · block) (the reference forms dense n × n powers)."""
    a = _check_square(adj)
    n = a.shape[0]
    deg = np.asarray(a.sum(axis=0)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    m = sp.csr_matrix(a @ sp.diags(inv))
    m.sort_indices()
    device = torch.device(device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        mt = torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data), size=m.shape, dtype=torch.float64, check_invariants=False).to(device)
    pe = torch.zeros((n, k), dtype=torch.float64, device=device)
    for start in range(0, n, block):
        idx = torch.arange(start, min(start + block, n), device=device)
        own = torch.arange(idx.numel(), device=device)
        y = torch.zeros((n, idx.numel()), dtype=torch.float64, device=device)
        y[idx, own] = 1.0
        for t in range(k):
            y = mt @ y
            pe[idx, t] = y[idx, own]
    return pe.cpu().numpy().astype(np.float32)


def laplacian_pe(adj: sp.spmatrix, k: int, seed: int = 0) -> np.ndarray:
    """(n, k) float32 Lap-PE: eigenvectors 2..k+1 (by ascending eigenvalue) of the normalised Laplacian
    I − D^{-1/2} A D^{-1/2} of the symmetric weighted ``adj`` (isolated nodes: D^{-1/2} = 0), each with its
    largest-magnitude entry made positive; zero columns where n ≤ k."""
    a = _check_square(adj)
    a = (a + a.T) * 0.5
    n = a.shape[0]
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv_sqrt = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    lap = sp.identity(n, format="csr") - sp.diags(inv_sqrt) @ a @ sp.diags(inv_sqrt)
    want = min(k + 1, n)
    if n <= DENSE_EIG_MAX:
        vals, vecs = np.linalg.eigh(lap.toarray())
    else:
        # the smallest eigenvalues of L are the largest of S = I − L: Lanczos without a factorisation
        v0 = np.random.default_rng(seed).standard_normal(n)
        vals, vecs = spla.eigsh(sp.identity(n, format="csr") - lap, k=want, which="LA", v0=v0)
        vals = 1.0 - vals
    order = np.argsort(vals, kind="stable")[:want]
    vecs = vecs[:, order[1:]]
    signs = np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(vecs.shape[1])])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    pe = np.zeros((n, k), dtype=np.float32)
    pe[:, : vecs.shape[1]] = vecs
    return pe


def positional_encoding(adj: sp.spmatrix | None, kind: str, k: int, seed: int = 0,
                        device: torch.device | str = "cpu") -> np.ndarray | None:
    """The ``kind`` ('rw', 'lap' or 'none') PE (n, k) of ``adj``; None for 'none' or no graph. RW-PE is computed
    on ``device``."""
    if kind not in PE_KINDS:
        raise DataError(f"positional encoding must be one of {', '.join(PE_KINDS)}, not {kind!r}")
    if kind == "none" or adj is None:
        return None
    return random_walk_pe(adj, k, device=device) if kind == "rw" else laplacian_pe(adj, k, seed)
