"""Prior-knowledge edge types of a gene graph: STRING and hallmark edges in the co-expression graph's gene
order, and coverage figures.

:func:`add_prior_edges` is what the graph stage calls per dataset (no network: it reads the species' STRING
gene table, the GMT and the ortholog table). It writes ``varp['string']`` (weight = STRING score / 1000)
and ``varp['hallmark']`` (number of shared sets, or the cosine variant), appends them to
``uns['edge_types']`` and records parameters and coverage in ``uns['graph'][type]``. A gene absent from a
resource is an isolated node for that edge type, never an error.

Species. Datasets name a species of the config's ``species`` table (``{name: {taxon, gene_table}}``).
Each resource has a species too: the hallmark GMT is human; the embedded STRING demo subset is human; a
downloaded STRING network is of the taxon it was fetched for. When the dataset's species differs from the
resource's, genes go through the ortholog table (:mod:`genegraph.graphs.priors.orthologs`); so a mouse dataset reaches
the human hallmark sets and the human STRING network through its genes' human orthologs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from genegraph.errors import DataError
from genegraph.graphs.adjacency import undirected_edges, unique_genes
from genegraph.graphs.io import gene_features
from genegraph.graphs.priors.hallmark import hallmark_edges, set_membership
from genegraph.graphs.priors.orthologs import gene_map
from genegraph.graphs.priors.string_links import string_edges

log = logging.getLogger(__name__)


def species_taxon(species: str, species_config: Mapping[str, Mapping]) -> int:
    """NCBI taxon id of a species named in the config's ``species`` table; unknown names are an error."""
    if species not in species_config:
        raise DataError(f"unknown species '{species}': the config's species table has "
                        f"{', '.join(sorted(species_config)) or 'no entry'}")
    taxon = species_config[species].get("taxon")
    if not isinstance(taxon, int) or isinstance(taxon, bool) or taxon <= 0:
        raise DataError(f"species '{species}' needs a positive integer 'taxon' (NCBI taxon id), got {taxon!r}")
    return taxon


def coverage(genes: Sequence[str], adjacency: Mapping[str, sp.spmatrix],
             in_resource: Mapping[str, np.ndarray] | None = None) -> dict[str, int | float]:
    """Coverage figures, flat (JSON-ready): ``n_genes``; per edge type ``{t}_edges`` (undirected, self-loops
    not counted), ``{t}_genes_with_edge`` and ``{t}_frac_with_edge``; per resource in ``in_resource``
    (boolean per gene: the gene is in the STRING table / in >= 1 hallmark set) ``{name}_genes`` and
    ``{name}_frac``."""
    n = unique_genes(genes).size
    out: dict[str, int | float] = {"n_genes": n}
    for name, adj in adjacency.items():
        a = sp.csr_matrix(adj)
        if a.shape != (n, n):
            raise DataError(f"edge type '{name}' is {a.shape[0]} x {a.shape[1]}, the graph has {n} genes")
        off_diagonal = a - sp.diags(a.diagonal())
        off_diagonal.eliminate_zeros()
        with_edge = int((np.diff(off_diagonal.indptr) > 0).sum())
        out[f"{name}_edges"] = undirected_edges(a)
        out[f"{name}_genes_with_edge"] = with_edge
        out[f"{name}_frac_with_edge"] = with_edge / n if n else 0.0
    for name, flags in (in_resource or {}).items():
        flags = np.asarray(flags, dtype=bool)
        if flags.shape != (n,):
            raise DataError(f"coverage flags '{name}' have shape {flags.shape}, expected ({n},)")
        out[f"{name}_genes"] = int(flags.sum())
        out[f"{name}_frac"] = float(flags.mean()) if n else 0.0
    return out


