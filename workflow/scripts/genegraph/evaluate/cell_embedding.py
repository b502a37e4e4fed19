"""Cell-level metrics of an embedding or an expression matrix (cells x features) against labels.

Two protocols:

* **Leiden sweep to the number of labels** (SpaFormer's clustering check, spec §4.3): PCA to ``n_pcs``
  components -> exact kNN graph (``metric``, default correlation distance) with scanpy's UMAP connectivities
  -> Leiden at resolution ``start``, then ``start + step``, ... until the number of clusters reaches the
  number of labels (or ``max_resolution`` is passed) -> NMI (arithmetic mean normalisation) and ARI.
* **scib-style scores** (Luecken et al. 2022, as the NeurIPS 2021 joint-embedding task used them):
  NMI/ARI of the Leiden clustering, over a resolution sweep, with the best NMI; cell-type ASW rescaled
  (s + 1) / 2; batch ASW (per label, mean over its cells of 1 - |s| with the batch as the silhouette label;
  then the mean over labels); graph connectivity (per label, the share of its cells in the largest connected
  component of the kNN graph restricted to that label; mean over labels); cell-cycle conservation
  1 - |V_after - V_before| / V_before per batch, V the variance explained by the S/G2M scores through
  principal-component regression; trajectory conservation (Spearman(pseudotime before, after) + 1) / 2.

kNN graphs are always exact (scikit-learn's brute-force ``KNeighborsTransformer`` through scanpy's
``transformer="sklearn"``): scanpy's approximate path (pynndescent, above 4,096 rows) breaks on scipy 1.17
sparse arrays. Leiden uses leidenalg (RB-configuration, directed graph, iterate to convergence; old scanpy
defaults, as the SpaFormer evaluation ran) or igraph (``flavor``).

Deviations: the SpaFormer reference stops its sweep at resolution 0.36 (0.26, 0.30, 0.32, 0.34, 0.36)
whatever the number of clusters; here the sweep steps by ``step`` until the number of labels is reached, up
to ``max_resolution`` (set it to 0.36 to cap as the reference did).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_samples,
)
from threadpoolctl import ThreadpoolController

from ..errors import DataError

LEIDEN_FLAVORS = ("leidenalg", "igraph")
#: scib's resolution sweep for the optimal-NMI clustering: 0.1, 0.2, ..., 2.0.
SCIB_RESOLUTIONS = tuple(round(0.1 * i, 1) for i in range(1, 21))


@dataclass(frozen=True)
class LeidenSweep:
    """The Leiden sweep to the number of labels (schema: ``evaluation.clustering`` in
    ``workflow/schemas/config/imputation.schema.yaml``)."""

    n_pcs: int
    n_neighbors: int
    metric: str
    start: float
    step: float
    max_resolution: float
    flavor: str
    seed: int

    def validate(self) -> None:
        if self.flavor not in LEIDEN_FLAVORS:
            raise DataError(f"clustering.flavor must be one of {', '.join(LEIDEN_FLAVORS)}, not {self.flavor!r}")
        if self.step <= 0 or self.start <= 0 or self.max_resolution < self.start:
            raise DataError("clustering: need start > 0, step > 0 and max_resolution >= start")


@contextmanager
def _openmp_threads_kept() -> Iterator[None]:
    """Restore every OpenMP runtime's thread count after the block: numba's threading layer (started by
    scanpy's neighbour code) resets the libgomp it shares with torch to all cores, which silently undoes a
    caller's ``torch.set_num_threads``."""
    before = {lib.filepath: lib.num_threads for lib in ThreadpoolController().select(user_api="openmp").lib_controllers}
    try:
        yield
    finally:
        for lib in ThreadpoolController().select(user_api="openmp").lib_controllers:
            if lib.filepath in before and lib.num_threads != before[lib.filepath]:
                lib.set_num_threads(before[lib.filepath])


def _matrix(x, what: str = "embedding") -> np.ndarray:
    """x as a finite 2-D float64 array (dense)."""
    arr = x.toarray() if sp.issparse(x) else np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{what} must be a 2-D array (cells x features), got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what} has NaN or infinite values")
    return arr


