"""Baselines of the CellPLM downstream tasks, on the same inputs and scales as the model.

* denoising: ``raw`` (the observed matrix itself: a held-out entry is 0) and kNN smoothing (each cell's
  normalised profile averaged over its k nearest neighbours, itself included, in PCA space of the observed
  log-normalised data, then log1p);
* annotation: logistic regression on PCA of log-normalised HVG expression, and a CellTypist-style classifier
  (logistic regression on log-normalised HVG expression scaled to zero mean / unit variance, clipped at ±10,
  as CellTypist trains; celltypist itself is not used);
* embedding: PCA of log-normalised HVG expression.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from ...errors import DataError


def log_normalise(counts: sp.spmatrix, target_sum: float = 1e4) -> sp.csr_matrix:
    """log1p(x / library · target_sum) per cell, sparse (cells with no counts stay 0)."""
    x = sp.csr_matrix(counts, dtype=np.float64)
    lib = np.asarray(x.sum(axis=1)).ravel()
    scale = np.divide(target_sum, lib, out=np.zeros_like(lib), where=lib > 0)
    x = sp.diags(scale) @ x
    x.data = np.log1p(x.data)
    return x.tocsr()


def highly_variable(counts: sp.spmatrix, n_top_genes: int) -> np.ndarray:
    """Column positions (sorted) of the ``n_top_genes`` genes with the largest normalised dispersion (scanpy's
    ``flavor='seurat'`` statistics on log-normalised data; ties broken by column order, so exactly
    ``n_top_genes``); all columns when ``n_top_genes`` is 0 or not below the number of genes."""
    g = counts.shape[1]
    if n_top_genes == 0 or n_top_genes >= g:
        return np.arange(g)
    import scanpy as sc  # heavy import, needed only here

    stats = sc.pp.highly_variable_genes(ad.AnnData(log_normalise(counts).astype(np.float32)), flavor="seurat",
                                        inplace=False)
    score = np.nan_to_num(stats["dispersions_norm"].to_numpy(dtype=np.float64), nan=-np.inf)
    return np.sort(np.argsort(-score, kind="stable")[:n_top_genes])


def pca(x: sp.spmatrix | np.ndarray, n_components: int, seed: int) -> np.ndarray:
    """(n, k) principal components of ``x`` (centred implicitly; ARPACK on sparse input), k ≤ min(n, g) − 1."""
    k = min(n_components, min(x.shape) - 1)
    if k < 1:
        raise DataError(f"PCA needs at least 2 cells and 2 genes, got {x.shape}")
    solver = "arpack" if sp.issparse(x) else "full"
    return PCA(n_components=k, svd_solver=solver, random_state=seed).fit_transform(x)


def pca_embedding(counts: sp.spmatrix, n_components: int = 50, n_top_genes: int = 2000, seed: int = 0) -> np.ndarray:
    """PCA baseline of the cell-embedding task: (n, k) PCs of log-normalised HVG expression."""
    cols = highly_variable(counts, n_top_genes)
    return pca(log_normalise(counts)[:, cols], n_components, seed)


def knn_smooth(observed: sp.spmatrix, rows: np.ndarray, cols: np.ndarray, target_sum: float, k: int, n_pcs: int,
               seed: int = 0) -> np.ndarray:
    """kNN-smoothing prediction at entries (``rows``, ``cols``): log1p(target_sum · mean over the k nearest
    cells (self included, Euclidean in ``n_pcs`` PCs of log-normalised ``observed``) of x / library)."""
    x = sp.csr_matrix(observed, dtype=np.float64)
    pcs = pca(log_normalise(x, target_sum), n_pcs, seed)
    k = min(k, x.shape[0])
    _, nbrs = NearestNeighbors(n_neighbors=k).fit(pcs).kneighbors(pcs)
    lib = np.asarray(x.sum(axis=1)).ravel()
    prop = sp.diags(np.divide(1.0, lib, out=np.zeros_like(lib), where=lib > 0)) @ x
    n = x.shape[0]
    w = sp.csr_matrix((np.full(n * k, 1.0 / k), nbrs.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    smooth = (w @ prop).tocsr()
    return np.log1p(np.asarray(smooth[rows, cols]).ravel() * target_sum)


def raw_prediction(observed: sp.spmatrix, rows: np.ndarray, cols: np.ndarray, target_sum: float) -> np.ndarray:
    """The observed matrix, log-normalised by its own library, at entries (``rows``, ``cols``)."""
    return np.asarray(log_normalise(observed, target_sum)[rows, cols]).ravel()


def _classify(features: np.ndarray, labels: Sequence[str], train: np.ndarray, c: float, seed: int) -> np.ndarray:
    y = np.asarray([str(v) for v in labels])
    clf = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    clf.fit(features[train], y[train])
    return clf.predict(features)


def pca_logistic(counts: sp.spmatrix, labels: Sequence[str], train: np.ndarray, n_top_genes: int,
                 n_components: int, c: float, seed: int = 0) -> np.ndarray:
    """Predicted label of every cell: logistic regression on PCs of log-normalised HVG expression, fitted on
    ``train`` (PCA is unsupervised and sees all cells, as scanpy workflows do)."""
    cols = highly_variable(counts, n_top_genes)
    return _classify(pca(log_normalise(counts)[:, cols], n_components, seed), labels, train, c, seed)


def celltypist_style(counts: sp.spmatrix, labels: Sequence[str], train: np.ndarray, n_top_genes: int, c: float,
                     seed: int = 0) -> np.ndarray:
    """Predicted label of every cell: logistic regression on log-normalised HVG expression, standardised with
    the training cells' mean and SD and clipped at ±10 (CellTypist's training recipe)."""
    cols = highly_variable(counts, n_top_genes)
    x = log_normalise(counts)[:, cols].toarray()
    mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
    x = np.clip((x - mu) / np.where(sd > 0, sd, 1.0), -10, 10)
    return _classify(x, labels, train, c, seed)
