"""Gene modules (spec §4.1-4.2): hallmark over-representation against a brute-force hypergeometric test and
BH correction, and planted modules found through Leiden clustering of constructed embeddings."""

from __future__ import annotations

from math import comb
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from genegraph.errors import DataError
from genegraph.evaluate.gene_embedding.modules import (
    hallmark_enrichment,
    module_analysis,
    module_settings,
    ortholog_gene_map,
)
from genegraph.graphs.priors.hallmark import read_gmt
from genegraph.models.embeddings import EMBEDDING_KEY

GMT = Path(__file__).resolve().parents[1] / "resources" / "msigdb" / "h.all.v7.5.1.symbols.gmt"


def _upper_tail(k: int, m: int, big_k: int, n: int) -> float:
    return sum(comb(big_k, i) * comb(m - big_k, n - i) for i in range(k, min(big_k, n) + 1)) / comb(m, n)


def _bh(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1)
    out = np.empty_like(q)
    out[order] = q
    return out


def test_enrichment_matches_brute_force():
    genes = np.array(["a", "b", "c", "d", "e", "f", "g", "h", "a", "b", "i", "j"])  # a, b in two datasets
    modules = np.array([0, 0, 0, 1, 1, 1, 2, 2, 1, 0, 2, 2])  # a lands in modules 0 and 1
    sets = {"S1": ("a", "b", "c", "zz"), "S2": ("d", "e", "g"), "S3": ("q1", "q2"), "S4": ("j",)}
    table = hallmark_enrichment(genes, modules, sets)
    assert set(table["set"]) == {"S1", "S2", "S4"}  # S3 has no gene in the run: not tested
    assert len(table) == 3 * 3 and (table["M"] == 10).all()
    background = set(genes)
    members = {0: {"a", "b", "c"}, 1: {"d", "e", "f", "a"}, 2: {"g", "h", "i", "j"}}
    expected_p = []
    for _, row in table.iterrows():
        module, s = members[row["module"]], set(sets[row["set"]]) & background
        assert (row["n"], row["K"], row["k"]) == (len(module), len(s), len(module & s))
        assert row["genes"] == ",".join(sorted(module & s))
        assert row["p"] == pytest.approx(_upper_tail(len(module & s), 10, len(s), len(module)), rel=1e-9)
        assert row["rich_factor"] == pytest.approx(len(module & s) / len(s))
        expected_p.append(row["p"])
    np.testing.assert_allclose(table["q"], _bh(np.array(expected_p)), rtol=1e-12)
    s1 = table[(table["module"] == 0) & (table["set"] == "S1")].iloc[0]
    assert s1["k"] == 3 and s1["fold_enrichment"] == pytest.approx((3 / 3) / (3 / 10))
    with pytest.raises(DataError, match="no gene set"):
        hallmark_enrichment(genes, modules, {"S3": ("q1",)})


@pytest.fixture(scope="module")
def planted():
    """Two datasets; the genes of two hallmark sets sit in tight groups of their own, other genes in
    three loose groups."""
    sets = read_gmt(GMT)
    ifn = list(sets["HALLMARK_INTERFERON_ALPHA_RESPONSE"][:40])
    chol = [g for g in sets["HALLMARK_CHOLESTEROL_HOMEOSTASIS"] if g not in ifn][:40]
    hallmark_genes = {g for genes in sets.values() for g in genes}
    other = [f"NOTINSET{k}" for k in range(120)]
    assert not hallmark_genes & set(other)
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=8, size=(5, 16))
    group = {**{g: 0 for g in ifn}, **{g: 1 for g in chol}, **{g: 2 + k % 3 for k, g in enumerate(other)}}
    genes = ifn + chol + other
    base = {g: centres[group[g]] + rng.normal(scale=0.5 if group[g] < 2 else 1.5, size=16) for g in genes}
    obs = pd.DataFrame({"gene": genes + genes, "dataset": ["d1"] * len(genes) + ["d2"] * len(genes)})
    x = np.stack([base[g] + 0.05 * rng.normal(size=16) for g in obs["gene"]]).astype(np.float32)
    emb = ad.AnnData(obs=obs.set_axis(obs["dataset"] + ":" + obs["gene"]), obsm={EMBEDDING_KEY: x})
    return emb, sets, ifn, chol


