"""Baselines of the protein-prediction task, on the inputs of :mod:`genegraph.models.protein_task`.

Each baseline is a function ``(train_x, train_y, test_x, seed, settings) -> predictions``: ``train_x``
(n_train, n_genes) and ``test_x`` (n_test, n_genes) transformed RNA (CSR or dense), ``train_y`` (n_train,
n_proteins) transformed proteins, ``settings`` a :class:`BaselineSettings`; the result is (n_test, n_proteins)
float32. The pipeline passes the 'train' and 'val' cells together as training cells (no baseline needs a
validation set).

- ``mean``: every test cell gets the mean protein vector of the training cells.
- ``svd_linear``: the NeurIPS 2021 competition baseline: TruncatedSVD with 50 components of the RNA, then an
  ordinary least-squares linear regression from the components to the proteins. The official script fits the
  SVD on train and test RNA together (unsupervised, transductive like scMoGNN); ``svd_fit_cells: train`` fits
  it on the training cells only. Components are capped at min(n_cells, n_genes) - 1.
- ``knn``: PCA (centred, ``knn_components``; fitted on the training cells) of the RNA, then the average protein
  vector of the ``knn_neighbors`` nearest training cells (Euclidean, uniform weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor

from ..errors import DataError


@dataclass(frozen=True)
class BaselineSettings:
    """Settings of the baselines (config ``baselines``)."""

    svd_components: int
    svd_fit_cells: str
    knn_components: int
    knn_neighbors: int


def _check(train_x, train_y: np.ndarray, test_x) -> np.ndarray:
    train_y = np.asarray(train_y, dtype=np.float64)
    if train_y.ndim != 2 or train_x.shape[0] != train_y.shape[0]:
        raise DataError(f"train_x has {train_x.shape[0]} cells but train_y has shape {train_y.shape}")
    if train_x.shape[1] != test_x.shape[1]:
        raise DataError(f"train_x has {train_x.shape[1]} genes but test_x has {test_x.shape[1]}")
    if train_y.shape[0] == 0:
        raise DataError("no training cells")
    if not np.all(np.isfinite(train_y)):
        raise DataError("train_y contains NaN or infinite values")
    return train_y


def mean_baseline(train_x, train_y, test_x, seed: int, settings: BaselineSettings) -> np.ndarray:
    """Mean protein vector of the training cells for every test cell."""
    y = _check(train_x, train_y, test_x)
    return np.tile(y.mean(axis=0), (test_x.shape[0], 1)).astype(np.float32)


def svd_linear_baseline(train_x, train_y, test_x, seed: int, settings: BaselineSettings) -> np.ndarray:
    """TruncatedSVD of the RNA then linear regression (the competition baseline)."""
    y = _check(train_x, train_y, test_x)
    if settings.svd_fit_cells == "train_and_test":
        fit_x = sp.vstack([sp.csr_matrix(train_x), sp.csr_matrix(test_x)], format="csr")
    elif settings.svd_fit_cells == "train":
        fit_x = sp.csr_matrix(train_x)
    else:
        raise DataError(f"baselines.svd_fit_cells must be 'train' or 'train_and_test', not {settings.svd_fit_cells!r}")
    k = min(settings.svd_components, min(fit_x.shape) - 1)
    if k < 1:
        raise DataError(f"too few cells or genes ({fit_x.shape}) for a TruncatedSVD")
    svd = TruncatedSVD(n_components=k, random_state=seed).fit(fit_x)
    reg = LinearRegression().fit(svd.transform(train_x), y)
    return reg.predict(svd.transform(test_x)).astype(np.float32)


def knn_baseline(train_x, train_y, test_x, seed: int, settings: BaselineSettings) -> np.ndarray:
    """Mean protein vector of the nearest training cells in RNA PCA space."""
    y = _check(train_x, train_y, test_x)
    k = min(settings.knn_components, min(train_x.shape) - 1)
    if k < 1:
        raise DataError(f"too few cells or genes ({train_x.shape}) for a PCA")
    solver = "arpack" if sp.issparse(train_x) else "auto"
    pca = PCA(n_components=k, svd_solver=solver, random_state=seed).fit(train_x)
    neighbours = min(settings.knn_neighbors, y.shape[0])
    reg = KNeighborsRegressor(n_neighbors=neighbours).fit(pca.transform(train_x), y)
    return reg.predict(pca.transform(test_x)).astype(np.float32)


#: Baseline name (as in score tables) -> function.
BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "mean": mean_baseline,
    "svd_linear": svd_linear_baseline,
    "knn": knn_baseline,
}
