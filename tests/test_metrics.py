"""Evaluation metrics (spec §3.2-3.3, §9 items 5-6): the aggregator on the paper's heart table, the six
metrics on constructed embeddings, and NO / graph LISI / GC against brute-force computations."""

from __future__ import annotations

import heapq
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from genegraph.errors import DataError
from genegraph.evaluate.gene_embedding import lisi as lisi_mod
from genegraph.evaluate.gene_embedding.metrics import (
    METRICS,
    aggregate,
    common_gene_ratio,
    edge_auc,
    gene_alignment,
    graph_connectivity,
    graph_positions,
    neighbour_matrix,
    neighbours_overlap,
    score_embeddings,
    score_runs,
    summarise,
)

sys.path.insert(0, str(Path(__file__).parent))
from graph_fixtures import synthetic_graph  # noqa: E402

from genegraph.models.embeddings import EMBEDDING_KEY  # noqa: E402

#: Spec §7.3, Table 15 (heart, 10-seed means as printed).
HEART = pd.DataFrame(
    [[.77, .64, .43, .49, .30, .27], [.82, .76, .09, .65, .00, .10], [.84, .55, .26, .48, .10, .01],
     [.79, .72, .34, .43, .11, .26], [.79, .98, .38, .45, .12, .28], [.80, .97, .39, .44, .18, .28],
     [.82, .52, .30, .24, .03, .22], [.77, .47, .39, .37, .26, .28], [.75, .78, .53, .73, .65, .31]],
    index=["PCA", "Gene2vec", "GIANT", "WSMAE", "GAE", "VGAE", "MAE", "scBERT", "MuSe-GNN"], columns=list(METRICS))


# ---------------------------------------------------------------------------------------------------------
# aggregation


def test_aggregate_reproduces_heart_avg_score_and_rank():
    agg = aggregate(HEART)
    assert list(agg.columns) == ["avg_score", "avg_rank"] and list(agg.index) == list(HEART.index)
    assert agg.loc["MuSe-GNN", "avg_score"] == pytest.approx(0.77, abs=0.02)
    assert agg.loc["MuSe-GNN", "avg_rank"] == pytest.approx(2.67, abs=0.005)  # ranks 9, 3, 1, 1, 1, 1
    assert agg.loc["PCA", "avg_score"] == pytest.approx(0.52, abs=0.02)  # Table 1
    assert agg["avg_score"].idxmax() == "MuSe-GNN" and agg["avg_rank"].idxmin() == "MuSe-GNN"


def test_aggregate_constant_metric_ties_and_nan():
    table = pd.DataFrame({"a": [1.0, 2.0, 2.0], "const": [0.5, 0.5, 0.5], "gap": [0.3, np.nan, 0.1],
                          "none": [np.nan] * 3}, index=["x", "y", "z"])
    agg = aggregate(table)  # "none" is left out
    # a: x 0, y 1, z 1 (ranks 3, 1.5, 1.5); const: 0 for all (rank 2 each); gap: x 1, y NaN -> 0 (rank 3), z 0
    assert agg.loc["x", "avg_score"] == pytest.approx((0 + 0 + 1) / 3)
    assert agg.loc["y", "avg_score"] == pytest.approx((1 + 0 + 0) / 3)
    assert agg.loc["z", "avg_score"] == pytest.approx((1 + 0 + 0) / 3)
    assert agg.loc["x", "avg_rank"] == pytest.approx((3 + 2 + 1) / 3)
    assert agg.loc["y", "avg_rank"] == pytest.approx((1.5 + 2 + 3) / 3)
    assert agg.loc["z", "avg_rank"] == pytest.approx((1.5 + 2 + 2) / 3)
    with pytest.raises(DataError):
        aggregate(table[["none"]])


def test_summarise_means_sds_and_aggregate_per_group():
    tidy = pd.DataFrame({"group": ["g"] * 4, "method": ["m1", "m1", "m2", "m2"], "seed": [0, 1, 0, 1],
                         **{m: [0.2, 0.4, 0.6, 0.8] for m in METRICS}})
    out = summarise(tidy)
    assert list(out["method"]) == ["m1", "m2"] and (out["n_seeds"] == 2).all()
    assert out.loc[0, "AUC_mean"] == pytest.approx(0.3) and out.loc[1, "AUC_sd"] == pytest.approx(np.sqrt(0.02))
    assert list(out["avg_score"]) == [0.0, 1.0] and list(out["avg_rank"]) == [2.0, 1.0]


