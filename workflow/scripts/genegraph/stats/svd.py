"""Principal-component scores with reproducible signs: the one truncated SVD of the library."""

from __future__ import annotations

import numpy as np
import scipy.linalg


def principal_scores(x: np.ndarray, k: int, center: bool = True, gram: str = "smaller",
                     sign_by: str = "scores") -> np.ndarray:
    """(n, k) float64 scores U_k Σ_k of the rows of ``x`` (n, c), columns centred first when ``center``.

    Computed from the eigendecomposition of a Gram matrix in float64: the smaller of the two (n x n or c x c),
    or with ``gram="rows"`` always the n x n one (the MuSe-GNN authors' PCA of genes over cells).
    Each component's sign is fixed so that its largest-magnitude score is positive (``sign_by="scores"``) or its
    largest-magnitude loading, the entry of the right singular vector (``sign_by="loadings"``); components whose
    singular value is zero (below 1e-10 of the largest) and components beyond min(n, c) are columns of zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    if center:
        x = x - x.mean(axis=0)
    n, c = x.shape
    m = min(n, c, k)
    scores = np.zeros((n, k))
    if m == 0:
        return scores
    if gram not in ("smaller", "rows"):
        raise ValueError(f"gram must be 'smaller' or 'rows', not {gram!r}")
    if sign_by not in ("scores", "loadings"):
        raise ValueError(f"sign_by must be 'scores' or 'loadings', not {sign_by!r}")
    by_rows = gram == "rows" or n <= c
    size = n if by_rows else c
    matrix = x @ x.T if by_rows else x.T @ x
    vals, vecs = scipy.linalg.eigh(matrix, subset_by_index=[size - m, size - 1])
    vals, vecs = vals[::-1], vecs[:, ::-1]
    keep = int((vals > vals[0] * 1e-10).sum()) if vals[0] > 0 else 0
    vals, vecs = vals[:keep], vecs[:, :keep]
    part = vecs * np.sqrt(vals) if by_rows else x @ vecs
    ref = part if sign_by == "scores" else (x.T @ vecs if by_rows else vecs)
    sign = np.sign(ref[np.abs(ref).argmax(axis=0), np.arange(keep)])
    scores[:, :keep] = part * np.where(sign == 0, 1.0, sign)
    return scores
