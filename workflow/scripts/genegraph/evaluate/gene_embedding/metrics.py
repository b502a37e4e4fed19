"""The six MuSe-GNN evaluation metrics, their per-method summary and the Avg Score / Avg Rank aggregation
(spec §3.1-3.3). All are "higher is better" and are computed on an embeddings AnnData (one row per gene per
dataset; obs ``gene`` and ``dataset``) against the datasets' gene graphs.

Shared setup (:func:`score_embeddings`, computed once): the 15-NN UMAP connectivity graph of **all** rows and
its pinned Leiden clustering (:mod:`genegraph.evaluate.gene_embedding.clustering`); "common genes" = genes present
in every dataset
of the embedding. Then, exactly as the authors' evaluation computed them:

* **ASW** (common genes; scib ``silhouette_batch``): within each Leiden cluster that holds >= 2 datasets and
  more rows than datasets, the silhouette of the *dataset* labels (euclidean) per row, scored 1 - |s|,
  averaged per cluster, then over clusters.
* **AUC** (all genes): per dataset, ROC AUC of the rows' cosine similarities against the dataset's 0/1
  co-expression adjacency over all N² entries, diagonal included (``auc_include_diag``); mean over
  datasets. (The authors' sigmoid is monotone and left out.)
* **iLISI** (common genes): the graph LISI of the dataset labels on a 15-NN graph recomputed on the
  common-gene rows, median, scaled to [0, 1] (:mod:`genegraph.evaluate.gene_embedding.lisi`). As in scib, a row
  with fewer than 90
  rows reachable in that graph scores LISI 1 (no mixing): with at most 90 common-gene rows, or components
  that small, iLISI is 0.
* **GC** (common genes; scib ``graph_connectivity``): the all-row connectivity graph restricted to the
  common-gene rows; per Leiden cluster, the largest connected component's share of the cluster's rows;
  mean over clusters.
* **CGR** (all genes): Σ_c (|c|/N)(1 - distinct genes in c / |c|) = 1 - Σ_c distinct(c) / N.
* **NO** (all genes): per cluster, the mean over ordered pairs of rows from *different* datasets of the
  Jaccard index of the two genes' neighbour sets (gene names, self included) in their own graphs;
  NO = Σ_c (|c|/N) · mean_c (0 for a cluster without cross-dataset pairs). Computed with matrix products
  of neighbour-indicator matrices over the gene vocabulary.

Beyond the paper, **gene alignment** (:func:`gene_alignment`; reported next to the six, left out of Avg Score
and Avg Rank so that those stay the paper's): none of the six checks that a gene lands in the same place in
every dataset, so per-dataset embeddings with arbitrary axes (PCA per dataset) can score well on them while
being useless for comparing genes across datasets. For every ordered pair of datasets and every gene the two
share, the rank of the gene's own row among all rows of the other dataset by cosine similarity:
``align_MRR`` is the mean reciprocal rank, ``align_top1`` the share of genes whose nearest row in the other
dataset is itself (both NaN when no two datasets share a gene; chance is about ln(n)/n and 1/n).

A common-gene metric is NaN when the datasets share no gene, ASW and iLISI are NaN for a single dataset
(nothing to mix) and ASW also when no cluster qualifies; each case is logged. :func:`aggregate` treats NaN
as described there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import roc_auc_score, silhouette_samples

from genegraph.config import settings
from genegraph.errors import DataError
from genegraph.evaluate.gene_embedding.clustering import ClusteringSettings, knn_graph, leiden_labels
from genegraph.evaluate.gene_embedding.lisi import ilisi_graph
from genegraph.evaluate.seeds import over_seeds
from genegraph.graphs.io import adjacency as edge_type
from genegraph.graphs.io import genes as graph_genes
from genegraph.models.embeddings import embedding

log = logging.getLogger(__name__)

METRICS = ("ASW", "AUC", "iLISI", "GC", "CGR", "NO")
#: Reported beside the six, not aggregated (see the module docstring).
ALIGNMENT = ("align_MRR", "align_top1")
#: Rows of one dataset ranked against another at once by :func:`gene_alignment`.
_ALIGN_BLOCK = 1024
#: Rows of a cluster processed at once by :func:`neighbours_overlap` (bounds a rows x cluster block).
NO_BLOCK = 2048


@dataclass(frozen=True)
class EvaluationSettings:
    """The config section ``evaluate`` without its run-level keys (methods, group_by): the pinned clustering,
    iLISI, the edge AUC and the adjacency. Types, defaults and meanings: the config schema."""

    clustering: ClusteringSettings
    lisi_neighbors: int
    lisi_perplexity: float | None
    auc_include_diag: bool
    adjacency: str


#: Keys of the config section ``evaluate`` that :class:`EvaluationSettings` does not carry.
RUN_KEYS = ("methods", "group_by")


def evaluation_settings(values: Mapping[str, Any] | None = None) -> EvaluationSettings:
    """:class:`EvaluationSettings` from (part of) the config section ``evaluate``, over the schema's defaults."""
    return settings(EvaluationSettings, "evaluate", values, omit=RUN_KEYS)