def test_alignment_is_shown_beside_but_not_aggregated():
    tidy = pd.DataFrame({"group": ["g"] * 2, "method": ["m1", "m2"], "seed": [0, 0],
                         **{m: [0.2, 0.8] for m in METRICS}, "align_MRR": [0.9, 0.1], "align_top1": [0.8, 0.0]})
    out = summarise(tidy).set_index("method")
    assert out.loc["m1", "align_MRR_mean"] == 0.9 and "align_top1_sd" in out
    assert list(out["avg_score"]) == [0.0, 1.0]  # m1's better alignment does not enter Avg Score


# ---------------------------------------------------------------------------------------------------------
# constructed embeddings


def _panel(n_common: int = 120, n_own: int = 10, n_datasets: int = 3):
    """Graphs sharing ``n_common`` genes, each with ``n_own`` genes of its own."""
    genes = [[f"C{k}" for k in range(n_common)] + [f"D{d}_{k}" for k in range(n_own)] for d in range(n_datasets)]
    return [synthetic_graph(f"ds{d}", g, n_cells=4, seed=d, density=0.2) for d, g in enumerate(genes)]


def _embeddings(graphs, z_of) -> ad.AnnData:
    obs = pd.DataFrame({"gene": np.concatenate([g.var_names for g in graphs]),
                        "dataset": np.repeat([g.uns["dataset"]["id"] for g in graphs], [g.n_vars for g in graphs])})
    x = np.concatenate([z_of(d, g.var_names) for d, g in enumerate(graphs)]).astype(np.float32)
    return ad.AnnData(obs=obs.set_axis(obs["dataset"] + ":" + obs["gene"]), obsm={EMBEDDING_KEY: x})


def _gene_vectors(genes, seed: int = 0, n_groups: int = 3, dim: int = 32) -> dict[str, np.ndarray]:
    """One base vector per gene: a group centre (groups far apart) plus spread. Each group has > 90
    common-gene rows: graph LISI gives a node with fewer than 90 reachable neighbours the value 1."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10, size=(n_groups, dim))
    return {g: centres[k % n_groups] + rng.normal(size=dim) for k, g in enumerate(genes)}


@pytest.fixture(scope="module")
def panel():
    return _panel()


@pytest.fixture(scope="module")
def base(panel):
    return _gene_vectors(sorted({g for graph in panel for g in graph.var_names}))


def _jittered(base, seed):
    """Embedding function: every row = its gene's base vector + tiny noise (datasets perfectly mixed)."""
    rng = np.random.default_rng(seed)
    return lambda d, genes: np.stack([base[g] for g in genes]) + 0.01 * rng.normal(size=(len(genes), 32))


def test_perfectly_mixed_datasets_score_near_one(panel, base):
    emb = _embeddings(panel, _jittered(base, 1))
    s = score_embeddings(emb, panel)
    assert s["n_common_genes"] == 120 and s["n_datasets"] == 3 and s["n_rows"] == 390
    assert s["ASW"] > 0.9
    assert s["iLISI"] > 0.9
    assert s["GC"] > 0.95
    assert s["CGR"] > 0.6  # at most 1 - 1/3 for 3 datasets: each common gene's 3 rows share a cluster
    assert s["align_MRR"] > 0.9 and s["align_top1"] > 0.9


def test_fully_separated_datasets_score_zero(panel, base):
    jittered = _jittered(base, 2)

    def shifted(d, genes):
        z = jittered(d, genes)
        z[:, d] += 500.0  # each dataset far away along its own axis
        return z

    s = score_embeddings(_embeddings(panel, shifted), panel)
    assert s["iLISI"] < 0.02
    assert s["CGR"] == 0.0 and s["NO"] == 0.0  # no cluster holds two datasets
    assert np.isnan(s["ASW"])  # scib skips clusters of one dataset: none is left
    assert s["GC"] > 0.95  # each dataset's own clusters stay connected
    assert s["align_MRR"] < 0.1  # the offset moves every row: a gene's nearest row elsewhere is a stranger


def test_gene_alignment_by_hand():
    genes = np.array(["a", "b", "c", "a", "b", "c", "z"])
    datasets = np.array(["d1"] * 3 + ["d2"] * 4)
    same = np.array([[1, 0], [0, 1], [-1, 0], [1, 0.1], [0.1, 1], [-1, -0.1], [0, -1]])
    assert gene_alignment(same, genes, datasets) == (1.0, 1.0)
    # d2's rows of a and b swapped: in both directions a and b rank 2nd, c ranks 1st
    swapped = same[[0, 1, 2, 4, 3, 5, 6]]
    mrr, top1 = gene_alignment(swapped, genes, datasets)
    assert mrr == pytest.approx((0.5 + 0.5 + 1) / 3) and top1 == pytest.approx(1 / 3)
    assert all(np.isnan(gene_alignment(same[:3], genes[:3], datasets[:3])))  # one dataset: nothing to align


