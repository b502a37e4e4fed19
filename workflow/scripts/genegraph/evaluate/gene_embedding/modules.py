"""Gene modules: Leiden clusters of gene embeddings and their hallmark over-representation (spec §4.1-4.2).

A module is a Leiden cluster of the embedding rows (one row per gene per dataset; the clustering of
:mod:`genegraph.evaluate.gene_embedding.clustering`, the same as the metrics use). Its gene set is the distinct
symbols of its rows,
so a gene whose rows fall into several modules belongs to each of them.

Over-representation, per module m and gene set s (hallmark GMT, :func:`genegraph.graphs.priors.hallmark.read_gmt`):

* background = the distinct genes of the run (every gene of every dataset), M of them;
* K = genes of s in the background (sets with K = 0 are not tested), n = genes of m, k = genes of m in s;
* p = P(X >= k) for X hypergeometric (M, K, n): the one-sided test of an excess;
* q = Benjamini-Hochberg adjusted p over all module x set tests of the run;
* rich factor = k / K (the paper's bubble size) and fold enrichment = (k / n) / (K / M).

The module table lists per module its size, datasets, and its ``top_sets`` most significant sets with
q < ``alpha``. Symbols match exactly; other species reach the (human) sets through an ortholog
``gene_map`` as in :func:`genegraph.graphs.priors.hallmark.set_membership`.
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
from scipy.stats import false_discovery_control, hypergeom

from genegraph.config import settings
from genegraph.errors import DataError
from genegraph.evaluate.gene_embedding.clustering import ClusteringSettings, knn_graph, leiden_labels, umap_coordinates
from genegraph.graphs.priors.hallmark import set_membership
from genegraph.graphs.priors.orthologs import gene_map
from genegraph.models.embeddings import embedding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModuleSettings:
    """The config section ``modules``: the clustering, the enrichment q cutoff and the sets named per module
    (types, defaults and meanings: the config schema)."""

    clustering: ClusteringSettings
    alpha: float
    top_sets: int


def module_settings(values: Mapping[str, Any] | None = None) -> ModuleSettings:
    """:class:`ModuleSettings` from (part of) the config section ``modules``, over the schema's defaults."""
    return settings(ModuleSettings, "modules", values)


def hallmark_enrichment(genes: np.ndarray, modules: np.ndarray, gene_sets: Mapping[str, Sequence[str]],
                        gene_map: pd.DataFrame | None = None) -> pd.DataFrame:
    """Over-representation of every gene set in every module (see the module docstring).

    ``genes`` (n_rows,) symbol of each row, ``modules`` (n_rows,) its module; ``gene_map``: optional
    ortholog map over the sorted distinct genes (columns ``index``, ``resource_gene``). One row per
    (module, set) tested: module, set, k, n, K, M, rich_factor, fold_enrichment, p, q, genes (the
    overlap, sorted, comma-separated); sorted by module, then p.
    """
    genes = np.asarray(genes, dtype=str)
    background, gene_idx = np.unique(genes, return_inverse=True)
    mods, mod_idx = np.unique(np.asarray(modules), return_inverse=True)
    member = sp.csr_matrix(set_membership(background, gene_sets, gene_map) > 0, dtype=np.float64)
    in_module = sp.csr_matrix((np.ones(len(genes)), (mod_idx, gene_idx)), shape=(len(mods), len(background)))
    in_module.data[:] = 1.0  # repeated rows of one gene count once
    set_names = np.array(list(gene_sets))
    big_k = np.asarray(member.sum(axis=0)).ravel()
    tested = np.flatnonzero(big_k > 0)
    if len(tested) < len(set_names):
        log.info("%d of %d gene sets share no gene with the run's %d genes and are not tested",
                 len(set_names) - len(tested), len(set_names), len(background))
    if len(tested) == 0:
        raise DataError(f"no gene set shares a gene with the run's {len(background)} genes")
    overlap = (in_module @ member[:, tested]).toarray()  # modules x tested sets
    n = np.asarray(in_module.sum(axis=1)).ravel()
    m_total = len(background)
    mi, si = np.meshgrid(np.arange(len(mods)), np.arange(len(tested)), indexing="ij")
    k, kk, nn = overlap.ravel(), big_k[tested][si.ravel()], n[mi.ravel()]
    p = hypergeom.sf(k - 1, m_total, kk, nn)
    table = pd.DataFrame({
        "module": mods[mi.ravel()], "set": set_names[tested][si.ravel()], "k": k.astype(int), "n": nn.astype(int),
        "K": kk.astype(int), "M": m_total, "rich_factor": k / kk, "fold_enrichment": (k / nn) / (kk / m_total),
        "p": p, "q": false_discovery_control(np.clip(p, 0, 1), method="bh"),
    })
    table["genes"] = _overlap_genes(in_module, member[:, tested], background, mods, set_names[tested], table)
    return table.sort_values(["module", "p", "set"], kind="stable").reset_index(drop=True)