def _labels(labels, n: int, what: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise DataError(f"{what} must have one entry per cell ({n}), got shape {arr.shape}")
    return arr


def pca_scores(x, n_comps: int, seed: int = 0) -> np.ndarray:
    """(n, min(n_comps, n - 1, d)) principal-component scores of the centred rows of x (seeded)."""
    arr = _matrix(x)
    k = min(n_comps, arr.shape[0] - 1, arr.shape[1])
    solver = "arpack" if k < min(arr.shape) - 1 else "full"
    return PCA(n_components=k, svd_solver=solver, random_state=seed).fit_transform(arr)


def knn_connectivities(x, n_neighbors: int = 15, metric: str = "euclidean") -> sp.csr_matrix:
    """(n, n) symmetric UMAP connectivities of the exact kNN graph of the rows of x (scanpy ``pp.neighbors``,
    ``transformer="sklearn"``; n_neighbors counts the cell itself, as scanpy)."""
    arr = _matrix(x)
    if arr.shape[0] < 3:
        raise DataError(f"need at least 3 cells for a kNN graph, got {arr.shape[0]}")
    adata = ad.AnnData(np.zeros((arr.shape[0], 0), dtype=np.float32))
    adata.obsm["X_rep"] = arr
    k = min(n_neighbors, arr.shape[0] - 1)
    with _openmp_threads_kept():
        sc.pp.neighbors(adata, n_neighbors=k, use_rep="X_rep", metric=metric, transformer="sklearn", random_state=0)
    return sp.csr_matrix(adata.obsp["connectivities"])


def leiden(connectivities: sp.spmatrix, resolution: float, seed: int = 0, flavor: str = "leidenalg") -> np.ndarray:
    """(n,) int Leiden cluster of each cell on the weighted graph ``connectivities``."""
    n = connectivities.shape[0]
    adata = ad.AnnData(np.zeros((n, 0), dtype=np.float32))
    kwargs = {"directed": True, "n_iterations": -1} if flavor == "leidenalg" else {"directed": False,
                                                                                     "n_iterations": 2}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "In the future, the default backend", FutureWarning)
        sc.tl.leiden(adata, resolution=resolution, random_state=seed, adjacency=sp.csr_matrix(connectivities),
                     flavor=flavor, **kwargs)
    return adata.obs["leiden"].astype(int).to_numpy()


def leiden_to_n_clusters(
    connectivities: sp.spmatrix, n_target: int, sweep: LeidenSweep
) -> tuple[np.ndarray, float]:
    """Leiden from ``sweep.start`` in steps of ``sweep.step`` until at least ``n_target`` clusters (or the
    largest resolution <= ``sweep.max_resolution``); returns (labels (n,), resolution used)."""
    resolution = sweep.start
    while True:
        clusters = leiden(connectivities, resolution, sweep.seed, sweep.flavor)
        nxt = round(resolution + sweep.step, 10)
        if len(np.unique(clusters)) >= n_target or nxt > sweep.max_resolution + 1e-12:
            return clusters, resolution
        resolution = nxt


def sweep_clustering_scores(x, labels, sweep: LeidenSweep) -> dict[str, float]:
    """SpaFormer's clustering check of x (cells x features): PCA -> kNN -> Leiden sweep to the number of
    labels -> {nmi, ari, n_clusters, resolution}. Cells with a missing label (NaN/None/"") are left out."""
    arr = _matrix(x)
    lab = _labels(labels, arr.shape[0])
    keep = ~pd.isna(lab) & (lab.astype(str) != "")
    arr, lab = arr[keep], lab[keep].astype(str)
    n_labels = len(np.unique(lab))
    if n_labels < 2:
        raise DataError(f"the clustering check needs at least 2 labels, got {n_labels}")
    rep = pca_scores(arr, sweep.n_pcs, sweep.seed) if arr.shape[1] > sweep.n_pcs else arr
    conn = knn_connectivities(rep, sweep.n_neighbors, sweep.metric)
    clusters, resolution = leiden_to_n_clusters(conn, n_labels, sweep)
    return {
        "nmi": float(normalized_mutual_info_score(lab, clusters, average_method="arithmetic")),
        "ari": float(adjusted_rand_score(lab, clusters)),
        "n_clusters": len(np.unique(clusters)),
        "resolution": float(resolution),
    }


