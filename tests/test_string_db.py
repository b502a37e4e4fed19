"""STRING files (v12.0 layout written here; the real-format v11.5 subsets of ../shared read in place),
protein -> gene mapping, the gene-gene table and a dataset's STRING edges."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genegraph.data.download import sha256_file
from genegraph.data.genes import load_gene_table
from genegraph.errors import DataError
from genegraph.graphs.priors.orthologs import gene_map
from genegraph.graphs.priors.string_files import (
    CHANNELS,
    combined_score,
    fetch_string,
    read_aliases,
    read_info,
    read_links,
    string_urls,
)
from genegraph.graphs.priors.string_links import (
    map_proteins_to_genes,
    read_gene_links,
    string_edges,
    string_gene_table,
    write_gene_links,
)

REPO = Path(__file__).resolve().parents[1]

HEADER = "protein1 protein2 " + " ".join(CHANNELS) + " combined_score"


def ensp(k: int) -> str:
    return f"9606.ENSP{k:011d}"


def write_gz(path, text: str) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write(text)


def link(a: int, b: int, experimental: int = 0, textmining: int = 0, combined: int = 0) -> list[str]:
    """Both directions, as STRING lists them."""
    ch = {c: 0 for c in CHANNELS} | {"experimental": experimental, "textmining": textmining}
    vals = " ".join(str(ch[c]) for c in CHANNELS)
    return [f"{ensp(a)} {ensp(b)} {vals} {combined}", f"{ensp(b)} {ensp(a)} {vals} {combined}"]


def gencode() -> pd.DataFrame:
    rows = [("ENSG00000000001", "GENEA"), ("ENSG00000000002", "GENEB"), ("ENSG00000000003", "GENEC"),
            ("ENSG00000000004", "GENED"), ("ENSG00000000005", "ENSG00000000005")]
    return pd.DataFrame([(e, s, "1", "100", "protein_coding") for e, s in rows],
                        columns=["ensembl", "symbol", "version", "length", "biotype"])


@pytest.fixture
def v12_files(tmp_path):
    """A tiny STRING v12.0 trio (detailed links, info, aliases) with the real headers."""
    lines = [HEADER]
    lines += link(1, 2, experimental=900, combined=900)     # GENEA - GENEB
    lines += link(4, 2, experimental=500, textmining=500, combined=739)  # GENEA (2nd protein) - GENEB
    lines += link(1, 4, experimental=700, combined=700)     # GENEA - GENEA: a self pair, dropped
    lines += link(2, 3, textmining=300, combined=300)       # GENEB - GENEC
    lines += link(3, 5, experimental=800, combined=800)     # P5 maps to nothing
    links = tmp_path / "9606.protein.links.detailed.v12.0.txt.gz"
    write_gz(links, "\n".join(lines) + "\n")
    info = tmp_path / "9606.protein.info.v12.0.txt.gz"
    write_gz(info, "#string_protein_id\tpreferred_name\tprotein_size\tannotation\n"
                   f"{ensp(1)}\tOLDA\t100\tan old name the gene table does not know\n"
                   f"{ensp(2)}\tGENEB\t200\tprotein B; \"quoted\" text\n"
                   f"{ensp(5)}\tENSP00000000005\t300\tno name: STRING shows the protein id\n")
    aliases = tmp_path / "9606.protein.aliases.v12.0.txt.gz"
    write_gz(aliases, "#string_protein_id\talias\tsource\n"
                      f"{ensp(1)}\tENSG00000000001\tEnsembl_gene\n"
                      f"{ensp(1)}\tOLDA\tEnsembl_HGNC_symbol\n"
                      f"{ensp(2)}\tGENEX\tEnsembl_HGNC_symbol\n"
                      f"{ensp(3)}\tGENEC\tBioMart_HUGO Ensembl_HGNC\n"
                      f"{ensp(3)}\tP00003\tUniProt_AC\n"
                      f"{ensp(4)}\tENSG00000000001.7\tEnsembl_gene\n")
    return links, info, aliases


def test_string_urls_follow_the_download_layout():
    urls = string_urls(9606)
    assert urls["links"] == ("https://stringdb-downloads.org/download/protein.links.detailed.v12.0/"
                             "9606.protein.links.detailed.v12.0.txt.gz")
    assert urls["info"].endswith("/protein.info.v12.0/9606.protein.info.v12.0.txt.gz")
    assert urls["aliases"].endswith("/protein.aliases.v12.0/9606.protein.aliases.v12.0.txt.gz")
    assert string_urls(10090, "11.5", "https://stringdb-static.org/download/", links="protein.links")["links"] == \
        "https://stringdb-static.org/download/protein.links.v11.5/10090.protein.links.v11.5.txt.gz"


def test_read_links_merges_directions_and_keeps_channels(v12_files):
    links = read_links(v12_files[0])
    assert list(links.columns) == ["protein1", "protein2", *CHANNELS, "combined_score"]
    assert len(links) == 5  # 10 directed rows -> 5 undirected pairs
    assert (links["protein1"].astype(str) < links["protein2"].astype(str)).all()
    row = links[(links["protein1"] == ensp(2)) & (links["protein2"] == ensp(4))].iloc[0]
    assert (row["experimental"], row["textmining"], row["combined_score"]) == (500, 500, 739)
    assert len(read_links(v12_files[0], min_score=750)) == 2
    assert read_links(v12_files[0], min_score=1000).empty
    small_chunks = read_links(v12_files[0], chunk_rows=3)  # pairs split across chunks merge the same way
    pd.testing.assert_frame_equal(small_chunks, links)


def test_read_info_and_aliases(v12_files):
    info = read_info(v12_files[1])
    assert info["preferred_name"].tolist() == ["OLDA", "GENEB", "ENSP00000000005"]
    aliases = read_aliases(v12_files[2])
    # UniProt_AC is not a symbol source; the multi-source row is split; ENSG rows kept whatever the source
    assert set(aliases["source"]) == {"Ensembl_gene", "Ensembl_HGNC_symbol", "BioMart_HUGO", "Ensembl_HGNC"}
    assert (aliases["protein"] == ensp(3)).sum() == 2
    assert len(read_aliases(v12_files[2], sources=None)) == 7  # 6 rows, one with two sources


def test_proteins_map_to_genes_by_rank(v12_files):
    links, info, aliases = v12_files
    mapping, summary = map_proteins_to_genes(read_links(links)["protein1"].cat.categories, taxon=9606,
                                             gene_table=gencode(), info=read_info(info), aliases=read_aliases(aliases))
    got = mapping.set_index("protein")
    assert got.at[ensp(1), "symbol"] == "GENEA"  # Ensembl gene alias beats the unknown preferred name
    assert got.at[ensp(1), "method"] == "alias_ensembl_gene"
    assert got.at[ensp(2), "symbol"] == "GENEB"  # preferred name beats an unknown alias
    assert got.at[ensp(3), "symbol"] == "GENEC" and got.at[ensp(3), "method"] == "alias:BioMart_HUGO"
    assert got.at[ensp(4), "symbol"] == "GENEA"  # versioned ENSG
    assert got.at[ensp(4), "ensembl"] == "ENSG00000000001"
    assert ensp(5) not in got.index  # its only name is a protein id
    assert summary["unmapped"] == 1 and summary["mapped"] == 4


def test_gene_table_collapses_by_max_and_drops_self_pairs(v12_files, tmp_path):
    links, info, aliases = v12_files
    table, mapping, summary = string_gene_table(links, taxon=9606, gene_table=gencode(), info_path=info,
                                                aliases_path=aliases)
    assert table[["gene_a", "gene_b"]].values.tolist() == [["GENEA", "GENEB"], ["GENEB", "GENEC"]]
    ab = table.iloc[0]
    assert (ab["combined_score"], ab["experimental"], ab["textmining"]) == (900, 900, 500)
    assert summary["gene_pairs"] == 2 and summary["protein_links"] == 5
    path = tmp_path / "out" / "string_gene_links.tsv.gz"
    write_gene_links(table, path)
    back = read_gene_links(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_string_edges_threshold_weights_and_isolated_genes(v12_files):
    table, _, _ = string_gene_table(v12_files[0], taxon=9606, gene_table=gencode(), info_path=v12_files[1],
                                    aliases_path=v12_files[2])
    genes = ["GENEC", "NOTINSTRING", "GENEB", "GENEA"]
    adj = string_edges(genes, table)  # default min_score 400
    assert adj.shape == (4, 4) and adj.dtype == np.float32
    assert (adj != adj.T).nnz == 0 and adj.diagonal().sum() == 0
    assert adj[2, 3] == pytest.approx(0.9) and adj.nnz == 2
    low = string_edges(genes, table, min_score=150)
    assert low[0, 2] == pytest.approx(0.3) and low[1].nnz == 0
    # textmining only: GENEA-GENEB from the per-channel maximum 500 -> STRING's combination gives 500
    text = string_edges(genes, table, min_score=400, channels=["textmining"])
    assert text[2, 3] == pytest.approx(0.5, abs=1e-6) and text.nnz == 2
    with pytest.raises(DataError, match="not in the links table"):
        string_edges(genes, table, channels=["homology"])
    with pytest.raises(DataError, match="0-1000"):
        string_edges(genes, table, min_score=0.4 * 10_000)
    with pytest.raises(DataError, match="duplicates"):
        string_edges(["GENEA", "GENEA"], table)


def test_string_edges_through_orthologs_keep_the_maximum():
    table = pd.DataFrame({"gene_a": ["A1", "A1", "A2"], "gene_b": ["B", "C", "B"], "combined_score": [500, 450, 800]})
    orthologs = pd.DataFrame({"human": ["A1", "A2", "B"], "mouse": ["a", "a", "b"]})
    genes = ["b", "a", "z"]
    adj = string_edges(genes, table, gene_map=gene_map(genes, from_taxon=10090, to_taxon=9606, orthologs=orthologs))
    assert adj[0, 1] == pytest.approx(0.8) and adj[1, 0] == pytest.approx(0.8) and adj.nnz == 2


def test_combined_score_follows_stringss_rule():
    t = pd.DataFrame({"experimental": [900, 500, 0], "textmining": [0, 500, 30], "combined_score": [900, 739, 30]})
    assert combined_score(t).tolist() == [900, 739, 30]
    one = combined_score(t, ["experimental"])
    assert one[0] == pytest.approx(900) and one[2] == pytest.approx(41)  # a zero channel leaves only the prior
    s = (0.5 - 0.041) / (1 - 0.041)
    two = (1 - (1 - s) ** 2) * (1 - 0.041) + 0.041
    assert combined_score(t, ["experimental", "textmining"])[1] == pytest.approx(1000 * two)


def test_bad_files_are_clear_errors(v12_files, tmp_path):
    links, info, aliases = v12_files
    data = links.read_bytes()
    cut = tmp_path / "truncated.txt.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_links(cut)
    cut_aliases = tmp_path / "truncated.aliases.txt.gz"
    cut_aliases.write_bytes(aliases.read_bytes()[:60])
    with pytest.raises(DataError, match="truncated"):
        read_aliases(cut_aliases)
    other = tmp_path / "other.txt.gz"
    write_gz(other, "a b c\n1 2 3\n")
    with pytest.raises(DataError, match="not a STRING protein.links"):
        read_links(other)
    with pytest.raises(DataError, match="not a STRING protein.info"):
        read_info(aliases)
    bad_score = tmp_path / "bad.txt.gz"
    write_gz(bad_score, "protein1 protein2 combined_score\n9606.A 9606.B 1200\n")
    with pytest.raises(DataError, match="0..1000"):
        read_links(bad_score)
    two_cols = tmp_path / "two.txt.gz"
    write_gz(two_cols, f"{ensp(1)}\tGENEA\n")
    with pytest.raises(DataError, match="3 tab-separated columns"):
        read_aliases(two_cols)
    with pytest.raises(DataError, match="not of taxon 10090"):
        string_gene_table(links, taxon=10090, gene_table=gencode(), aliases_path=aliases)


def test_conflicting_aliases_choose_deterministically_and_log(caplog):
    rows = [(ensp(1), "GENEB", "Ensembl_HGNC_symbol"), (ensp(1), "GENEA", "Ensembl_HGNC_symbol"),  # tie
            (ensp(2), "GENEC", "Ensembl_EntrezGene"), (ensp(2), "GENED", "Ensembl_EntrezGene"),
            (ensp(2), "GENED", "UniProt_GN_Name"),  # GENED has more support
            (ensp(3), "LOC1", "Ensembl_HGNC_symbol"), (ensp(3), "GENEC", "UniProt_GN_Name"),  # known beats rank
            (ensp(4), "ENSG00000000005", "Ensembl_gene"), (ensp(4), "GENED", "UniProt_GN_Name")]  # id-as-symbol loses
    aliases = pd.DataFrame(rows, columns=["protein", "alias", "source"])
    proteins = [ensp(k) for k in (1, 2, 3, 4)]
    with caplog.at_level(logging.WARNING, logger="genegraph.graphs.priors.string_links"):
        first, _ = map_proteins_to_genes(proteins, taxon=9606, gene_table=gencode(), aliases=aliases)
    assert first.set_index("protein")["symbol"].to_dict() == {
        ensp(1): "GENEA", ensp(2): "GENED", ensp(3): "GENEC", ensp(4): "GENED"}
    assert "several equally ranked gene symbols" in caplog.text and "GENEA, GENEB -> GENEA" in caplog.text
    shuffled = aliases.sample(frac=1, random_state=3).reset_index(drop=True)
    second, _ = map_proteins_to_genes(proteins[::-1], taxon=9606, gene_table=gencode(), aliases=shuffled)
    pd.testing.assert_frame_equal(first, second)


def test_v11_5_subset_parses_through_the_v12_code_path(shared_data, tmp_path, caplog):
    """The v11.5 subsets, found in the mirror by sha256 under STRING's own file names, go through
    fetch -> read_links / read_aliases -> mapping -> gene table -> edges unchanged."""
    subset = shared_data / "ppi_string_subsets"
    base = "https://stringdb-static.org/download"
    urls = string_urls(9606, "11.5", base)
    digests = {urls["links"].rsplit("/", 1)[-1]: sha256_file(subset / "STRING11.5_9606_links_raw.txt.gz"),
               urls["aliases"].rsplit("/", 1)[-1]: sha256_file(subset / "STRING11.5_9606_aliases_raw.txt.gz")}
    got = fetch_string(9606, tmp_path / "string", version="11.5", base_url=base, sha256=digests,
                       roles=("links", "aliases"), mirror=shared_data, retries=0)
    assert all(f.origin.startswith("mirror:") for f in got.values())
    assert got["links"].path.name == "9606.protein.links.detailed.v11.5.txt.gz"

    links = read_links(got["links"].path)
    assert list(links.columns) == ["protein1", "protein2", *CHANNELS, "combined_score"]
    assert len(links) == 21_070 // 2  # the subset lists both directions
    recombined, in_file = combined_score(links, CHANNELS), links["combined_score"].to_numpy()
    assert np.abs(np.rint(recombined) - in_file).max() <= 1  # STRING's rule, up to its integer rounding
    assert (np.floor(recombined) == in_file).mean() > 0.9

    human = load_gene_table(REPO / "resources/genes/genes_homo_sapiens.csv.gz")
    with caplog.at_level(logging.WARNING, logger="genegraph.graphs.priors.string_links"):
        table, mapping, summary = string_gene_table(got["links"].path, taxon=9606, gene_table=human,
                                                    aliases_path=got["aliases"].path)
    assert "RAB40A, RAB40AL -> RAB40A" in caplog.text  # a real conflicting alias pair, resolved and logged
    assert summary["proteins"] == 6481 and summary["mapped"] / summary["proteins"] > 0.95
    assert summary["by_method"].get("alias_symbol", 0) == summary["mapped"]  # no ENSG aliases in this subset
    assert (table["combined_score"] >= 400).all() and (table["gene_a"] < table["gene_b"]).all()
    assert not table.duplicated(["gene_a", "gene_b"]).any()

    genes = sorted(set(table["gene_a"].head(200)) | {"NOT_A_GENE"})
    adj = string_edges(genes, table, min_score=700)
    sub = table[table["gene_a"].isin(genes) & table["gene_b"].isin(genes) & (table["combined_score"] >= 700)]
    assert adj.nnz == 2 * len(sub)
    pos = {g: k for k, g in enumerate(genes)}
    r = sub.iloc[0]
    assert adj[pos[r["gene_a"]], pos[r["gene_b"]]] == pytest.approx(r["combined_score"] / 1000)
    assert adj[pos["NOT_A_GENE"]].nnz == 0