def test_edge_auc_high_for_adjacency_eigenvectors_and_chance_for_noise():
    rng = np.random.default_rng(3)
    blocks = np.repeat(np.arange(8), 25)
    p = np.where(blocks[:, None] == blocks[None, :], 0.7, 0.05)
    upper = np.triu(rng.random(p.shape) < p, 1)
    adj = upper | upper.T
    np.fill_diagonal(adj, True)
    vals, vecs = np.linalg.eigh(adj.astype(float))
    z = vecs[:, -32:] * np.sqrt(np.abs(vals[-32:]))
    assert edge_auc(z, sp.csr_matrix(adj)) > 0.9
    assert edge_auc(z, sp.csr_matrix(adj), include_diag=False) > 0.9
    assert 0.4 < edge_auc(rng.normal(size=(200, 32)), sp.csr_matrix(adj)) < 0.6
    assert np.isnan(edge_auc(z, sp.csr_matrix(np.ones_like(adj))))


def test_auc_follows_graph_gene_order(panel, base):
    """Rows of a dataset may come in any order: each is matched to its graph gene by name."""
    rng = np.random.default_rng(4)
    emb = _embeddings(panel, lambda d, genes: rng.normal(size=(len(genes), 32)))
    perm = rng.permutation(emb.n_obs)
    assert score_embeddings(emb[perm].copy(), panel)["AUC"] == pytest.approx(score_embeddings(emb, panel)["AUC"])


def test_embeddings_must_match_graph_genes(panel):
    emb = _embeddings(panel, lambda d, genes: np.zeros((len(genes), 4)))
    with pytest.raises(DataError, match="not the graph"):
        graph_positions(emb[1:].copy(), {g.uns["dataset"]["id"]: g for g in panel})
    with pytest.raises(DataError, match="no graph"):
        graph_positions(emb, {g.uns["dataset"]["id"]: g for g in panel[:2]})


def test_score_runs_by_group(panel, base):
    emb = _embeddings(panel, _jittered(base, 5))
    emb.obs["tissue"] = np.where(emb.obs["dataset"] == "ds2", "brain", "blood")
    tidy = score_runs({("m", 0): emb}, panel, group_by="tissue")
    assert list(tidy["group"]) == ["blood", "brain"]
    assert list(tidy["n_datasets"]) == [2, 1] and tidy.loc[1, "CGR"] == 0.0
    assert tidy.loc[0, "CGR"] > 0.45  # two datasets: at most 1/2


# ---------------------------------------------------------------------------------------------------------
# brute force on tiny cases


def test_common_gene_ratio_and_graph_connectivity_by_hand():
    genes = np.array(["a", "a", "b", "c", "c", "c"])
    clusters = np.array([0, 0, 0, 1, 1, 2])
    # cluster 0: 3 rows, 2 genes; cluster 1: 2 rows, 1 gene; cluster 2: 1 row, 1 gene
    assert common_gene_ratio(genes, clusters) == pytest.approx(3 / 6 * (1 - 2 / 3) + 2 / 6 * (1 - 1 / 2))
    conn = sp.csr_matrix(np.array([  # rows 0-1 linked, 2 alone in cluster 0; 3-4 linked; 1-3 cross-cluster
        [0, 1, 0, 0, 0, 0], [1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 1],
        [0, 0, 0, 0, 1, 0]], dtype=float))
    assert graph_connectivity(conn, clusters, np.ones(6, bool)) == pytest.approx((2 / 3 + 1 + 1) / 3)
    keep = np.array([True, False, True, True, True, False])  # drop row 1: cluster 0 = {0, 2}, disconnected
    assert graph_connectivity(conn, clusters, keep) == pytest.approx((1 / 2 + 1) / 2)