# ---------------------------------------------------------------------------------------------------------
# embeddings and graphs


def graphs_by_dataset(graphs: Mapping[str, ad.AnnData] | Sequence[ad.AnnData]) -> dict[str, ad.AnnData]:
    """Graph AnnData keyed by dataset id (``uns['dataset']['id']`` for a sequence)."""
    if isinstance(graphs, Mapping):
        return dict(graphs)
    out = {}
    for g in graphs:
        ds = str(g.uns.get("dataset", {}).get("id", ""))
        if not ds or ds in out:
            raise DataError(f"graph files need unique uns['dataset']['id'] values; got {ds!r} (missing or twice)")
        out[ds] = g
    return out


def graph_positions(emb: ad.AnnData, graphs: Mapping[str, ad.AnnData]) -> np.ndarray:
    """(n_rows,) position of each embedding row's gene in its dataset's graph. DataError unless every
    dataset of ``emb`` has a graph and its rows are exactly that graph's genes."""
    for col in ("gene", "dataset"):
        if col not in emb.obs:
            raise DataError(f"embeddings lack obs['{col}'] (have: {', '.join(emb.obs.columns)})")
    genes = emb.obs["gene"].astype(str).to_numpy()
    datasets = emb.obs["dataset"].astype(str).to_numpy()
    pos = np.empty(len(genes), dtype=np.int64)
    for ds in pd.unique(datasets):
        if ds not in graphs:
            raise DataError(f"embeddings name dataset '{ds}' but no graph was given for it "
                            f"(graphs: {', '.join(graphs)})")
        rows = np.flatnonzero(datasets == ds)
        local = graphs[ds].var_names.get_indexer(genes[rows])
        if (local < 0).any() or len(np.unique(local)) != len(rows) or len(rows) != graphs[ds].n_vars:
            raise DataError(f"dataset '{ds}': the embedding's {len(rows)} rows are not the graph's "
                            f"{graphs[ds].n_vars} genes (missing, extra or repeated genes)")
        pos[rows] = local
    return pos


def common_gene_mask(genes: np.ndarray, datasets: np.ndarray) -> np.ndarray:
    """(n,) bool: the row's gene occurs in every dataset."""
    pairs = pd.DataFrame({"gene": genes, "dataset": datasets}).drop_duplicates()
    per_gene = pairs.groupby("gene")["dataset"].nunique()
    return pd.Series(genes).map(per_gene).to_numpy() == len(pd.unique(datasets))


def neighbour_matrix(emb: ad.AnnData, graphs: Mapping[str, ad.AnnData], positions: np.ndarray,
                     adjacency: str = "coexpr") -> sp.csr_matrix:
    """(n_rows, V) 0/1 CSR: row r has a 1 at every gene (in the vocabulary of all the embedding's genes)
    that is a neighbour of r's gene in r's own graph (a self-loop makes the gene its own neighbour)."""
    genes = emb.obs["gene"].astype(str).to_numpy()
    datasets = emb.obs["dataset"].astype(str).to_numpy()
    vocab = np.unique(genes)
    rows_out, cols_out = [], []
    for ds in pd.unique(datasets):
        rows = np.flatnonzero(datasets == ds)
        g = graphs[ds]
        if adjacency not in g.varp:
            raise DataError(f"graph of '{ds}' has no varp['{adjacency}']")
        adj = edge_type(g, adjacency)
        adj.eliminate_zeros()
        row_of_local = np.empty(g.n_vars, dtype=np.int64)
        row_of_local[positions[rows]] = rows
        vocab_of_local = np.searchsorted(vocab, graph_genes(g))
        coo = adj.tocoo()
        rows_out.append(row_of_local[coo.row])
        cols_out.append(vocab_of_local[coo.col])
    r, c = np.concatenate(rows_out), np.concatenate(cols_out)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(genes), len(vocab)))


# ---------------------------------------------------------------------------------------------------------
# the six metrics