def _overlap_genes(in_module: sp.csr_matrix, member: sp.csr_matrix, background: np.ndarray, mods: np.ndarray,
                   sets: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """For every (module, set) row of ``table``, the sorted overlap genes joined by commas."""
    mc, sc = in_module.tocoo(), member.tocoo()
    pairs = pd.DataFrame({"module": mods[mc.row], "gene": mc.col}).merge(
        pd.DataFrame({"set": sets[sc.col], "gene": sc.row}), on="gene")
    pairs["gene"] = background[pairs["gene"].to_numpy()]
    joined = pairs.sort_values("gene").groupby(["module", "set"])["gene"].agg(",".join)
    keys = pd.MultiIndex.from_arrays([table["module"], table["set"]])
    return joined.reindex(keys).fillna("").to_numpy()


def module_table(emb: ad.AnnData, modules: np.ndarray, enrichment: pd.DataFrame, cfg: ModuleSettings) -> pd.DataFrame:
    """One row per module: module, n_rows, n_genes, n_datasets, datasets (``id:rows`` by size),
    n_enriched (sets with q < alpha) and top_sets (``SET (q=…, k/K)``; the ``top_sets`` smallest q)."""
    obs = pd.DataFrame({"module": modules, "gene": emb.obs["gene"].astype(str).to_numpy(),
                        "dataset": emb.obs["dataset"].astype(str).to_numpy()})
    by = obs.groupby("module")
    sig = enrichment[enrichment["q"] < cfg.alpha].sort_values(["module", "q", "p"], kind="stable")
    label = sig["set"] + " (q=" + sig["q"].map("{:.2g}".format) + ", " + sig["k"].astype(str) + "/" \
        + sig["K"].astype(str) + ")"
    top = label.groupby(sig["module"]).agg(lambda s: "; ".join(s.iloc[:cfg.top_sets]))
    counts = obs.groupby(["module", "dataset"]).size().rename("rows").reset_index() \
        .sort_values(["module", "rows", "dataset"], ascending=[True, False, True])
    composition = (counts["dataset"] + ":" + counts["rows"].astype(str)).groupby(counts["module"]).agg(", ".join)
    table = pd.DataFrame({
        "n_rows": by.size(), "n_genes": by["gene"].nunique(), "n_datasets": by["dataset"].nunique(),
        "datasets": composition,
        "n_enriched": sig.groupby("module").size().reindex(by.size().index, fill_value=0),
        "top_sets": top.reindex(by.size().index, fill_value=""),
    })
    table.index.name = "module"
    return table.reset_index()


def ortholog_gene_map(emb: ad.AnnData, taxa: Mapping[str, int], to_taxon: int,
                      orthologs: pd.DataFrame | None) -> pd.DataFrame | None:
    """The gene map :func:`hallmark_enrichment` needs when some rows of ``emb`` come from another species than
    the gene sets (``to_taxon``): each distinct gene through its species' orthologs (``taxa``: species name ->
    NCBI taxon; ``obs['species']`` names it). None when every row is of the gene sets' species."""
    species = emb.obs.groupby(emb.obs["gene"].astype(str), observed=True)["species"].first().astype(str)
    if all(taxa[s] == to_taxon for s in species.unique()):
        return None
    background = np.unique(emb.obs["gene"].astype(str).to_numpy())
    parts = []
    for name, genes in species.groupby(species):
        part = gene_map(genes.index.to_numpy(), from_taxon=taxa[name], to_taxon=to_taxon, orthologs=orthologs)
        parts.append(part.assign(index=np.searchsorted(background, part["gene"].to_numpy())))
    return pd.concat(parts, ignore_index=True)


def module_analysis(emb: ad.AnnData, gene_sets: Mapping[str, Sequence[str]], cfg: ModuleSettings | dict | None = None,
                    gene_map: pd.DataFrame | None = None) -> tuple[ad.AnnData, pd.DataFrame, pd.DataFrame]:
    """Modules of the embeddings file ``emb`` and their hallmark over-representation, from one neighbour graph:
    (``emb`` with ``obs['module']`` (Leiden) and ``obsm['X_umap']`` (the report's layout), the enrichment
    table, the module table)."""
    cfg = cfg if isinstance(cfg, ModuleSettings) else module_settings(cfg)
    cl = cfg.clustering
    knn = knn_graph(embedding(emb), cl.n_neighbors, cl.random_state)
    modules = leiden_labels(knn.obsp["connectivities"], cl)
    enrichment = hallmark_enrichment(emb.obs["gene"].astype(str).to_numpy(), modules, gene_sets, gene_map)
    table = module_table(emb, modules, enrichment, cfg)
    out = emb.copy()
    out.obs["module"] = pd.Categorical(modules.astype(str), categories=[str(m) for m in sorted(set(modules))])
    out.obsm["X_umap"] = umap_coordinates(knn, cl.random_state)
    log.info("%d modules; %d with a set at q < %g", len(table), int((table["n_enriched"] > 0).sum()), cfg.alpha)
    return out, enrichment, table