def test_neighbours_overlap_matches_python_sets():
    rng = np.random.default_rng(6)
    names = [f"g{k}" for k in range(14)]
    graphs, rows = [], []
    for d in range(3):
        genes = list(rng.choice(names, size=9, replace=False))
        g = synthetic_graph(f"ds{d}", genes, n_cells=3, seed=10 + d, density=0.3, diag=d != 1)
        graphs.append(g)
        rows += [(f"ds{d}", gene) for gene in genes]
    obs = pd.DataFrame(rows, columns=["dataset", "gene"])
    order = rng.permutation(len(obs))  # rows need not follow graph order
    obs = obs.iloc[order].reset_index(drop=True)
    emb = ad.AnnData(obs=obs.set_axis([str(i) for i in range(len(obs))]),
                     obsm={EMBEDDING_KEY: np.zeros((len(obs), 2), np.float32)})
    clusters = rng.integers(0, 3, len(obs))
    by_id = {g.uns["dataset"]["id"]: g for g in graphs}
    value = neighbours_overlap(neighbour_matrix(emb, by_id, graph_positions(emb, by_id)),
                               obs["dataset"].to_numpy(), clusters)

    def nbrs(ds, gene):
        g = by_id[ds]
        i = g.var_names.get_loc(gene)
        return {g.var_names[j] for j in g.varp["coexpr"][i].indices if g.varp["coexpr"][i, j] != 0}

    expected = 0.0
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c)
        jac = [len(nbrs(*obs.loc[u]) & nbrs(*obs.loc[v])) / len(nbrs(*obs.loc[u]) | nbrs(*obs.loc[v]))
               if nbrs(*obs.loc[u]) | nbrs(*obs.loc[v]) else 0.0
               for u in members for v in members if obs.loc[u, "dataset"] != obs.loc[v, "dataset"]]
        expected += len(members) / len(obs) * (np.mean(jac) if jac else 0.0)
    assert expected > 0
    assert value == pytest.approx(expected, rel=1e-6)


def _dijkstra_topk(w: np.ndarray, start: int, k: int) -> list[tuple[float, int]]:
    dist, heap, done = {start: 0.0}, [(0.0, start)], []
    seen = set()
    while heap:
        d, u = heapq.heappop(heap)
        if u in seen:
            continue
        seen.add(u)
        if u != start:
            done.append((d, u))
        for v in np.flatnonzero(w[u]):
            nd = d + w[u, v]
            if nd < dist.get(v, np.inf):
                dist[v] = nd
                heapq.heappush(heap, (nd, v))
    return sorted(done)[:k]


def _simpson(d: np.ndarray, labels: np.ndarray, perplexity: float) -> float:
    beta, lo, hi, target = 1.0, -np.inf, np.inf, np.log(perplexity)

    def h_p(b):
        p = np.exp(-d * b)
        return np.log(p.sum()) + b * (d * p).sum() / p.sum(), p / p.sum()

    h, p = h_p(beta)
    for _ in range(50):
        if abs(h - target) <= 1e-5:
            break
        if h > target:
            lo = beta
            beta = beta * 2 if hi == np.inf else (beta + hi) / 2
        else:
            hi = beta
            beta = beta / 2 if lo == -np.inf else (beta + lo) / 2
        h, p = h_p(beta)
    return sum(p[labels == b].sum() ** 2 for b in np.unique(labels))


def test_graph_lisi_matches_brute_force():
    rng = np.random.default_rng(7)
    n, k0, perplexity = 45, 12, 4.0
    w = np.where(np.triu(rng.random((n, n)) < 0.12, 1), rng.uniform(0.05, 1.0, (n, n)), 0.0)
    w = w + w.T
    w[40:, :], w[:, 40:] = 0.0, 0.0  # nodes 40-44: a small component of their own
    w[40, 41] = w[41, 40] = w[42, 43] = w[43, 42] = 0.5
    labels = rng.integers(0, 3, n)
    got = lisi_mod.lisi_per_node(sp.csr_matrix(w), labels, k0=k0, perplexity=perplexity)
    for i in range(n):
        top = _dijkstra_topk(w, i, k0)
        if len(top) < k0:
            assert got[i] == 1.0  # scib: too few reachable neighbours -> Simpson 1
            continue
        d = np.array([t[0] for t in top])
        expected = 1 / _simpson(d, labels[[t[1] for t in top]], perplexity)
        assert got[i] == pytest.approx(expected, rel=1e-6), i
    assert (got[:40] != 1.0).any()


def test_graph_neighbours_sorted_and_padded():
    w = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 2, 0], [0, 2, 0, 0], [0, 0, 0, 0]], dtype=float))
    idx, dist = lisi_mod.graph_neighbours(w, 3)
    assert idx[0].tolist() == [1, 2, -1] and dist[0, :2].tolist() == [1.0, 3.0] and np.isnan(dist[0, 2])
    assert (idx[3] == -1).all()
