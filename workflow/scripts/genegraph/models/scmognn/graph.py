"""scMoGNN's graph (spec §2.3): the cell-feature bipartite graph, hallmark gene-gene edges, batch statistics.

- Cell-feature edges: one per non-zero entry of the transformed RNA matrix x (cells x genes), weighted by the
  value, in both directions (feature -> cell is x itself as an (n_cells, n_genes) adjacency; cell -> feature
  is its transpose, shared without a copy).
- Pathway edges: every gene set (a ``dict[str, list[str]]``; genes matched to the feature names by exact,
  case-sensitive symbol, duplicates within a set ignored) is a directed clique over its member genes, all
  ordered pairs j != k. A pair in several sets gets one edge per set (parallel edges, as the reference); see
  :mod:`genegraph.models.layers.sparse` for how parallel edges enter the mean. Weights over the *training*
  cells (all non-test cells, as the reference computes them before holding out validation): ``cos`` =
  cosine of the two gene columns, ``one`` = 1, ``pearson`` = 1 - Pearson r. Edges with |w| > threshold are
  kept; a weight that is undefined (a gene never expressed in the training cells, NaN) never passes. All
  weights come from one Gram product over the member genes.
- Batch statistics: 9 per-cell statistics of x (mean, std, 25/50/75th percentile of the non-zeros, max,
  number of non-zeros / 1000, mean and std of the non-zeros; std with ddof 0), averaged within each batch and
  given to every cell of the batch.

Deviations: a cell without any non-zero entry gets 0 for the non-zero statistics (the reference raises); the
``spearman`` pathway weight is not offered; gene-set members are deduplicated within a set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from ...errors import DataError
from ..layers.sparse import SparseAdjacency

PATHWAY_WEIGHTS = ("cos", "one", "pearson")


@dataclass(frozen=True)
class CellFeatureGraph:
    """scMoGNN's heterogeneous graph on one device.

    ``feature2cell``: (n_cells, n_features) adjacency (edges feature -> cell, weights = x);
    ``cell2feature``: its transpose; ``pathway``: (n_features, n_features) gene-gene adjacency or None;
    ``batch_stats``: (n_cells, 9) float32 tensor; ``cell_init``: (n_cells, k) float32 tensor or None.
    """

    feature2cell: SparseAdjacency
    cell2feature: SparseAdjacency
    pathway: SparseAdjacency | None
    batch_stats: torch.Tensor
    cell_init: torch.Tensor | None

    @property
    def n_cells(self) -> int:
        return self.feature2cell.shape[0]

    @property
    def n_features(self) -> int:
        return self.feature2cell.shape[1]

    def to(self, device: torch.device | str) -> CellFeatureGraph:
        return CellFeatureGraph(
            feature2cell=self.feature2cell.to(device), cell2feature=self.cell2feature.to(device),
            pathway=None if self.pathway is None else self.pathway.to(device),
            batch_stats=self.batch_stats.to(device),
            cell_init=None if self.cell_init is None else self.cell_init.to(device),
        )


def pathway_edges(
    x_train: sp.csr_matrix, features: Sequence[str], gene_sets: Mapping[str, Sequence[str]], weight: str,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hallmark edges (src, dst, weight), each (n_edges,), between feature indices (see module docstring).

    ``x_train``: (n_train_cells, n_features) transformed RNA of the training cells."""
    if weight not in PATHWAY_WEIGHTS:
        raise DataError(f"pathway_weight must be one of {', '.join(PATHWAY_WEIGHTS)}, not {weight!r}")
    position = {name: i for i, name in enumerate(map(str, features))}
    members = []
    for genes in gene_sets.values():
        idx = list(dict.fromkeys(position[g] for g in genes if g in position))
        if len(idx) >= 2:
            members.append(np.asarray(idx, dtype=np.int64))
    if not members:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    used = np.unique(np.concatenate(members))
    local = np.full(len(position), -1, dtype=np.int64)
    local[used] = np.arange(len(used))
    w = _pair_weights(sp.csr_matrix(x_train)[:, used], weight)
    src, dst, val = [], [], []
    for idx in members:
        j, k = np.meshgrid(idx, idx, indexing="ij")
        off = j != k
        j, k = j[off], k[off]
        src.append(j)
        dst.append(k)
        val.append(w[local[j], local[k]])
    src, dst, val = np.concatenate(src), np.concatenate(dst), np.concatenate(val)
    with np.errstate(invalid="ignore"):
        keep = np.abs(val) > threshold
    return src[keep], dst[keep], val[keep].astype(np.float32)


def _pair_weights(x: sp.csr_matrix, weight: str) -> np.ndarray:
    """(m, m) weights between the m columns of ``x`` (NaN where undefined)."""
    m = x.shape[1]
    if weight == "one":
        return np.ones((m, m))
    x = x.astype(np.float64)
    gram = (x.T @ x).toarray()
    if weight == "cos":
        norm = np.sqrt(np.diag(gram))
        with np.errstate(divide="ignore", invalid="ignore"):
            return gram / np.outer(norm, norm)
    n = x.shape[0]
    mean = np.asarray(x.mean(axis=0)).ravel()
    cov = gram / n - np.outer(mean, mean)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.outer(sd, sd)
    r[:, sd == 0] = np.nan
    r[sd == 0, :] = np.nan
    return 1.0 - r


