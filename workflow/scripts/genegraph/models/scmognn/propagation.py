"""Inputs of scMoGNN's matching and joint-embedding variants (spec §2.2, §2.6-2.7): LSI features and the
parameter-free (decoupled) propagation on the dense cell-feature graph they define.

LSI of a counts matrix (cells x features): tf = count / cell total, idf = n_cells / feature total (features
without counts get idf 0), rows of tf·idf L1-normalised, then ln(1 + 10^4 x), then TruncatedSVD with k + 1
components (``random_state`` 777 as the reference) and the first component dropped.

Propagation over M (n_cells x k, every entry an edge weighted by its value): feature nodes start as the
identity I_k, cells as zeros. Each of L steps sums the weighted messages in both directions (m_cell = M h_feat,
m_feat = Mᵀ h_cell), standardises each message by its global mean and (ddof 1) standard deviation, mixes
h <- α h + (1 - α) m (α = β = 0.5), and standardises h again. The cell states of steps 2..L are returned.
Standardisation divides by the sd only when it is > 0 (the reference tests mean != 0 instead; they differ
only for an all-constant message, e.g. the zero feature message of the first step, where both leave it 0).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.decomposition import TruncatedSVD
from torch import Tensor

from ...errors import DataError

#: ``random_state`` of the reference's LSI TruncatedSVD.
LSI_SEED = 777


def lsi(counts: sp.spmatrix | np.ndarray, n_components: int) -> np.ndarray:
    """LSI features (n_cells, k) float32 of raw counts (n_cells, n_features); k = ``n_components`` capped at
    min(shape) - 2."""
    x = sp.csr_matrix(counts, dtype=np.float64)
    n = x.shape[0]
    row = np.asarray(x.sum(axis=1)).ravel()
    col = np.asarray(x.sum(axis=0)).ravel()
    if (row <= 0).any():
        raise DataError(f"{int((row <= 0).sum())} cell(s) have no counts; LSI needs every cell to have some")
    idf = np.zeros_like(col)
    idf[col > 0] = n / col[col > 0]
    tfidf = sp.csr_matrix(sp.diags(1.0 / row) @ x @ sp.diags(idf))
    l1 = np.asarray(tfidf.sum(axis=1)).ravel()
    l1[l1 == 0] = 1.0
    tfidf = sp.csr_matrix(sp.diags(1.0 / l1) @ tfidf)
    tfidf.data = np.log1p(tfidf.data * 1e4)
    k = min(n_components, min(x.shape) - 2)
    if k < 1:
        raise DataError(f"too few cells or features ({x.shape}) for LSI")
    svd = TruncatedSVD(n_components=k + 1, random_state=LSI_SEED)
    return svd.fit_transform(tfidf)[:, 1:].astype(np.float32)


def _standardise(h: Tensor) -> Tensor:
    sd = h.std()
    h = h - h.mean()
    return h / sd if sd > 0 else h


def propagate(features: np.ndarray | Tensor, layers: int, alpha: float = 0.5,
              device: torch.device | str = "cpu") -> list[Tensor]:
    """Cell states of propagation steps 2..``layers`` over the dense graph ``features`` (n_cells, k): a list of
    ``layers - 1`` float32 tensors (n_cells, k) on ``device``."""
    if layers < 2:
        raise DataError("propagation needs at least 2 layers (layers 2..L are kept)")
    m = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
    n, k = m.shape
    h_feat = torch.eye(k, device=device)
    h_cell = torch.zeros(n, k, device=device)
    cells = []
    for _ in range(layers):
        m_cell = _standardise(m @ h_feat)
        m_feat = _standardise(m.T @ h_cell)
        h_feat = _standardise(alpha * h_feat + (1.0 - alpha) * m_feat)
        h_cell = _standardise(alpha * h_cell + (1.0 - alpha) * m_cell)
        cells.append(h_cell)
    return cells[1:]


def combine(states: list[Tensor], logits: Tensor, index: Tensor | None = None) -> Tensor:
    """Σ_l softmax(logits)_l · states_l (rows ``index`` only, when given): (n, k)."""
    w = torch.softmax(logits, 0)
    rows = [s if index is None else s[index] for s in states]
    return sum(w[i] * r for i, r in enumerate(rows))