# --- scib-style metrics ---------------------------------------------------------------------------------


def nmi_ari_best(
    connectivities: sp.spmatrix, labels, resolutions: Sequence[float] = SCIB_RESOLUTIONS, seed: int = 0,
    flavor: str = "leidenalg",
) -> dict[str, float]:
    """Leiden at each resolution; the clustering with the best NMI gives {nmi, ari, resolution} (scib)."""
    lab = _labels(labels, connectivities.shape[0]).astype(str)
    best: dict[str, float] = {"nmi": -1.0}
    for res in resolutions:
        clusters = leiden(connectivities, res, seed, flavor)
        nmi = float(normalized_mutual_info_score(lab, clusters, average_method="arithmetic"))
        if nmi > best["nmi"]:
            best = {"nmi": nmi, "ari": float(adjusted_rand_score(lab, clusters)), "resolution": float(res)}
    return best


def celltype_asw(x, labels) -> float:
    """Mean silhouette width of the labels (euclidean), rescaled to [0, 1] by (s + 1) / 2."""
    arr = _matrix(x)
    lab = _labels(labels, arr.shape[0]).astype(str)
    if not 2 <= len(np.unique(lab)) <= arr.shape[0] - 1:
        raise DataError("cell-type ASW needs between 2 and n_cells - 1 labels")
    return float((silhouette_samples(arr, lab).mean() + 1) / 2)


def batch_asw(x, labels, batch) -> float:
    """scib's batch ASW: for each label, the mean over its cells of 1 - |s|, s the silhouette of the cell with
    the batch as its cluster (computed among the cells of that label); then the mean over labels. Labels
    seen in one batch only (or with no more cells than batches) are skipped; DataError if all are."""
    arr = _matrix(x)
    lab = _labels(labels, arr.shape[0]).astype(str)
    bat = _labels(batch, arr.shape[0], "batch").astype(str)
    scores = []
    for value in np.unique(lab):
        idx = np.flatnonzero(lab == value)
        n_batches = len(np.unique(bat[idx]))
        if n_batches < 2 or len(idx) <= n_batches:
            continue
        scores.append(float(np.mean(1 - np.abs(silhouette_samples(arr[idx], bat[idx])))))
    if not scores:
        raise DataError("batch ASW: no label is present in two or more batches")
    return float(np.mean(scores))


def graph_connectivity(connectivities: sp.spmatrix, labels) -> float:
    """Mean over labels of the share of the label's cells in the largest connected component of the graph
    restricted to them."""
    conn = sp.csr_matrix(connectivities)
    lab = _labels(labels, conn.shape[0]).astype(str)
    shares = []
    for value in np.unique(lab):
        idx = np.flatnonzero(lab == value)
        _, comp = connected_components(conn[idx][:, idx], directed=True, connection="strong")
        shares.append(np.bincount(comp).max() / len(idx))
    return float(np.mean(shares))


def pcr_variance(x, covariates, n_comps: int = 50, seed: int = 0) -> float:
    """Share of the total variance of x (cells x features) explained by ``covariates`` (cells x c) through
    principal-component regression: sum over PCs of (variance ratio of the PC) x (R^2 of the PC on the
    covariates), as scib's ``pc_regression``."""
    arr = _matrix(x)
    cov = np.asarray(covariates, dtype=np.float64).reshape(arr.shape[0], -1)
    k = min(n_comps, arr.shape[0] - 1, arr.shape[1])
    solver = "arpack" if k < min(arr.shape) - 1 else "full"
    pca = PCA(n_components=k, svd_solver=solver, random_state=seed).fit(arr)
    scores = pca.transform(arr)
    r2 = np.array([LinearRegression().fit(cov, scores[:, j]).score(cov, scores[:, j]) for j in range(k)])
    return float(np.sum(pca.explained_variance_ratio_ * r2))