def batch_statistics(x: sp.csr_matrix, batch: Sequence[str]) -> np.ndarray:
    """The 9 batch statistics (n_cells, 9) float32 of the module docstring."""
    x = sp.csr_matrix(x, dtype=np.float64)
    x.sort_indices()
    n, m = x.shape
    batch = np.asarray(batch).astype(str)
    if batch.shape != (n,):
        raise DataError(f"{len(batch)} batch labels for {n} cells")
    counts = np.diff(x.indptr)
    rows = np.repeat(np.arange(n), counts)
    total = np.bincount(rows, weights=x.data, minlength=n)
    total_sq = np.bincount(rows, weights=x.data**2, minlength=n)
    mean = total / m
    std = np.sqrt(np.clip(total_sq / m - mean**2, 0.0, None))
    safe = np.maximum(counts, 1)
    nz_mean = np.where(counts > 0, total / safe, 0.0)
    nz_std = np.where(counts > 0, np.sqrt(np.clip(total_sq / safe - nz_mean**2, 0.0, None)), 0.0)
    # Values sorted within each row: row-major sort by (row, value).
    order = np.lexsort((x.data, rows))
    sorted_vals = x.data[order]
    start = x.indptr[:-1]
    stats = [mean, std]
    for q in (25.0, 50.0, 75.0):
        stats.append(_row_percentile(sorted_vals, start, counts, q))
    row_max = np.zeros(n)
    has = counts > 0
    row_max[has] = sorted_vals[start[has] + counts[has] - 1]
    stats.append(np.where(counts < m, np.maximum(row_max, 0.0), row_max))
    stats += [counts / 1000.0, nz_mean, nz_std]
    per_cell = np.stack(stats, axis=1)
    labels, inverse = np.unique(batch, return_inverse=True)
    sums = np.zeros((len(labels), per_cell.shape[1]))
    np.add.at(sums, inverse, per_cell)
    per_batch = sums / np.bincount(inverse, minlength=len(labels))[:, None]
    return per_batch[inverse].astype(np.float32)


def _row_percentile(sorted_vals: np.ndarray, start: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(row, q)`` (linear interpolation) of each row's non-zeros; 0 for empty rows."""
    out = np.zeros(len(counts))
    has = counts > 0
    pos = q / 100.0 * (counts[has] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts[has] - 1)
    frac = pos - lo
    a = sorted_vals[start[has] + lo]
    b = sorted_vals[start[has] + hi]
    out[has] = a + (b - a) * frac
    return out


def svd_cell_init(x: sp.csr_matrix, train_cells: np.ndarray, seed: int, components: int = 100) -> np.ndarray:
    """``cell_init='svd'``: TruncatedSVD (``components``, capped by the data) fitted on the training cells,
    applied to all cells; (n_cells, k) float32."""
    from sklearn.decomposition import TruncatedSVD

    x_train = x[train_cells]
    k = min(components, min(x_train.shape) - 1)
    if k < 1:
        raise DataError(f"too few training cells or features ({x_train.shape}) for the SVD cell init")
    svd = TruncatedSVD(n_components=k, random_state=seed).fit(x_train)
    return svd.transform(x).astype(np.float32)


def build_graph(
    x: sp.csr_matrix, batch_stats: np.ndarray,
    pathway: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, cell_init: np.ndarray | None = None,
    device: torch.device | str = "cpu",
) -> CellFeatureGraph:
    """scMoGNN's graph over the cells (rows) of ``x`` (n_cells, n_features), transformed RNA.

    ``batch_stats``: (n_cells, 9) from :func:`batch_statistics`; ``pathway``: None (no gene-gene edges) or
    (src, dst, weight) from :func:`pathway_edges`; ``cell_init``: optional (n_cells, k) initial cell features."""
    x = sp.csr_matrix(x, dtype=np.float32)
    x.eliminate_zeros()
    n_cells, n_features = x.shape
    if batch_stats.shape[0] != n_cells:
        raise DataError(f"{batch_stats.shape[0]} rows of batch statistics for {n_cells} cells")
    f2c = SparseAdjacency.from_scipy(x, device=device)
    adj_pathway = None
    if pathway is not None:
        src, dst, w = pathway
        if len(src) == 0:
            raise DataError("pathway edges are on but no gene set has 2 genes among the features "
                            "(or no pair passes the threshold); set pathway: false")
        adj_pathway = SparseAdjacency.from_edges(dst, src, w, (n_features, n_features), device=device)
    stats = torch.as_tensor(batch_stats, dtype=torch.float32, device=device)
    init = None if cell_init is None else torch.as_tensor(cell_init, dtype=torch.float32, device=device)
    return CellFeatureGraph(feature2cell=f2c, cell2feature=f2c.transpose(), pathway=adj_pathway,
                            batch_stats=stats, cell_init=init)
