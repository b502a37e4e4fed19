"""Readers: every format, on files the tests write and on real fixtures from ../shared/data."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import random_counts, write_10x_h5_v3, write_10x_mtx, write_h5ad

from genegraph.data.readers import read_counts
from genegraph.errors import DataError

GENES = ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003", "ENSG00000000004"]
NAMES = ["GENEA", "GENEB", "GENEC", "DUP"]


def test_h5ad_x_layer_and_raw(tmp_path):
    x = random_counts(20, 4)
    write_h5ad(tmp_path / "a.h5ad", x.astype(float) / 3, NAMES, layers={"counts": x})
    got = read_counts(tmp_path / "a.h5ad", "h5ad", matrix_key="counts")
    assert (x != got.X).nnz == 0 and list(got.var_names) == NAMES
    with pytest.raises(DataError, match="no layer 'umi'"):
        read_counts(tmp_path / "a.h5ad", "h5ad", matrix_key="umi")


def test_h5ad_spatial_and_protein(tmp_path):
    x = random_counts(10, 4)
    coords = np.arange(20, dtype=float).reshape(10, 2)
    prot = np.arange(30).reshape(10, 3)
    write_h5ad(tmp_path / "a.h5ad", x, NAMES, obsm={"xy": coords, "protein_expression": prot},
               uns={"protein_names": np.array(["CD3", "CD4", "CD8"])})
    got = read_counts(tmp_path / "a.h5ad", "h5ad", spatial_key="xy")
    assert np.array_equal(got.obsm["spatial"], coords)
    assert list(got.obsm["protein"].columns) == ["CD3", "CD4", "CD8"]
    with pytest.raises(DataError, match=r"no obsm\['spatial_xy'\]"):
        read_counts(tmp_path / "a.h5ad", "h5ad", spatial_key="spatial_xy")


def test_10x_h5_v3_splits_antibodies(tmp_path):
    x = random_counts(15, 6)
    types = ["Gene Expression"] * 4 + ["Antibody Capture"] * 2
    write_10x_h5_v3(tmp_path / "m.h5", x, [f"B{i}-1" for i in range(15)], GENES + ["CD3", "CD4"],
                    NAMES + ["CD3_TotalSeqB", "CD4_TotalSeqB"], types)
    got = read_counts(tmp_path / "m.h5", "10x_h5")
    assert got.shape == (15, 4) and (x[:, :4] != got.X).nnz == 0
    assert list(got.var["feature_id"]) == GENES and list(got.var_names) == NAMES
    assert got.obsm["protein"].shape == (15, 2)
    assert np.array_equal(got.obsm["protein"].to_numpy(), x[:, 4:].toarray())


def test_10x_h5_gzipped_in_folder_with_positions(tmp_path):
    x = random_counts(5, 4)
    bcs = [f"B{i}-1" for i in range(5)]
    folder = tmp_path / "visium"
    (folder / "spatial").mkdir(parents=True)
    write_10x_h5_v3(tmp_path / "plain.h5", x, bcs, GENES, NAMES)
    with open(tmp_path / "plain.h5", "rb") as src, gzip.open(folder / "filtered_feature_bc_matrix.h5.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rows = [[b, 1, i, i + 1, 100 + i, 200 + i] for i, b in enumerate(reversed(bcs))] + [["X-1", 0, 9, 9, 9, 9]]
    pd.DataFrame(rows).to_csv(folder / "spatial" / "tissue_positions_list.csv", header=False, index=False)
    got = read_counts(folder, "10x_h5")
    # pixel column is x, pixel row is y; rows joined by barcode, not by order
    assert got.obsm["spatial"][0].tolist() == [204.0, 104.0]
    assert got.obs["array_row"].tolist() == [4, 3, 2, 1, 0]
    # a sheet's positions path stays inside the dataset's folder
    (tmp_path / "outside.csv").write_text("B0-1,1,0,0,0,0\n")
    for escape in ("../outside.csv", str(tmp_path / "outside.csv")):
        with pytest.raises(DataError, match="must be a path inside the dataset's folder"):
            read_counts(folder, "10x_h5", spatial_key=escape)


def test_10x_mtx_v3_and_v2(tmp_path):
    x = random_counts(12, 4)
    bcs = [f"B{i}" for i in range(12)]
    write_10x_mtx(tmp_path / "v3", x, bcs, GENES, NAMES, v3=True)
    write_10x_mtx(tmp_path / "v2" / "hg19", x, bcs, GENES, NAMES, v3=False)  # one sub-folder level
    for folder in (tmp_path / "v3", tmp_path / "v2"):
        got = read_counts(folder, "10x_mtx")
        assert (x != got.X).nnz == 0 and list(got.obs_names) == bcs
        assert list(got.var["feature_id"]) == GENES


@pytest.mark.parametrize("fmt,sep", [("csv", ","), ("tsv", "\t")])
@pytest.mark.parametrize("orientation", ["cells_by_genes", "genes_by_cells"])
def test_delimited_both_orientations(tmp_path, fmt, sep, orientation):
    x = random_counts(6, 4).toarray()
    cells = [f"c{i}" for i in range(6)]
    table = pd.DataFrame(x, index=cells, columns=NAMES)
    if orientation == "genes_by_cells":
        table = table.T
    path = tmp_path / f"t.{fmt}.gz"
    table.to_csv(path, sep=sep)
    got = read_counts(path, fmt, orientation=orientation)
    assert list(got.obs_names) == cells and list(got.var_names) == NAMES
    assert np.array_equal(got.X.toarray(), x)


def test_delimited_needs_orientation_and_numbers(tmp_path):
    pd.DataFrame({"g": [1, 2]}, index=["a", "b"]).to_csv(tmp_path / "t.csv")
    with pytest.raises(DataError, match="needs 'orientation'"):
        read_counts(tmp_path / "t.csv", "csv")
    pd.DataFrame({"g": ["x", "y"]}, index=["a", "b"]).to_csv(tmp_path / "s.csv")
    with pytest.raises(DataError, match="not numeric"):
        read_counts(tmp_path / "s.csv", "csv", orientation="cells_by_genes")


def test_coordinates_from_cell_names(tmp_path):
    table = pd.DataFrame([[1, 2], [3, 4]], index=["17.907x4.967", "2x3"], columns=["A", "B"])
    table.to_csv(tmp_path / "st.tsv", sep="\t")
    got = read_counts(tmp_path / "st.tsv", "tsv", orientation="cells_by_genes", spatial_key="names")
    assert got.obsm["spatial"].tolist() == [[17.907, 4.967], [2.0, 3.0]]


def test_unreadable_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.h5ad").write_text("not hdf5")
    with pytest.raises(DataError, match="cannot read bad.h5ad as h5ad"):
        read_counts(tmp_path / "bad.h5ad", "h5ad")


# --- real fixtures from ../shared/data --------------------------------------------------------------


def test_real_10x_v3_mtx_and_h5_agree(shared_data):
    base = shared_data / "scrna_10x_format_fixtures_scanpy" / "10x_data" / "3.0.0"
    mtx = read_counts(base / "filtered_feature_bc_matrix", "10x_mtx")
    h5 = read_counts(base / "filtered_feature_bc_matrix.h5", "10x_h5")
    assert mtx.shape == h5.shape == (1107, 507)
    assert (mtx.X != h5.X).nnz == 0
    assert mtx.var["feature_id"].str.startswith("ENSG").all()


def test_real_10x_v2_mtx_and_h5_agree(shared_data):
    base = shared_data / "scrna_10x_format_fixtures_scanpy" / "10x_data" / "1.2.0"
    mtx = read_counts(base / "filtered_gene_bc_matrices", "10x_mtx")
    h5 = read_counts(base / "filtered_gene_bc_matrices_h5.h5", "10x_h5")
    assert mtx.shape == h5.shape and (mtx.X != h5.X).nnz == 0


def test_real_rdata_sparse_and_spatial(shared_data):
    rda = shared_data / "spatial_st_mob_breastcancer" / "original" / "MERINGUE_BCL.rda"
    got = read_counts(rda, "rdata", matrix_key="BCL$counts", spatial_key="BCL$pos")
    assert got.shape == (1031, 13360)
    assert got.obsm["spatial"].shape == (1031, 2)
    assert sorted(got.obs["slice"].unique()) == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(DataError, match="R object 'BCL\\$nope' not found"):
        read_counts(rda, "rdata", matrix_key="BCL$nope")


def test_real_rdata_dense_matrix(shared_data):
    rda = shared_data / "spatial_st_mob_breastcancer" / "original" / "MERINGUE_mOB.rda"
    got = read_counts(rda, "rdata", matrix_key="mOB$counts", spatial_key="mOB$pos")
    assert got.shape == (262, 15928) and sp.issparse(got.X)
    # the named factor beside the counts (the layer annotation) becomes a cell annotation, aligned by spot id
    layers = got.obs["annot"]
    assert layers.notna().sum() == 260 and layers.dropna().str.contains("Layer").all()
    assert layers.loc["ACAACTATGGGTTGGCGG"] == "3: Outer Plexiform Layer"