def cell_cycle_conservation(x_before, x_after, cc_scores, batch=None, n_comps: int = 50) -> float:
    """1 - |V_after - V_before| / V_before per batch (V: :func:`pcr_variance` of the S and G2M scores
    ``cc_scores`` (cells x 2), before = the unintegrated expression, after = the embedding), mean over
    batches."""
    before, after = _matrix(x_before, "x_before"), _matrix(x_after, "x_after")
    if before.shape[0] != after.shape[0]:
        raise DataError(f"x_before has {before.shape[0]} cells but x_after {after.shape[0]}")
    scores = np.asarray(cc_scores, dtype=np.float64).reshape(before.shape[0], -1)
    bat = np.zeros(before.shape[0], dtype=int) if batch is None else _labels(batch, before.shape[0], "batch")
    values = []
    for value in np.unique(bat):
        idx = np.flatnonzero(bat == value)
        v_before = pcr_variance(before[idx], scores[idx], n_comps)
        v_after = pcr_variance(after[idx], scores[idx], n_comps)
        if v_before <= 0:
            raise DataError(f"cell-cycle conservation: no cell-cycle variance before integration in batch {value}")
        values.append(1 - abs(v_after - v_before) / v_before)
    return float(np.mean(values))


def trajectory_conservation(pseudotime_before, pseudotime_after) -> float:
    """(Spearman correlation of the two pseudotimes + 1) / 2, over cells where both are finite."""
    a = np.asarray(pseudotime_before, dtype=np.float64)
    b = np.asarray(pseudotime_after, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"pseudotimes differ in shape: {a.shape} vs {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        raise DataError("trajectory conservation needs at least 3 cells with a finite pseudotime")
    return float((spearmanr(a[ok], b[ok]).statistic + 1) / 2)


def diffusion_pseudotime(x, root: int, n_neighbors: int = 15, n_dcs: int = 10) -> np.ndarray:
    """(n,) diffusion pseudotime (scanpy ``tl.dpt``) on the exact kNN graph of x from the cell ``root``."""
    arr = _matrix(x)
    adata = ad.AnnData(np.zeros((arr.shape[0], 0), dtype=np.float32))
    adata.obsm["X_rep"] = arr
    with _openmp_threads_kept():
        sc.pp.neighbors(adata, n_neighbors=min(n_neighbors, arr.shape[0] - 1), use_rep="X_rep", transformer="sklearn")
        sc.tl.diffmap(adata, n_comps=min(n_dcs + 1, arr.shape[0] - 2))
        adata.uns["iroot"] = int(root)
        sc.tl.dpt(adata, n_dcs=min(n_dcs, adata.obsm["X_diffmap"].shape[1]))
    return adata.obs["dpt_pseudotime"].to_numpy()


def embedding_scores(x, labels, batch=None, n_neighbors: int = 15, seed: int = 0,
                     resolutions: Sequence[float] = SCIB_RESOLUTIONS) -> dict[str, float]:
    """The label-based scib scores of an embedding (cells x d): nmi, ari (best-NMI Leiden), asw_celltype,
    graph_connectivity, and asw_batch when ``batch`` is given."""
    arr = _matrix(x)
    lab = _labels(labels, arr.shape[0]).astype(str)
    conn = knn_connectivities(arr, n_neighbors)
    out = nmi_ari_best(conn, lab, resolutions, seed)
    out.pop("resolution")
    out["asw_celltype"] = celltype_asw(arr, lab)
    out["graph_connectivity"] = graph_connectivity(conn, lab)
    if batch is not None:
        out["asw_batch"] = batch_asw(arr, lab, batch)
    return out