def add_prior_edges(
    graph: ad.AnnData,
    *,
    species: str,
    species_config: Mapping[str, Mapping],
    string_links: pd.DataFrame,
    gene_sets: Mapping[str, Sequence[str]],
    orthologs: pd.DataFrame | None = None,
    string_species: str = "human",
    hallmark_species: str = "human",
    min_score: float = 400,
    channels: Sequence[str] | None = None,
    weighting: str = "count",
    min_cosine: float = 0.1,
) -> dict[str, int | float]:
    """Add ``varp['string']`` and ``varp['hallmark']`` to a gene-graph file in place; return its
    coverage (:func:`coverage` over every edge type of ``uns['edge_types']``).

    ``string_links``: the gene-gene table of ``string_species``
    (:func:`genegraph.graphs.priors.string_links.gene_links`); ``gene_sets``:
    :func:`genegraph.graphs.priors.hallmark.read_gmt` of ``hallmark_species``; ``orthologs``: the ortholog
    table, needed when ``species`` differs from a resource's species. The cosine weighting uses the genes'
    residual features (``layers['residuals']``) as their expression profiles.
    """
    genes = unique_genes(graph.var_names)
    taxon = species_taxon(species, species_config)
    string_taxon = species_taxon(string_species, species_config)
    hallmark_taxon = species_taxon(hallmark_species, species_config)
    string_map = gene_map(genes, from_taxon=taxon, to_taxon=string_taxon, orthologs=orthologs)
    hallmark_map = gene_map(genes, from_taxon=taxon, to_taxon=hallmark_taxon, orthologs=orthologs)

    graph.varp["string"] = string_edges(genes, string_links, min_score=min_score, channels=channels,
                                        gene_map=string_map)
    graph.varp["hallmark"] = hallmark_edges(genes, gene_sets, weighting=weighting, expression=gene_features(graph),
                                            min_cosine=min_cosine, gene_map=hallmark_map)

    in_string_table = set(string_links["gene_a"]) | set(string_links["gene_b"])
    flags = {
        "string_in_table": np.bincount(string_map.loc[string_map["resource_gene"].isin(in_string_table), "index"],
                                       minlength=genes.size) > 0,
        "hallmark_in_set": np.diff(set_membership(genes, gene_sets, hallmark_map).indptr) > 0,
    }
    crossing = [m for m, t in ((string_map, string_taxon), (hallmark_map, hallmark_taxon)) if t != taxon]
    if crossing:
        flags["with_ortholog"] = np.bincount(crossing[0]["index"], minlength=genes.size) > 0
    edge_types = list(dict.fromkeys([*list(graph.uns.get("edge_types", [])), "string", "hallmark"]))
    existing = {t: graph.varp[t] for t in edge_types if t in graph.varp}
    figures = coverage(genes, existing, flags)

    params = {
        "string": {"species": string_species, "min_score": float(min_score), "channels": list(channels or []),
                   "weight": "score / 1000"},
        "hallmark": {"species": hallmark_species, "weighting": weighting, "n_sets": len(gene_sets),
                     **({"min_cosine": float(min_cosine)} if weighting == "cosine" else {})},
    }
    info = dict(graph.uns.get("graph", {}))
    for t in ("string", "hallmark"):
        info[t] = {"params": params[t], "coverage": {k: v for k, v in figures.items()
                                                     if k.startswith((f"{t}_", "with_ortholog_", "n_genes"))}}
    graph.uns["graph"] = info
    graph.uns["edge_types"] = edge_types
    log.info("prior edges for %d %s genes: STRING %d edges, %d genes with one (%.1f%%; %d in the table); "
             "hallmark %d edges, %d genes in >= 1 set (%.1f%%)%s", genes.size, species, figures["string_edges"],
             figures["string_genes_with_edge"], 100 * figures["string_frac_with_edge"],
             figures["string_in_table_genes"],
             figures["hallmark_edges"], figures["hallmark_in_set_genes"], 100 * figures["hallmark_in_set_frac"],
             f"; {figures['with_ortholog_genes']} genes have an ortholog" if "with_ortholog_genes" in figures else "")
    return figures
