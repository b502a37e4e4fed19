"""Gene-id normalisation and the canonical dataset file, including every bad-input error."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import gene_table, random_counts

from genegraph.data.dataset import build_canonical
from genegraph.data.genes import is_mitochondrial, normalise_genes, strip_version
from genegraph.errors import DataError, for_dataset


def make(x, genes, **kw) -> ad.AnnData:
    return ad.AnnData(X=x, obs=pd.DataFrame(index=[f"c{i}" for i in range(x.shape[0])]),
                      var=pd.DataFrame(index=genes), **kw)


def canonical(adata, **kw):
    args = dict(dataset="d1", modality="scrna", gene_id="symbol", gene_table=gene_table())
    args.update(kw)
    return build_canonical(adata, **args)


def test_strip_version_only_touches_ensembl_ids():
    assert list(strip_version(["ENSG00000141510.17", "ENSMUSG00000051951.5", "RP11-34P13.7"])) == [
        "ENSG00000141510", "ENSMUSG00000051951", "RP11-34P13.7"]


def test_ensembl_ids_map_to_symbols_and_duplicates_are_summed():
    x = sp.csr_matrix(np.array([[1, 2, 3, 4, 5], [0, 1, 0, 2, 7]], dtype=np.int32))
    ids = ["ENSG00000000001.3", "ENSG00000000004.1", "ENSG00000000002", "ENSG00000000005.9", "ENSG00000999999.1"]
    out = normalise_genes(make(x, ids), gene_id="ensembl", table=gene_table())
    assert list(out.var_names) == ["GENEA", "DUP", "GENEB", "ENSG00000999999"]
    assert out.var.loc["DUP", "ensembl"] == "ENSG00000000004;ENSG00000000005"
    assert out.var.loc["DUP", "n_features"] == 2
    assert out.X.toarray().tolist() == [[1, 6, 3, 5], [0, 3, 0, 7]]  # DUP = 2 + 4 and 1 + 2
    assert out.uns["gene_mapping"]["n_unmapped"] == 1


def test_symbols_get_ensembl_ids_and_prefix_is_removed():
    x = random_counts(3, 3)
    out = normalise_genes(make(x, ["hg19_GENEA", "hg19_DUP", "hg19_NEW"]), gene_id="symbol",
                          table=gene_table(), prefix="hg19_")
    assert list(out.var_names) == ["GENEA", "DUP", "NEW"]
    assert list(out.var["ensembl"]) == ["ENSG00000000001", "", ""]  # DUP names two ids: left empty


def test_wrong_gene_id_kind_is_reported():
    with pytest.raises(DataError, match="set gene_id to 'ensembl'"):
        normalise_genes(make(random_counts(2, 2), ["ENSG00000000001", "ENSG00000000002"]),
                        gene_id="symbol", table=gene_table())
    with pytest.raises(DataError, match="set gene_id to 'symbol'"):
        normalise_genes(make(random_counts(2, 2), ["GENEA", "GENEB"]), gene_id="ensembl", table=gene_table())


def test_mitochondrial_prefix_is_case_insensitive_and_never_bare():
    assert is_mitochondrial(["MT-ND1", "mt-Co1", "MTOR", "MT", "Mt-Atp6"]).tolist() == [True, True, False, False, True]
    with pytest.raises(DataError, match="must end with '-'"):
        is_mitochondrial(["MT-ND1"], prefix="MT")


def test_canonical_file_layout():
    x = random_counts(8, 3).astype(float)
    out = canonical(make(x, ["GENEA", "GENEB", "GENEC"]), provenance={"sha256": "ab"})
    assert out.X.dtype == np.int32 and sp.isspmatrix_csr(out.X)
    assert list(out.var.columns) == ["symbol", "ensembl", "n_features"]
    assert out.uns["dataset"] == {"id": "d1", "modality": "scrna", "sha256": "ab"}


@pytest.mark.parametrize("values,message", [
    (np.array([[0.5, 1.0], [2.0, 3.0]]), "not integer counts"),
    (np.array([[-1.0, 1.0], [2.0, 3.0]]), "negative values"),
    (np.array([[np.nan, 1.0], [2.0, 3.0]]), "NaN"),
    (np.zeros((0, 2)), "empty"),
])
def test_bad_counts_name_the_dataset(values, message):
    adata = make(sp.csr_matrix(values), ["GENEA", "GENEB"])
    with pytest.raises(DataError, match=f"dataset 'd1': .*{message}"), for_dataset("d1"):
        canonical(adata)


def test_zero_genes_is_an_error():
    with pytest.raises(DataError, match="empty"):
        canonical(ad.AnnData(X=sp.csr_matrix((3, 0)), obs=pd.DataFrame(index=["a", "b", "c"])))


def test_spatial_needs_coordinates():
    x = random_counts(4, 2)
    with pytest.raises(DataError, match="spatial dataset without coordinates"):
        canonical(make(x, ["GENEA", "GENEB"]), modality="spatial")
    bad = make(x, ["GENEA", "GENEB"], obsm={"spatial": np.array([[0, 1], [np.nan, 2], [3, 4], [5, 6]])})
    with pytest.raises(DataError, match="finite"):
        canonical(bad, modality="spatial")


def test_metadata_subset_and_keys():
    x = random_counts(4, 2)
    meta = pd.DataFrame({"slice": ["1", "1", "2", "2"], "kind": list("abab")}, index=[f"c{i}" for i in range(4)])
    out = canonical(make(x, ["GENEA", "GENEB"]), metadata=meta, subset="slice == '2'", celltype_key="kind")
    assert list(out.obs_names) == ["c2", "c3"] and list(out.obs["celltype"]) == ["a", "b"]
    with pytest.raises(DataError, match="selects no cell"):
        canonical(make(x, ["GENEA", "GENEB"]), metadata=meta, subset="slice == '9'")
    with pytest.raises(DataError, match="batch_key 'donor' is not a cell annotation"):
        canonical(make(x, ["GENEA", "GENEB"]), batch_key="donor")
    partial = meta.iloc[:3]
    with pytest.raises(DataError, match="1 of 4 cells have no row in metadata"):
        canonical(make(x, ["GENEA", "GENEB"]), metadata=partial)


def test_protein_counts_must_be_counts():
    x = random_counts(3, 2)
    prot = pd.DataFrame({"CD3": [1.0, 2.5, 3.0]}, index=["c0", "c1", "c2"])
    with pytest.raises(DataError, match="protein counts is not integer"):
        canonical(make(x, ["GENEA", "GENEB"], obsm={"protein": prot}), modality="cite")


def test_a_subset_cannot_run_code(tmp_path):
    """The old pandas-eval subset ran this payload during ingest; the filter language rejects it."""
    marker = tmp_path / "pwned"
    meta = pd.DataFrame({"slice": ["1", "2"]}, index=["c0", "c1"])
    for payload in (f"@pd.io.common.os.system('touch {marker}') == 0", f"slice.to_csv('{marker}') == 1",
                    f"__import__('os').system('touch {marker}') == 0"):
        with pytest.raises(DataError, match="subset"):
            canonical(make(random_counts(2, 2), ["GENEA", "GENEB"]), metadata=meta, subset=payload)
    assert not marker.exists()


def test_cite_without_proteins_is_an_error():
    with pytest.raises(DataError, match="a cite dataset needs protein \\(ADT\\) counts"):
        canonical(make(random_counts(3, 2), ["GENEA", "GENEB"]), modality="cite")


@pytest.mark.parametrize("coords,axes", [
    (np.full((4, 2), 7.0), "x and y"),
    (np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [0.0, 4.0]]), "x"),
])
def test_spatial_coordinates_must_spread(coords, axes):
    adata = make(random_counts(4, 2), ["GENEA", "GENEB"], obsm={"spatial": coords})
    with pytest.raises(DataError, match=f"all 4 spots share one {axes} coordinate"):
        canonical(adata, modality="spatial")


def test_gene_table_share_is_checked_and_flagged(caplog):
    ok = canonical(make(random_counts(3, 3), ["GENEA", "NEW1", "NEW2"]), min_gene_table_frac=0.5)
    check = ok.uns["checks"]["min_gene_table_frac"]
    assert check["value"] == pytest.approx(1 / 3) and check["flagged"] is True  # the table knows GENEA only
    assert "check min_gene_table_frac" in caplog.text and "below the limit 0.5" in caplog.text
    fine = canonical(make(random_counts(3, 2), ["GENEA", "GENEC"]), min_gene_table_frac=0.5)
    assert fine.uns["checks"]["min_gene_table_frac"]["flagged"] is False
