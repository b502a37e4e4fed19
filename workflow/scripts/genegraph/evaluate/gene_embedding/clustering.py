"""The neighbour graph and the pinned Leiden clustering of gene embeddings, and UMAP coordinates (spec §3.1,
§4.1, §6.1 item 8).

Every evaluation metric and the gene modules depend on one clustering, so its parameters are pinned here
instead of following scanpy's changing defaults:

* neighbour graph: scanpy ``pp.neighbors`` on the embedding rows, 15 neighbours, euclidean, UMAP
  connectivities, ``random_state=0``, with exact (brute-force) neighbours for every size -- scanpy itself
  switches to approximate neighbours above 4,096 rows, and that code path fails with scipy >= 1.17 sparse
  arrays -- through :class:`SelfFirstNeighbors`, which also keeps each row first among its own neighbours
  when the data hold exact duplicate rows;
* Leiden: ``leidenalg`` (scanpy's ``flavor="leidenalg"``), RB-configuration partition, resolution 1.0,
  ``n_iterations=-1`` (iterate until stable), the **directed** weighted connectivity graph, seed 0 -- the
  scanpy <= 1.9 behaviour the paper's numbers were computed with. Labels are numbered from 0 by
  decreasing cluster size (leidenalg's order).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.neighbors import KNeighborsTransformer

from genegraph.errors import DataError
from genegraph.stats.svd import principal_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusteringSettings:
    """Neighbour graph and Leiden parameters (config ``evaluate.clustering``, ``modules.clustering``; types,
    defaults and meanings: the config schema)."""

    n_neighbors: int
    resolution: float
    flavor: str
    n_iterations: int
    directed: bool
    random_state: int

    def validate(self) -> None:
        if self.flavor == "igraph" and self.directed:
            raise DataError("clustering.flavor = igraph clusters undirected graphs only: set directed: false")


class SelfFirstNeighbors(KNeighborsTransformer):
    """scikit-learn's exact k-nearest-neighbour transformer, as scanpy uses it, with each row's own index first
    at distance exactly 0 among its ``n_neighbors`` (scanpy's count, the row itself included).

    The dot-product Euclidean distance of a point to itself is a rounding error (~1e-7), not 0, and with exact
    duplicate rows the row itself may come second, after its twin: scanpy would then drop the twin as
    "itself", and UMAP's local distance rho would take the rounding error for the nearest neighbour. A row
    whose own index is not among its neighbours gets it first, dropping its farthest neighbour."""

    def transform(self, X) -> sp.csr_matrix:
        k = self.n_neighbors
        dist, idx = self.kneighbors(X, n_neighbors=k)
        n = idx.shape[0]
        is_self = idx == np.arange(n)[:, None]
        order = np.argsort(~is_self, axis=1, kind="stable")
        idx, dist = np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)
        missing = ~is_self.any(axis=1)
        idx[missing] = np.column_stack([np.flatnonzero(missing), idx[missing, :-1]])
        dist[missing] = np.column_stack([np.zeros(missing.sum()), dist[missing, :-1]])
        dist[:, 0] = 0.0
        return sp.csr_matrix((dist.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def knn_graph(x: np.ndarray, n_neighbors: int = 15, random_state: int = 0) -> ad.AnnData:
    """scanpy's UMAP neighbour graph of the rows of ``x`` (n, d), exact: an AnnData holding ``X`` = x,
    ``obsp['connectivities']`` (n, n symmetric fuzzy-set weights), ``obsp['distances']`` (each row's k - 1
    nearest other rows) and ``uns['neighbors']`` (what UMAP needs)."""
    import scanpy as sc

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(f"a neighbour graph needs at least 2 rows, got an array of shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("embedding holds NaN or infinite values")
    k = min(n_neighbors, x.shape[0])
    graph = ad.AnnData(X=x, obs=pd.DataFrame(index=[str(i) for i in range(x.shape[0])]))
    sc.pp.neighbors(graph, use_rep="X", random_state=random_state,
                    transformer=SelfFirstNeighbors(n_neighbors=k, algorithm="brute"))
    d = sp.csr_matrix(graph.obsp["distances"])
    rows = np.repeat(np.arange(d.shape[0]), np.diff(d.indptr))
    others = d.indices != rows
    graph.obsp["distances"] = sp.csr_matrix((d.data[others], (rows[others], d.indices[others])), shape=d.shape)
    return graph


def leiden_labels(connectivities: sp.spmatrix, cfg: ClusteringSettings) -> np.ndarray:
    """(n,) int Leiden cluster of each node of the weighted graph ``connectivities`` (n, n)."""
    import scanpy as sc

    n = connectivities.shape[0]
    holder = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(n)]))
    with warnings.catch_warnings():  # the "future default is igraph" notice: the flavour is pinned here
        warnings.simplefilter("ignore", FutureWarning)
        sc.tl.leiden(holder, resolution=cfg.resolution, adjacency=sp.csr_matrix(connectivities),
                     flavor=cfg.flavor, n_iterations=cfg.n_iterations, directed=cfg.directed,
                     random_state=cfg.random_state)
    labels = holder.obs["leiden"].astype(int).to_numpy()
    log.info("Leiden (%s, resolution %g, directed %s, seed %d): %d clusters over %d nodes", cfg.flavor,
             cfg.resolution, cfg.directed, cfg.random_state, labels.max() + 1 if n else 0, n)
    return labels


def umap_coordinates(graph: ad.AnnData, random_state: int = 0) -> np.ndarray:
    """(n, 2) UMAP layout of a :func:`knn_graph` result (for the report), scanpy's ``tl.umap`` started from
    the first two principal components of the rows (scaled to ±10, signs fixed) instead of its spectral
    layout, which is not reproducible when the neighbour graph has several components."""
    import scanpy as sc

    work = graph.copy()
    init = principal_scores(np.asarray(work.X, dtype=np.float64), 2)
    work.obsm["X_init"] = (10 * init / max(np.abs(init).max(), 1e-12)).astype(np.float32)
    sc.tl.umap(work, init_pos="X_init", random_state=random_state)
    return np.asarray(work.obsm["X_umap"], dtype=np.float32)
