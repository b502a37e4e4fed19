"""PCA baseline (spec §3.5): each dataset on its own, genes as samples and cells as variables.

As the authors' notebook: the residual matrix (N genes x C cells) is scaled per **cell** column (zero
mean, unit variance over the genes; scanpy's ``pp.scale``, whose sample variance uses ddof = 1; a constant
column becomes 0), and each gene's embedding is its score on the first ``dim`` principal components
(U_k Σ_k of the centred matrix), computed exactly in float64 by :func:`genegraph.stats.svd.principal_scores`
(each loading vector's largest-|entry| positive: the datasets' PCAs are separate, so their signs, and with them
the cross-dataset metrics, depend on this convention).
A dataset with fewer than ``dim`` non-trivial components gets zero columns for the rest (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np

from genegraph.models.baselines.data import features
from genegraph.stats.svd import principal_scores

log = logging.getLogger(__name__)


def scale_columns(x: np.ndarray) -> np.ndarray:
    """Centre every column and divide by its sample sd (ddof 1); constant columns become 0."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    sd = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1])
    return x / np.where(sd > 0, sd, 1.0)


def pca_scores(x: np.ndarray, dim: int = 32) -> np.ndarray:
    """(N, dim) float32 principal-component scores of the rows of ``x`` (N, C) after :func:`scale_columns`
    (:func:`genegraph.stats.svd.principal_scores`; missing components are columns of zeros)."""
    scores = principal_scores(scale_columns(x), dim, gram="rows", sign_by="loadings")
    keep = int((np.abs(scores).max(axis=0) > 0).sum())
    if keep < dim:
        log.warning("PCA: only %d non-trivial components for %d genes x %d cells; the other %d columns are 0",
                    keep, x.shape[0], x.shape[1], dim - keep)
    return scores.astype(np.float32)


def pca_embeddings(graphs: Sequence[ad.AnnData], dim: int = 32) -> list[np.ndarray]:
    """Per dataset, the (N_i, dim) PCA gene embedding of its residual features."""
    return [pca_scores(features(g), dim) for g in graphs]
