"""The neighbour graph and the pinned Leiden clustering of gene embeddings, and UMAP coordinates (spec §3.1,
§4.1, §6.1 item 8).

Every evaluation metric and the gene modules depend on one clustering, so its parameters are pinned here
instead of following scanpy's changing defaults:

* neighbour graph: scanpy ``pp.neighbors`` on the embedding rows, 15 neighbours, euclidean, UMAP
  connectivities (exact kNN below 4,096 rows, seeded pynndescent above, as scanpy does), ``random_state=0``;
* Leiden: ``leidenalg`` (scanpy's ``flavor="leidenalg"``), RB-configuration partition, resolution 1.0,
  ``n_iterations=-1`` (iterate until stable), the **directed** weighted connectivity graph, seed 0 -- the
  scanpy <= 1.9 behaviour the paper's numbers were computed with. Labels are numbered from 0 by
  decreasing cluster size (leidenalg's order).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from typing import Any, TypeVar

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import DataError

log = logging.getLogger(__name__)

T = TypeVar("T")


def config_from_dict(cls: type[T], values: dict[str, Any] | None, where: str, base: T | None = None) -> T:
    """An instance of the (frozen) dataclass ``cls`` from a config mapping, over the defaults of ``base``
    (default: ``cls()``). Unknown keys are a DataError naming ``where``; a field holding a dataclass is
    built from a nested mapping over its own default; lists become tuples. The result is checked by its
    ``validate()`` when it has one."""
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise DataError(f"{where}: expected a mapping, got {values!r}")
    base = cls() if base is None else base
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(base, name)
        if dataclasses.is_dataclass(default):
            value = config_from_dict(type(default), value, f"{where}.{name}", default)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    obj = dataclasses.replace(base, **kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


@dataclass(frozen=True)
class ClusteringConfig:
    """Neighbour graph and Leiden parameters (config ``evaluate.clustering.*``).

    n_neighbors: neighbours of the kNN graph (scanpy default and the paper: 15).
    resolution: Leiden resolution (paper: 1.0; an older WSLGNN version used 3).
    flavor: ``leidenalg`` (the paper's) or ``igraph`` (scanpy's future default; undirected only).
    n_iterations: Leiden iterations; -1 = until the partition is stable.
    directed: cluster the directed connectivity graph (leidenalg flavour; the paper: true).
    random_state: seed of the kNN search (pynndescent, > 4,096 rows), Leiden and UMAP.
    """

    n_neighbors: int = 15
    resolution: float = 1.0
    flavor: str = "leidenalg"
    n_iterations: int = -1
    directed: bool = True
    random_state: int = 0

    def validate(self) -> None:
        if self.flavor not in ("leidenalg", "igraph"):
            raise DataError(f"clustering.flavor = {self.flavor!r}: must be leidenalg or igraph")
        if self.flavor == "igraph" and self.directed:
            raise DataError("clustering.flavor = igraph clusters undirected graphs only: set directed: false")
        if self.n_neighbors < 2:
            raise DataError(f"clustering.n_neighbors = {self.n_neighbors}: must be >= 2")
        if not self.resolution > 0:
            raise DataError(f"clustering.resolution = {self.resolution}: must be > 0")


def knn_graph(x: np.ndarray, n_neighbors: int = 15, random_state: int = 0) -> ad.AnnData:
    """scanpy's exact UMAP neighbour graph of the rows of ``x`` (n, d): an AnnData holding
    ``obsp['connectivities']`` (n, n symmetric fuzzy-set weights), ``obsp['distances']`` (each row's k - 1
    nearest other rows) and ``uns['neighbors']`` (what UMAP needs).

    Computed as ``sc.pp.neighbors(method="umap")`` computes it for small inputs (exact Euclidean neighbours,
    the point itself included among the k, then umap-learn's fuzzy simplicial set), for every size: scanpy
    switches to approximate neighbours above 4096 rows, whose code path fails with scipy >= 1.17 sparse
    arrays and is not exact.
    """
    from sklearn.neighbors import NearestNeighbors
    from umap.umap_ import fuzzy_simplicial_set

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(f"a neighbour graph needs at least 2 rows, got an array of shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("embedding holds NaN or infinite values")
    n = x.shape[0]
    k = min(n_neighbors, n)
    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors(x)
    idx, dist = _self_first(idx, dist)
    conn, _sigmas, _rhos = fuzzy_simplicial_set(sp.coo_matrix((n, 1)), k, random_state, "euclidean",
                                                knn_indices=idx, knn_dists=dist)
    rows = np.repeat(np.arange(n), k - 1)
    distances = sp.csr_matrix((dist[:, 1:].ravel(), (rows, idx[:, 1:].ravel())), shape=(n, n))
    graph = ad.AnnData(X=x, obs=pd.DataFrame(index=[str(i) for i in range(n)]))
    graph.obsp["connectivities"] = sp.csr_matrix(conn)
    graph.obsp["distances"] = distances
    graph.uns["neighbors"] = {"connectivities_key": "connectivities", "distances_key": "distances",
                              "params": {"n_neighbors": k, "method": "umap", "metric": "euclidean",
                                         "random_state": random_state, "use_rep": "X"}}
    return graph


def _self_first(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's own index first at distance exactly 0, as scanpy arranges them: the dot-product
    Euclidean distance of a point to itself is a rounding error (~1e-7), not 0, and UMAP's local distance
    rho, the first non-zero distance, would take it for the nearest neighbour. A row whose point is not
    among its neighbours (exact duplicates) gets it first, dropping its farthest neighbour."""
    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    order = np.argsort(~is_self, axis=1, kind="stable")
    idx, dist = np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)
    missing = ~is_self.any(axis=1)
    idx[missing] = np.column_stack([np.flatnonzero(missing), idx[missing, :-1]])
    dist[missing] = np.column_stack([np.zeros(missing.sum()), dist[missing, :-1]])
    dist[:, 0] = 0.0
    return idx, dist


def leiden_labels(connectivities: sp.spmatrix, cfg: ClusteringConfig) -> np.ndarray:
    """(n,) int Leiden cluster of each node of the weighted graph ``connectivities`` (n, n)."""
    import scanpy as sc

    cfg.validate()
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
    x = np.asarray(work.X, dtype=np.float64)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    init = u[:, :2] * s[:2]
    init *= np.sign(init[np.abs(init).argmax(axis=0), [0, 1]])
    work.obsm["X_init"] = (10 * init / max(np.abs(init).max(), 1e-12)).astype(np.float32)
    sc.tl.umap(work, init_pos="X_init", random_state=random_state)
    return np.asarray(work.obsm["X_umap"], dtype=np.float32)
