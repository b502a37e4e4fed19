"""The curated ADT name → gene symbol table (resources/proteins/) and the name matching of scMoFormer."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

from genegraph.errors import DataError
from genegraph.models.scmoformer.proteins import (
    ADT_TABLE,
    match_adt_names,
    normalise_adt_name,
    protein_genes,
    read_adt_table,
)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "resources" / "proteins" / "README.md"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_adt_table()


def genes_of(table: pd.DataFrame, antibody: str) -> set[str]:
    return set(table.loc[table["antibody"] == antibody, "gene_symbol"])


@pytest.mark.parametrize("raw, key", [
    ("CD3_TotalSeqB", "CD3"),
    ("CD8a_TotalSeqB", "CD8A"),
    ("CD8a-TotalSeqB", "CD8A"),
    ("ADT_CD4", "CD4"),
    ("adt-CD45RA_TotalSeqC", "CD45RA"),
    ("  cd45ro ", "CD45RO"),
    ("PD-1_TotalSeqB", "PD-1"),
    ("IgG2a_control_TotalSeqB", "IGG2A_CONTROL"),
    ("PD-1  (CD279)", "PD-1 (CD279)"),
    ("HLA-A,B,C", "HLA-A,B,C"),
    ("TotalSeqB_CD4", "TOTALSEQB_CD4"),
])
def test_normalise_adt_name(raw, key):
    assert normalise_adt_name(raw) == key


def test_table_version_digest_is_recorded():
    digest = hashlib.sha256(ADT_TABLE.read_bytes()).hexdigest()
    assert digest in README.read_text(), "adt_gene_symbols.tsv changed: update version and sha256 in README.md"


def test_table_rows(table):
    assert list(table.columns) == ["antibody", "gene_symbol", "kind", "note"]
    assert not table.duplicated(["antibody", "gene_symbol"]).any()
    control = table["kind"] == "control"
    assert (table.loc[control, "gene_symbol"] == "").all() and (table.loc[~control, "gene_symbol"] != "").all()
    assert all(re.fullmatch(r"[A-Z0-9-]+", g) for g in table.loc[~control, "gene_symbol"])


def test_one_to_many_and_fixed_aliases(table):
    assert genes_of(table, "CD16") == {"FCGR3A", "FCGR3B"}
    assert genes_of(table, "CD32") == {"FCGR2A", "FCGR2B", "FCGR2C"}
    assert genes_of(table, "CD158B") == {"KIR2DL2", "KIR2DL3", "KIR2DS2"}
    assert genes_of(table, "CD3") == {"CD3E", "CD3D", "CD3G"}
    assert genes_of(table, "CD25") == {"IL2RA"}
    assert genes_of(table, "IGM") == {"IGHM"}
    assert "TRBV20OR9-2" not in genes_of(table, "TCR")
    assert genes_of(table, "CD154") == {"CD40LG"}
    assert "CD40LG" not in set(table.loc[table["antibody"] != "CD154", "gene_symbol"])
    assert set(table.loc[table["antibody"].str.startswith("IGG"), "kind"]) == {"control"}


def test_match_names(table):
    names = ["CD16_TotalSeqB", "PD-1 (CD279)", "IL7Ralpha (CD127)", "HTO99_5P", "IgG1", "NotAnAntibody"]
    m = match_adt_names(names, table)
    assert list(m.loc[m["protein"] == "CD16_TotalSeqB", "gene_symbol"]) == ["FCGR3A", "FCGR3B"]
    assert m.loc[m["protein"] == "PD-1 (CD279)", ["key", "gene_symbol"]].values.tolist() == [["PD-1", "PDCD1"]]
    assert m.loc[m["protein"] == "IL7Ralpha (CD127)", "key"].item() == "CD127"
    assert m.set_index("protein").loc[["HTO99_5P", "IgG1"], "kind"].tolist() == ["control", "control"]
    assert m.loc[m["protein"] == "NotAnAntibody", "kind"].item() == "unmatched"


def test_protein_genes_kinds(table):
    names = ["CD3", "CD57", "CD4", "IgG1", "unknown"]
    everything = protein_genes(names, table)
    assert list(everything) == names
    assert everything["CD3"] == ("CD3E", "CD3D", "CD3G") and everything["CD57"] == ("B3GAT1",)
    assert everything["IgG1"] == () and everything["unknown"] == ()
    only_gene = protein_genes(names, table, kinds=["gene"])
    assert only_gene["CD3"] == () and only_gene["CD57"] == () and only_gene["CD4"] == ("CD4",)


@pytest.mark.parametrize("text, message", [
    ("antibody\tgene_symbol\tkind\nCD4\tCD4\tgene\n", "lacks column"),
    ("antibody\tgene_symbol\tkind\tnote\nCD4\tCD4\tprotein\t\n", "unknown kind"),
    ("antibody\tgene_symbol\tkind\tnote\nIGG1\tCD4\tcontrol\t\n", "control rows"),
    ("antibody\tgene_symbol\tkind\tnote\nCd4\tCD4\tgene\t\n", "normalised"),
    ("antibody\tgene_symbol\tkind\tnote\nCD4\tCD4\tgene\t\nCD4\tCD4\tgene\tagain\n", "duplicated"),
])
def test_bad_table(tmp_path, text, message):
    path = tmp_path / "t.tsv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_adt_table(path)
    with pytest.raises(DataError, match="does not exist"):
        read_adt_table(tmp_path / "missing.tsv")


# --- real panels and reference tables (read from ../shared; skipped when absent) ---------------------------------


def test_demo_panels_all_matched(table):
    for name in ("pbmc_5k_protein_v3.h5ad", "pbmc_10k_protein_v3.h5ad"):
        adata = ad.read_h5ad(REPO / "resources" / "demo" / name, backed="r")
        names = list(adata.obsm["protein_expression"].columns)
        m = match_adt_names(names, table)
        assert not (m["kind"] == "unmatched").any(), name
        assert set(m["protein"]) == set(names)


def test_shared_panels_all_matched(table, shared_data):
    panels = {
        "neurips2021_multimodal_starter/bmmc_cite_starter.adt.h5ad": 134,
        "neurips2021_multimodal_starter/pbmc_1k_protein_v3.adt.h5ad": 17,
        "citeseq_eccite_pbmc_citefuse/eccite_pbmc_control_adt_counts.h5ad": 49,
        "citeseq_eccite_pbmc_citefuse/eccite_pbmc_control_hto_counts.h5ad": 4,
    }
    for path, n in panels.items():
        names = list(ad.read_h5ad(shared_data / path, backed="r").var_names)
        assert len(names) == n
        m = match_adt_names(names, table)
        assert not (m["kind"] == "unmatched").any(), path
    hto = match_adt_names(list(ad.read_h5ad(shared_data / list(panels)[3], backed="r").var_names), table)
    assert set(hto["kind"]) == {"control"}


def test_symbols_are_current_hgnc(table, shared_data):
    genes = pd.read_csv(shared_data / "gene_annotation_human" / "orghs_genes.tsv.gz", sep="\t", dtype=str)
    symbols = set(table.loc[table["kind"] != "control", "gene_symbol"])
    assert symbols <= set(genes["symbol"]), sorted(symbols - set(genes["symbol"]))


def test_against_scmoformer_mapping(table, shared_data):
    """Every (protein, symbol) pair of scMoFormer's CSV whose symbol is a real gene is in our table, except the
    three wrong alias hits, which are not."""
    ref = pd.read_csv(shared_data / "ppi_string_subsets" / "scmoformer" / "symbol_mapping.csv")
    genes = set(pd.read_csv(shared_data / "gene_annotation_human" / "orghs_genes.tsv.gz", sep="\t")["symbol"])
    ours = protein_genes(list(ref["protein"].unique()), table)
    wrong = {("IGM", "CD40LG"), ("CD25", "ISG20"), ("TCR", "TRBV20OR9-2")}
    checked = 0
    for protein, symbol in ref.itertuples(index=False):
        if (protein, symbol) in wrong:
            assert symbol not in ours[protein]
        elif symbol in genes:
            assert symbol in ours[protein], (protein, symbol, ours[protein])
            checked += 1
    assert checked > 110
    controls = ref.loc[ref["protein"].str.contains("IGG"), "protein"]
    assert all(ours[p] == () for p in controls)