def asw_batch(x: np.ndarray, batch: np.ndarray, clusters: np.ndarray) -> float:
    """Batch ASW (scib ``silhouette_batch``, scaled): mean over qualifying clusters of the mean of
    1 - |silhouette of the batch labels| inside the cluster. NaN when no cluster qualifies."""
    per_cluster = []
    for c in np.unique(clusters):
        inside = clusters == c
        n_batches = len(np.unique(batch[inside]))
        if n_batches < 2 or n_batches == inside.sum():
            continue
        per_cluster.append(np.mean(1 - np.abs(silhouette_samples(x[inside], batch[inside]))))
    if not per_cluster:
        log.warning("ASW: no Leiden cluster holds rows of two datasets; NaN")
        return float("nan")
    return float(np.mean(per_cluster))


def edge_auc(z: np.ndarray, adjacency: sp.spmatrix, include_diag: bool = True) -> float:
    """ROC AUC of the cosine similarities of ``z`` (N, d; rows in graph order) against the (N, N) 0/1
    adjacency. NaN when the adjacency has only one class."""
    z = np.asarray(z, dtype=np.float64)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    z = np.divide(z, norm, out=np.zeros_like(z), where=norm > 0)
    score = z @ z.T
    target = sp.csr_matrix(adjacency).toarray() != 0
    if not include_diag:
        off = ~np.eye(len(z), dtype=bool)
        score, target = score[off], target[off]
    target, score = target.ravel(), score.ravel()
    if target.all() or not target.any():
        return float("nan")
    return float(roc_auc_score(target, score))


def mean_edge_auc(x: np.ndarray, datasets: np.ndarray, positions: np.ndarray,
                  graphs: Mapping[str, ad.AnnData], adjacency: str = "coexpr", include_diag: bool = True) -> float:
    """Mean over datasets of :func:`edge_auc` (datasets whose adjacency has one class are skipped)."""
    aucs = {}
    for ds in pd.unique(datasets):
        rows = np.flatnonzero(datasets == ds)
        ordered = rows[np.argsort(positions[rows])]
        aucs[ds] = edge_auc(x[ordered], edge_type(graphs[ds], adjacency), include_diag)
    skipped = [ds for ds, v in aucs.items() if np.isnan(v)]
    if skipped:
        log.warning("edge AUC undefined (all entries edges, or none) for %s; left out of the mean", skipped)
    kept = [v for v in aucs.values() if not np.isnan(v)]
    log.info("edge AUC per dataset: %s", {k: round(v, 4) for k, v in aucs.items()})
    return float(np.mean(kept)) if kept else float("nan")


def graph_connectivity(connectivities: sp.spmatrix, clusters: np.ndarray, keep: np.ndarray) -> float:
    """scib ``graph_connectivity``: the graph restricted to the rows ``keep`` (bool), per cluster the
    largest connected component (within the cluster) / the cluster's kept rows; mean over clusters."""
    sub = sp.csr_matrix(connectivities)[keep][:, keep].tocoo()
    lab = clusters[keep]
    if lab.size == 0:
        return float("nan")
    same = lab[sub.row] == lab[sub.col]
    graph = sp.csr_matrix((sub.data[same], (sub.row[same], sub.col[same])), shape=(lab.size, lab.size))
    _, comp = connected_components(graph, directed=True, connection="strong")
    sizes = pd.DataFrame({"cluster": lab, "comp": comp}).value_counts().groupby(level="cluster").max()
    return float((sizes / pd.Series(lab).value_counts().reindex(sizes.index)).mean())


def common_gene_ratio(genes: np.ndarray, clusters: np.ndarray) -> float:
    """CGR = Σ_c (|c|/N)(1 - distinct genes in c / |c|)."""
    distinct = len(pd.DataFrame({"c": clusters, "g": genes}).drop_duplicates())
    return float(1 - distinct / len(genes))


def neighbours_overlap(neighbours: sp.csr_matrix, datasets: np.ndarray, clusters: np.ndarray) -> float:
    """NO = Σ_c (|c|/N) · mean over cross-dataset ordered row pairs (u, v) in c of
    |N_u ∩ N_v| / |N_u ∪ N_v| (0 when both sets are empty), ``neighbours`` = :func:`neighbour_matrix`."""
    n = len(clusters)
    _, ds_code = np.unique(datasets, return_inverse=True)
    total = 0.0
    for c in np.unique(clusters):
        rows = np.flatnonzero(clusters == c)
        block = neighbours[rows]
        used = np.unique(block.indices)
        dense = block[:, used].toarray()  # (|c|, genes used) float32 0/1
        deg = dense.sum(axis=1)
        codes = ds_code[rows]
        pair_sum = 0.0
        for lo in range(0, len(rows), NO_BLOCK):
            inter = dense[lo:lo + NO_BLOCK] @ dense.T
            union = deg[lo:lo + NO_BLOCK, None] + deg[None, :] - inter
            jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            cross = codes[lo:lo + NO_BLOCK, None] != codes[None, :]
            pair_sum += float(jac[cross].sum(dtype=np.float64))
        n_pairs = len(rows) ** 2 - int((np.bincount(codes) ** 2).sum())
        if n_pairs:
            total += len(rows) / n * pair_sum / n_pairs
    return float(total)


