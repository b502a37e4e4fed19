"""Graph-based LISI (the iLISI that scib's ``ilisi_graph(type_="embed")`` computes; spec §3.2 item 3).

Steps, as scib does them (its compiled ``knn_graph`` helper is replaced by scipy's Dijkstra):

1. a 15-NN UMAP connectivity graph of the embedding rows
   (:func:`genegraph.evaluate.gene_embedding.clustering.knn_graph`);
2. for every node, its ``k0`` = 90 nearest nodes by shortest-path length over that graph, where an edge's
   length **is its connectivity weight** (scib sums the weights as they are, it does not invert them);
3. per node, Gaussian weights P_j ∝ exp(-β d_j) over those neighbours, β found by bisection (≤ 50 steps,
   tolerance 1e-5) so that the entropy of P equals log(perplexity), perplexity = floor(k0 / 3) = 30;
4. Simpson index = Σ_b (Σ_{j in batch b} P_j)², LISI = 1 / Simpson;
5. iLISI = median over nodes, scaled to [0, 1] as (median - 1) / (n_batches - 1).

scib's edge cases are kept: a node with fewer than ``k0`` reachable neighbours gets Simpson 1 (LISI 1; so
with at most ``k0`` rows every node does, and the scaled iLISI is 0), and a node whose weights underflow
(entropy exactly 0) gets Simpson -1. Ties in path length are broken by node index (scib: by heap order).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from genegraph.errors import DataError
from genegraph.evaluate.gene_embedding.clustering import knn_graph

log = logging.getLogger(__name__)

#: Distances held at once by :func:`graph_neighbours` (rows per Dijkstra chunk x nodes).
CHUNK_ENTRIES = 20_000_000


def graph_neighbours(connectivities: sp.spmatrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other nodes of every node by shortest-path length over ``connectivities`` (n, n,
    entry = edge length). Returns (indices (n, k) int64, -1 where fewer are reachable; distances (n, k)
    float64, NaN there), each row sorted by distance, ties by index."""
    graph = sp.csr_matrix(connectivities, dtype=np.float64)
    n = graph.shape[0]
    indices = np.full((n, k), -1, dtype=np.int64)
    distances = np.full((n, k), np.nan)
    take = min(k, n - 1)
    if take <= 0:
        return indices, distances
    chunk = max(1, CHUNK_ENTRIES // n)
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        dist = dijkstra(graph, directed=True, indices=rows)
        dist[np.arange(len(rows)), rows] = np.inf  # a node is not its own neighbour
        cand = np.argpartition(dist, take - 1, axis=1)[:, :take]
        cand_dist = np.take_along_axis(dist, cand, axis=1)
        order = np.lexsort((cand, cand_dist), axis=1)
        cand, cand_dist = np.take_along_axis(cand, order, 1), np.take_along_axis(cand_dist, order, 1)
        reachable = np.isfinite(cand_dist)
        indices[rows, :take] = np.where(reachable, cand, -1)
        distances[rows, :take] = np.where(reachable, cand_dist, np.nan)
    return indices, distances


def _entropy(distances: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entropy H (m,) and normalised weights P (m, k) of exp(-β d) per row; H = 0, P = 0 where all
    weights underflow."""
    weights = np.exp(-distances * beta[:, None])
    total = weights.sum(axis=1)
    ok = total > 0
    safe = np.where(ok, total, 1.0)
    entropy = np.where(ok, np.log(safe) + beta * (distances * weights).sum(axis=1) / safe, 0.0)
    return entropy, np.where(ok[:, None], weights / safe[:, None], 0.0)


def simpson_index(distances: np.ndarray, neighbour_labels: np.ndarray, n_labels: int, perplexity: float,
                  tol: float = 1e-5, max_steps: int = 50) -> np.ndarray:
    """(n,) Simpson index of the labels among each node's neighbours, weighted by the perplexity-calibrated
    Gaussian of the path lengths. ``distances`` (n, k) with NaN for missing neighbours (-> Simpson 1);
    ``neighbour_labels`` (n, k) int in [0, n_labels)."""
    n = distances.shape[0]
    simpson = np.ones(n)
    full = ~np.isnan(distances).any(axis=1)
    d = distances[full]
    m = d.shape[0]
    target = np.log(perplexity)
    beta, lo, hi = np.ones(m), np.full(m, -np.inf), np.full(m, np.inf)
    entropy, p = _entropy(d, beta)
    diff = entropy - target
    for _ in range(max_steps):
        active = np.abs(diff) > tol
        if not active.any():
            break
        up = active & (diff > 0)  # entropy too high: sharpen
        down = active & (diff <= 0)
        lo[up], hi[down] = beta[up], beta[down]
        beta[up] = np.where(np.isinf(hi[up]), beta[up] * 2, (beta[up] + hi[up]) / 2)
        beta[down] = np.where(np.isinf(lo[down]), beta[down] / 2, (beta[down] + lo[down]) / 2)
        entropy[active], p[active] = _entropy(d[active], beta[active])
        diff = entropy - target
    per_label = np.zeros((m, n_labels))
    np.add.at(per_label, (np.repeat(np.arange(m), d.shape[1]), neighbour_labels[full].ravel()), p.ravel())
    simpson[full] = np.where(entropy == 0, -1.0, (per_label ** 2).sum(axis=1))
    return simpson


def lisi_per_node(connectivities: sp.spmatrix, labels: np.ndarray, k0: int = 90,
                  perplexity: float | None = None) -> np.ndarray:
    """(n,) graph LISI of ``labels`` (n,) over the weighted graph ``connectivities``."""
    codes, labels = np.unique(np.asarray(labels), return_inverse=True)
    if perplexity is None or perplexity >= k0:
        perplexity = float(np.floor(k0 / 3))
    idx, dist = graph_neighbours(connectivities, k0)
    neighbour_labels = np.where(idx >= 0, labels[np.maximum(idx, 0)], 0)
    return 1.0 / simpson_index(dist, neighbour_labels, len(codes), perplexity)


def ilisi_graph(x: np.ndarray, batch: np.ndarray, n_neighbors: int = 15, k0: int = 90,
                perplexity: float | None = None, random_state: int = 0) -> float:
    """Scaled graph iLISI of the rows of ``x`` (n, d) with batch labels ``batch`` (n,): 0 = no mixing,
    1 = every node's neighbourhood holds all batches evenly. NaN with fewer than 2 batches."""
    n_batches = len(np.unique(batch))
    if n_batches < 2:
        log.warning("iLISI needs at least 2 batches; got %d: NaN", n_batches)
        return float("nan")
    if x.shape[0] != len(batch):
        raise DataError(f"iLISI: {x.shape[0]} embedding rows but {len(batch)} batch labels")
    conn = knn_graph(x, n_neighbors, random_state).obsp["connectivities"]
    lisi = lisi_per_node(conn, batch, k0, perplexity)
    return float((np.nanmedian(lisi) - 1) / (n_batches - 1))
