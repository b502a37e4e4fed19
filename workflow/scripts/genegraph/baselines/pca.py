"""PCA baseline (spec §3.5): each dataset on its own, genes as samples and cells as variables.

As the authors' notebook: the residual matrix (N genes x C cells) is scaled per **cell** column (zero
mean, unit variance over the genes; scanpy's ``pp.scale``, whose sample variance uses ddof = 1; a constant
column becomes 0), and each gene's embedding is its score on the first ``dim`` principal components
(U_k Σ_k of the centred matrix). Computed exactly from the top ``dim`` eigenpairs of the N x N Gram matrix
in float64 (cheap for N = 1000 and any C). Signs are fixed (each loading vector's largest-|entry| positive).
A dataset with fewer than ``dim`` non-trivial components gets zero columns for the rest (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np
import scipy.linalg

from .data import features

log = logging.getLogger(__name__)


def scale_columns(x: np.ndarray) -> np.ndarray:
    """Centre every column and divide by its sample sd (ddof 1); constant columns become 0."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    sd = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1])
    return x / np.where(sd > 0, sd, 1.0)


def pca_scores(x: np.ndarray, dim: int = 32) -> np.ndarray:
    """(N, dim) float32 principal-component scores of the rows of ``x`` (N, C) after :func:`scale_columns`."""
    xs = scale_columns(x)
    xs -= xs.mean(axis=0)
    n = xs.shape[0]
    vals, vecs = scipy.linalg.eigh(xs @ xs.T, subset_by_index=[max(0, n - dim), n - 1])
    vals, vecs = vals[::-1], vecs[:, ::-1]
    keep = min(dim, int((vals > vals[0] * 1e-10).sum()) if vals[0] > 0 else 0)
    scores = np.zeros((x.shape[0], dim))
    if keep:
        u = vecs[:, :keep]
        loadings = xs.T @ u  # C x keep, column k ∝ the k-th right singular vector
        sign = np.sign(loadings[np.abs(loadings).argmax(axis=0), np.arange(keep)])
        scores[:, :keep] = u * np.sqrt(np.clip(vals[:keep], 0, None)) * np.where(sign == 0, 1, sign)
    if keep < dim:
        log.warning("PCA: only %d non-trivial components for %d genes x %d cells; the other %d columns are 0",
                    keep, x.shape[0], x.shape[1], dim - keep)
    return scores.astype(np.float32)


def pca_embeddings(graphs: Sequence[ad.AnnData], dim: int = 32) -> list[np.ndarray]:
    """Per dataset, the (N_i, dim) PCA gene embedding of its residual features."""
    return [pca_scores(features(g), dim) for g in graphs]