def gene_alignment(x: np.ndarray, genes: np.ndarray, datasets: np.ndarray) -> tuple[float, float]:
    """(mean reciprocal rank, top-1 share) of each gene's own row among the rows of every other dataset that
    holds it, by cosine similarity (rank 1 + the number of rows strictly more similar); over all ordered
    dataset pairs and shared genes. ``x``: (rows, d); ``genes``, ``datasets``: (rows,). NaN, NaN when no two
    datasets share a gene."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    unit = (x / np.where(norm > 0, norm, 1.0)).astype(np.float64)
    rows = {d: np.flatnonzero(datasets == d) for d in pd.unique(datasets)}
    reciprocal, top1 = [], []
    for a, rows_a in rows.items():
        for b, rows_b in rows.items():
            if a == b:
                continue
            where_b = pd.Series(rows_b, index=genes[rows_b])
            shared = where_b.index.intersection(pd.Index(genes[rows_a]))
            if not len(shared):
                continue
            src = pd.Series(rows_a, index=genes[rows_a]).loc[shared].to_numpy()
            dst = where_b.loc[shared].to_numpy()
            target = unit[rows_b]
            for lo in range(0, len(src), _ALIGN_BLOCK):
                sim = unit[src[lo : lo + _ALIGN_BLOCK]] @ target.T
                own = np.einsum("ij,ij->i", unit[src[lo : lo + _ALIGN_BLOCK]], unit[dst[lo : lo + _ALIGN_BLOCK]])
                rank = 1 + (sim > own[:, None] + 1e-12).sum(axis=1)
                reciprocal.append(1.0 / rank)
                top1.append(rank == 1)
    if not reciprocal:
        return float("nan"), float("nan")
    return float(np.concatenate(reciprocal).mean()), float(np.concatenate(top1).mean())


# ---------------------------------------------------------------------------------------------------------
# all six at once


def score_embeddings(emb: ad.AnnData, graphs: Mapping[str, ad.AnnData] | Sequence[ad.AnnData],
                     cfg: EvaluationSettings | dict | None = None) -> dict[str, float]:
    """The six metrics and the gene alignment of one embeddings file (see the module docstring), plus
    ``n_rows``, ``n_datasets``, ``n_common_genes`` and ``n_clusters``. ``graphs``: the datasets' gene-graph
    files (``varp[cfg.adjacency]``), keyed by dataset id or as a sequence."""
    cfg = cfg if isinstance(cfg, EvaluationSettings) else evaluation_settings(cfg)
    graphs = graphs_by_dataset(graphs)
    positions = graph_positions(emb, graphs)
    x = embedding(emb)
    genes = emb.obs["gene"].astype(str).to_numpy()
    datasets = emb.obs["dataset"].astype(str).to_numpy()
    cl = cfg.clustering
    knn = knn_graph(x, cl.n_neighbors, cl.random_state)
    conn = knn.obsp["connectivities"]
    clusters = leiden_labels(conn, cl)
    common = common_gene_mask(genes, datasets)
    n_common, n_datasets = len(np.unique(genes[common])), len(np.unique(datasets))
    if n_common == 0:
        log.warning("the %d datasets share no gene: ASW, iLISI and GC are NaN", n_datasets)
    mixing = n_common > 0 and n_datasets > 1
    if n_datasets == 1:
        log.info("one dataset: the mixing metrics ASW and iLISI are NaN")
    nan = float("nan")
    scores = {
        "ASW": asw_batch(x[common], datasets[common], clusters[common]) if mixing else nan,
        "AUC": mean_edge_auc(x, datasets, positions, graphs, cfg.adjacency, cfg.auc_include_diag),
        "iLISI": ilisi_graph(x[common], datasets[common], cl.n_neighbors, cfg.lisi_neighbors,
                             cfg.lisi_perplexity, cl.random_state) if mixing else nan,
        "GC": graph_connectivity(conn, clusters, common) if n_common else nan,
        "CGR": common_gene_ratio(genes, clusters),
        "NO": neighbours_overlap(neighbour_matrix(emb, graphs, positions, cfg.adjacency), datasets, clusters),
    }
    scores["align_MRR"], scores["align_top1"] = gene_alignment(x, genes, datasets)
    extra = {"n_rows": len(genes), "n_datasets": n_datasets, "n_common_genes": n_common,
             "n_clusters": int(clusters.max() + 1)}
    log.info("scores: %s (%s)", {k: round(v, 4) for k, v in scores.items()}, extra)
    return {**scores, **extra}


def score_runs(embeddings: Mapping[tuple[str, int], ad.AnnData],
               graphs: Mapping[str, ad.AnnData] | Sequence[ad.AnnData],
               cfg: EvaluationSettings | dict | None = None, group_by: str | None = None) -> pd.DataFrame:
    """Tidy table, one row per (group, method, seed): columns group, method, seed, the six metrics and the
    counts of :func:`score_embeddings`.

    ``embeddings``: (method, seed) -> embeddings AnnData. ``group_by``: None scores each embedding as a
    whole (group ``all``); an obs column such as ``tissue`` scores the rows of each of its values
    separately, with their own neighbour graph, clustering and common genes (the paper evaluates each
    tissue on its own).
    """
    cfg = cfg if isinstance(cfg, EvaluationSettings) else evaluation_settings(cfg)
    graphs = graphs_by_dataset(graphs)
    rows = []
    for (method, seed), emb in embeddings.items():
        if group_by is None:
            parts = [("all", emb)]
        elif group_by not in emb.obs:
            raise DataError(f"evaluate.group_by = {group_by!r}: not an obs column of the {method} embeddings")
        else:
            values = emb.obs[group_by].astype(str)
            parts = [(v, emb[(values == v).to_numpy()]) for v in pd.unique(values)]
        for group, part in parts:
            log.info("scoring %s, seed %s, group %s", method, seed, group)
            rows.append({"group": group, "method": method, "seed": seed, **score_embeddings(part, graphs, cfg)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# aggregation


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """Avg Score and Avg Rank of methods × metrics values (higher is better; spec §3.3).

    ``avg_score``: per metric, min-max scaling across methods, (v - min) / (max - min), then the mean over
    metrics. A metric with the same value for every method scales to 0 for all of them.
    ``avg_rank``: per metric, rank 1 = highest value, ties get their average rank; mean over metrics.
    NaN: a metric that is NaN for every method is left out (logged); a method's NaN in a kept metric
    counts as the worst: scaled 0 and ranked after every method with a value (NaNs tie among themselves).
    Returns a DataFrame indexed by method with columns ``avg_score``, ``avg_rank``.
    """
    values = table.apply(pd.to_numeric, errors="raise").astype(float)
    missing = values.columns[values.isna().all()]
    if len(missing):
        log.warning("aggregate: leaving out metrics with no value for any method: %s", list(missing))
        values = values.drop(columns=missing)
    if values.shape[1] == 0:
        raise DataError("aggregate: no metric has a value")
    lo, hi = values.min(), values.max()
    span = hi - lo
    scaled = ((values - lo) / span.where(span > 0)).fillna(0.0)
    ranks = values.rank(axis=0, ascending=False, method="average", na_option="bottom")
    return pd.DataFrame({"avg_score": scaled.mean(axis=1), "avg_rank": ranks.mean(axis=1)}, index=values.index)


def summarise(tidy: pd.DataFrame, metrics: Sequence[str] = METRICS,
              beside: Sequence[str] = ALIGNMENT) -> pd.DataFrame:
    """Per group (when ``tidy`` has a ``group`` column) and method, in order of appearance: ``n_seeds``,
    ``{metric}_mean`` and ``{metric}_sd`` (sample sd over seeds) of ``metrics`` and of the ``beside`` columns
    that ``tidy`` has, and the :func:`aggregate` of the ``metrics`` means (only) across the group's methods.
    Returns a flat table with columns group, method, ...."""
    tidy = tidy if "group" in tidy else tidy.assign(group="all")
    shown = [*metrics, *[c for c in beside if c in tidy]]
    parts = []
    for group, part in tidy.groupby("group", sort=False):
        out = over_seeds(part, ("method",), shown).set_index("method")
        means = out[[f"{m}_mean" for m in metrics]].rename(columns=lambda c: c.removesuffix("_mean"))
        parts.append(out.join(aggregate(means)).reset_index().assign(group=group))
    table = pd.concat(parts, ignore_index=True)
    return table[["group", *table.columns.drop("group")]]