def test_planted_modules_are_enriched(planted):
    emb, sets, ifn, chol = planted
    rows, enrichment, table = module_analysis(emb, sets, {"top_sets": 2})
    modules = rows.obs["module"].astype(int).to_numpy()
    assert len(modules) == emb.n_obs and len(table) == modules.max() + 1
    assert rows.obsm["X_umap"].shape == (emb.n_obs, 2) and np.isfinite(rows.obsm["X_umap"]).all()
    assert (rows.obs_names == emb.obs_names).all()
    assert table["n_rows"].sum() == emb.n_obs
    for genes, name in ((ifn, "HALLMARK_INTERFERON_ALPHA_RESPONSE"), (chol, "HALLMARK_CHOLESTEROL_HOMEOSTASIS")):
        rows = emb.obs["gene"].isin(genes).to_numpy()
        home = np.bincount(modules[rows]).argmax()
        assert (modules[rows] == home).mean() > 0.95
        row = table.set_index("module").loc[home]
        assert row["top_sets"].startswith(name + " (q=")
        best = enrichment[(enrichment["module"] == home) & (enrichment["set"] == name)].iloc[0]
        run_genes = set(emb.obs["gene"])
        assert best["M"] == 200 and best["K"] == len(set(sets[name]) & run_genes)  # background = the run's genes
        assert best["q"] < 1e-10 and best["k"] >= 39
        assert row["n_datasets"] == 2 and row["datasets"].startswith(("d1:", "d2:"))
    background = table[~table["top_sets"].str.contains("INTERFERON|CHOLESTEROL")]
    assert (background["n_enriched"] == 0).all()


def test_modules_config_validation():
    with pytest.raises(DataError, match="modules.alpha"):
        module_settings({"alpha": 0})
    with pytest.raises(DataError, match="'resolution' was unexpected"):
        module_settings({"resolution": 2})
    assert module_settings({"clustering": {"resolution": 2.0}}).clustering.resolution == 2.0
    with pytest.raises(DataError, match="igraph clusters undirected graphs only"):
        module_settings({"clustering": {"flavor": "igraph"}})


def test_umap_coordinates_for_the_report(planted):
    from genegraph.evaluate.gene_embedding.clustering import knn_graph, umap_coordinates

    emb = planted[0]
    graph = knn_graph(emb.obsm[EMBEDDING_KEY], 15, 0)
    xy = umap_coordinates(graph, random_state=0)
    assert xy.shape == (emb.n_obs, 2) and np.isfinite(xy).all()
    np.testing.assert_array_equal(xy, umap_coordinates(graph, random_state=0))


def test_mouse_rows_reach_human_gene_sets_through_orthologs():
    obs = pd.DataFrame({"gene": ["Cd3e", "Gapdh", "CD19", "Xist"], "species": ["mouse", "mouse", "human", "mouse"]})
    emb = ad.AnnData(obs=obs.set_axis([f"r{i}" for i in range(4)]), obsm={EMBEDDING_KEY: np.zeros((4, 2))})
    orthologs = pd.DataFrame({"human": ["CD3E", "GAPDH", "GAPDHS"], "mouse": ["Cd3e", "Gapdh", "Gapdh"]})
    taxa = {"human": 9606, "mouse": 10090}
    mapping = ortholog_gene_map(emb, taxa, 9606, orthologs)
    background = np.unique(obs["gene"])  # CD19, Cd3e, Gapdh, Xist: rows index this sorted background
    got = {(background[i], r) for i, r in mapping[["index", "resource_gene"]].itertuples(index=False)}
    assert got == {("CD19", "CD19"), ("Cd3e", "CD3E"), ("Gapdh", "GAPDH"), ("Gapdh", "GAPDHS")}  # Xist: none
    human_only = emb[emb.obs["species"] == "human"].copy()
    assert ortholog_gene_map(human_only, taxa, 9606, orthologs) is None
    table = hallmark_enrichment(obs["gene"].to_numpy(), np.zeros(4, dtype=int), {"T": ["CD3E", "CD19"]}, mapping)
    assert table.loc[0, "k"] == 2 and table.loc[0, "genes"] == "CD19,Cd3e"
