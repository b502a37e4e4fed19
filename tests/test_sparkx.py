"""SPARK-X against the R reference (BC layer 2) and on synthetic edge cases."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import anndata
import numba
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from genegraph.errors import DataError
from genegraph.stats import davies
from genegraph.stats import sparkx as sx

RULE = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "spatial_genes.py"
STAT_COLS = [f"stat_{k}" for k in sx.KERNELS]
PVAL_COLS = [f"pval_{k}" for k in sx.KERNELS]


# --------------------------------------------------------------------------------------------------
# reference data


@pytest.fixture(scope="module")
def bc(shared_reference):
    ref = shared_reference / "sparkx_bc_layer2"
    with gzip.open(ref / "counts.mtx.gz") as fh:
        counts = sp.csr_matrix(scipy.io.mmread(fh).T)  # spots x genes
    genes = (ref / "genes.txt").read_text().splitlines()
    cells = (ref / "cells.txt").read_text().splitlines()
    xy = pd.read_csv(ref / "coords.csv", keep_default_na=False).set_index("cell").loc[cells, ["x", "y"]]
    read = dict(keep_default_na=False, na_values=["NA", "NaN"])
    r_main = pd.read_csv(ref / "r_output" / "sparkx_bc_layer2.csv", **read).set_index("gene")
    r_kern = pd.read_csv(ref / "r_output" / "sparkx_bc_layer2_kernels.csv.gz", **read).set_index("gene")
    return counts, xy.to_numpy(), genes, r_main, r_kern


@pytest.fixture(scope="module")
def bc_result(bc):
    counts, xy, genes, _, _ = bc
    return sx.sparkx(counts, xy, genes)


def _compare(ours, ref, rtol, atol, what):
    ours = np.asarray(ours, dtype=float)
    ref = np.asarray(ref, dtype=float)
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), f"{what}: NaN patterns differ"
    assert np.array_equal(ours == 0, ref == 0), f"{what}: zero patterns differ"
    fin = np.isfinite(ours) & np.isfinite(ref)
    bad = np.abs(ours[fin] - ref[fin]) > atol + rtol * np.abs(ref[fin])
    assert not bad.any(), f"{what}: {bad.sum()} values out of tolerance"


def test_bc_genes_and_columns(bc, bc_result):
    _, _, genes, r_main, r_kern = bc
    assert list(bc_result.index) == list(r_main.index) == list(r_kern.index) == genes  # none dropped
    assert list(bc_result.columns) == ["combined_pval", "adjusted_pval"] + STAT_COLS + PVAL_COLS
    assert bc_result.attrs["n_spots"] == 251 and bc_result.attrs["n_genes_dropped"] == 0


def test_bc_combined_and_adjusted(bc, bc_result):
    _, _, _, r_main, _ = bc
    # gate rtol 1e-6 (atol 1e-300); expected 1e-9 (measured: 8.6e-13 and 7.3e-13)
    for ours, theirs in (("combined_pval", "combinedPval"), ("adjusted_pval", "adjustedPval")):
        _compare(bc_result[ours], r_main[theirs], 1e-6, 1e-300, ours)
        _compare(bc_result[ours], r_main[theirs], 1e-9, 1e-300, ours)


def test_bc_significant_set(bc, bc_result):
    _, _, _, r_main, _ = bc
    ours = set(bc_result.index[bc_result["adjusted_pval"] < 0.05])
    theirs = set(r_main.index[r_main["adjustedPval"] < 0.05])
    assert len(theirs) == 509
    assert ours == theirs


def test_bc_per_kernel(bc, bc_result):
    _, _, _, _, r_kern = bc
    for col in STAT_COLS:  # expected relative 1e-12 (measured: 8.7e-13)
        _compare(bc_result[col], r_kern[col], 1e-11, 0.0, col)
    for col in PVAL_COLS:  # expected relative 1e-9 (measured: 9.6e-13); Davies' absolute accuracy is 1e-4
        ours, ref = bc_result[col].to_numpy(), r_kern[col].to_numpy()
        _compare(ours, ref, 1e-4, 1e-4, col)
        loose = np.abs(ours - ref) > 1e-9 * np.abs(ref)
        assert loose.sum() <= 2, f"{col}: {loose.sum()} p-values beyond 1e-9 relative"


def _same_per_gene(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Identical results except adjusted_pval (BY depends on the whole gene set)."""
    cols = [c for c in a.columns if c != "adjusted_pval"]
    pd.testing.assert_frame_equal(a[cols], b.loc[a.index, cols], check_exact=True)


def test_bc_input_layouts_agree(bc, bc_result):
    counts, xy, genes, _, _ = bc
    sub, names = counts[:, :1500], genes[:1500]
    # gene-major (CSC) input takes another code path; on one block both sum in R's (spot) order
    csc = sx.sparkx(sub.tocsc(), xy, names)
    _same_per_gene(csc, bc_result)
    # dense, genes=None: integer positions
    dense = sx.sparkx(sub[:, :300].toarray(), xy)
    assert list(dense.index) == list(range(300))
    pd.testing.assert_frame_equal(dense, sx.sparkx(sub[:, :300], xy), check_exact=True)
    np.testing.assert_array_equal(dense["combined_pval"].to_numpy(), csc["combined_pval"].to_numpy()[:300])


def test_sparkx_adata(bc, bc_result):
    counts, xy, genes, _, _ = bc
    sub, names = counts[:, :1500], genes[:1500]
    ad = anndata.AnnData(X=sub.astype(np.float32), var=pd.DataFrame(index=names))
    ad.obsm["spatial"] = xy
    res = sx.sparkx_adata(ad)
    _same_per_gene(res, bc_result)
    ad.layers["counts"] = sub
    ad.obsm["xy"] = pd.DataFrame(xy, index=ad.obs_names)
    pd.testing.assert_frame_equal(sx.sparkx_adata(ad, spatial_key="xy", layer="counts"), res, check_exact=True)
    with pytest.raises(DataError, match="obsm"):
        sx.sparkx_adata(ad, spatial_key="nope")
    with pytest.raises(DataError, match="layer"):
        sx.sparkx_adata(ad, layer="nope")


def test_rank_spatial_genes(bc, bc_result):
    top = sx.rank_spatial_genes(bc_result, 20)
    assert len(top) == 20 and len(set(top)) == 20
    ordered = bc_result.sort_values(["adjusted_pval", "combined_pval"], kind="stable")
    assert top == [str(g) for g in ordered.index[:20]]
    assert len(sx.rank_spatial_genes(bc_result)) == len(bc_result)
    assert sx.rank_spatial_genes(bc_result, 0) == []
    # ties in adjusted p are broken by combined p, then by position
    toy = pd.DataFrame(
        {"adjusted_pval": [0.5, 0.1, 0.1, 0.1], "combined_pval": [0.01, 0.03, 0.02, 0.03]}, index=["a", "b", "c", "d"]
    )
    assert sx.rank_spatial_genes(toy, 10) == ["c", "b", "d", "a"]
    with pytest.raises(ValueError):
        sx.rank_spatial_genes(toy, -1)


def test_ranked_table(bc_result):
    table = sx.ranked_table(bc_result)
    assert list(table.columns) == ["gene", "rank", *bc_result.columns]
    assert table["gene"].tolist() == sx.rank_spatial_genes(bc_result)
    assert table["rank"].tolist() == list(range(1, len(bc_result) + 1))
    pd.testing.assert_frame_equal(
        table.set_index("gene").drop(columns="rank"), bc_result.loc[table["gene"]].rename_axis("gene")
    )


@pytest.fixture(scope="module")
def bc_h5ad(bc, tmp_path_factory):
    """The first 1,500 BC genes as an .h5ad: X CSR float32, layers in CSC and dense, coordinates also as a frame."""
    counts, xy, genes, _, _ = bc
    sub = counts[:, :1500]
    ad = anndata.AnnData(X=sub.astype(np.float32), var=pd.DataFrame(index=genes[:1500]))
    ad.layers["csc"] = sub.tocsc()
    ad.layers["dense"] = sub.toarray()
    ad.obsm["spatial"] = xy
    ad.obsm["frame"] = pd.DataFrame(xy, index=ad.obs_names, columns=["x", "y"])
    path = tmp_path_factory.mktemp("h5ad") / "bc.h5ad"
    ad.write_h5ad(path)
    return path, sx.sparkx_adata(ad)


def test_read_h5ad_counts(bc_h5ad, monkeypatch):
    path, expected = bc_h5ad

    def no_anndata(*args, **kwargs):
        raise AssertionError("anndata read the file")

    with monkeypatch.context() as m:  # plain encodings: h5py alone, the same arrays as anndata's
        m.setattr(anndata, "read_h5ad", no_anndata)
        x, xy, genes = sx.read_h5ad_counts(path)
        assert isinstance(x, sp.csr_matrix) and x.dtype == np.float32 and genes == list(expected.index)
        pd.testing.assert_frame_equal(sx.sparkx(x, xy, genes), expected, check_exact=True)
        for layer, kind in (("csc", sp.csc_matrix), ("dense", np.ndarray)):
            x, xy, genes = sx.read_h5ad_counts(path, layer=layer)
            assert isinstance(x, kind)
            pd.testing.assert_frame_equal(sx.sparkx(x, xy, genes), expected, check_exact=True)
        with pytest.raises(DataError, match="obsm"):
            sx.read_h5ad_counts(path, spatial_key="nope")
        with pytest.raises(DataError, match="layer"):
            sx.read_h5ad_counts(path, layer="nope")
    # coordinates stored as a data frame: anndata reads the file
    x, xy, genes = sx.read_h5ad_counts(path, spatial_key="frame")
    pd.testing.assert_frame_equal(sx.sparkx(x, xy, genes), expected, check_exact=True)


def test_read_h5ad_counts_without_x(tmp_path):
    ad = anndata.AnnData(obs=pd.DataFrame(index=["a", "b", "c"]), var=pd.DataFrame(index=["g"]))
    ad.obsm["spatial"] = np.zeros((3, 2))
    ad.write_h5ad(tmp_path / "no_x.h5ad")
    with pytest.raises(DataError, match="X is None"):
        sx.read_h5ad_counts(tmp_path / "no_x.h5ad")


def test_rule_script(bc_h5ad, tmp_path):
    """workflow/scripts/spatial_genes.py as Snakemake runs it: a fresh process with ``snakemake`` in its globals."""
    path, expected = bc_h5ad
    out, log = tmp_path / "sparkx.tsv", tmp_path / "sparkx.log"
    run = (
        "import runpy, sys; from types import SimpleNamespace as NS; "
        "smk = NS(input=[sys.argv[2]], output=[sys.argv[3]], log=[sys.argv[4]], wildcards=NS(dataset='bc')); "
        "smk.threads = 1; runpy.run_path(sys.argv[1], init_globals={'snakemake': smk}, run_name='__main__')"
    )
    subprocess.run([sys.executable, "-c", run, str(RULE), str(path), str(out), str(log)], check=True)
    table = pd.read_csv(out, sep="\t", dtype={"gene": str}, float_precision="round_trip")
    pd.testing.assert_frame_equal(table, sx.ranked_table(expected), check_exact=True)
    assert "1500 genes tested" in log.read_text()


# --------------------------------------------------------------------------------------------------
# synthetic data


def _toy(n_spots=300, n_genes=40, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, (n_spots, 2))
    mean = np.exp(rng.normal(0.0, 1.0, n_genes))
    inside = ((xy[:, 0] - 5) ** 2 + (xy[:, 1] - 5) ** 2 < 9).astype(float)
    fold = np.ones((n_spots, n_genes))
    fold[:, : n_genes // 4] += 3 * inside[:, None]  # the first quarter of the genes is spatial
    counts = rng.poisson(mean[None, :] * fold).astype(np.float64)
    return counts, xy


def _dense_reference_stats(counts, xy):
    """T = n y^T K y / y^T y with the n x n projection kernels, straight from the definitions (float64)."""
    n = xy.shape[0]
    c = xy - xy.mean(axis=0)
    zs = [xy]
    bw = np.stack([np.quantile(np.abs(c[:, a]), [0.2, 0.4, 0.6, 0.8, 1.0]) for a in range(2)], axis=1)
    zs += [np.exp(-(c**2) / (2 * bw[k] ** 2)) for k in range(5)]
    zs += [np.cos(2 * np.pi * c / bw[k]) for k in range(5)]
    out = []
    for z in zs:
        zc = z - z.mean(axis=0)
        k = zc @ np.linalg.inv(zc.T @ zc) @ zc.T
        out.append(n * np.einsum("ij,ik,kj->j", counts, k, counts) / (counts**2).sum(axis=0))
    return np.stack(out, axis=1)


def test_statistic_matches_the_definition():
    counts, xy = _toy()
    res = sx.sparkx(counts, xy)
    np.testing.assert_allclose(res[STAT_COLS].to_numpy(), _dense_reference_stats(counts, xy), rtol=1e-9)
    # p-values are tail probabilities of sum lambda chi2_1 with lambda = lambda_y, here ~ chi2_2(T / lambda_y)
    assert ((res[PVAL_COLS] >= 0) & (res[PVAL_COLS] <= 1)).all().all()
    assert (res.iloc[:10]["adjusted_pval"] < 1e-3).all()  # spatial genes found
    assert (res.iloc[10:]["adjusted_pval"] > 0.01).mean() > 0.8


def test_zero_spots_and_genes_are_dropped():
    counts, xy = _toy(seed=1)
    ref = sx.sparkx(counts, xy, genes=[f"g{j}" for j in range(counts.shape[1])])
    # insert 3 all-zero spots (with arbitrary coordinates) and 2 all-zero genes
    big = np.zeros((counts.shape[0] + 3, counts.shape[1] + 2))
    rows = np.r_[0:10, 13 : counts.shape[0] + 3]
    cols = np.r_[0:5, 6:20, 21 : counts.shape[1] + 2]
    big[np.ix_(rows, cols)] = counts
    xy_big = np.zeros((big.shape[0], 2))
    xy_big[rows] = xy
    xy_big[10:13] = [[1e6, -1e6], [0, 0], [3, 3]]
    names = [f"g{j}" for j in range(5)] + ["zero_a"] + [f"g{j}" for j in range(5, 19)] + ["zero_b"]
    names += [f"g{j}" for j in range(19, counts.shape[1])]
    res = sx.sparkx(sp.csr_matrix(big), xy_big, genes=names)
    assert "zero_a" not in res.index and "zero_b" not in res.index
    assert res.attrs["n_spots_dropped"] == 3 and res.attrs["n_genes_dropped"] == 2
    pd.testing.assert_frame_equal(res, ref, check_exact=True)  # BY over the tested genes only
    # CSC gives the same
    pd.testing.assert_frame_equal(sx.sparkx(sp.csc_matrix(big), xy_big, genes=names), ref, check_exact=True)


def test_gene_in_a_single_spot_is_tested_like_any_other():
    counts, xy = _toy(seed=2)
    counts[:, 0] = 0
    counts[17, 0] = 5
    counts[:, 1] = 0
    counts[[3, 250], 1] = [1, 2]
    res = sx.sparkx(counts, xy)
    n = xy.shape[0]
    c = xy - xy.mean(axis=0)
    lev = c[17] @ np.linalg.inv(c.T @ c) @ c[17]
    assert res.loc[0, "stat_projection"] == pytest.approx(n * lev, rel=1e-10)
    assert np.isfinite(res.loc[[0, 1], PVAL_COLS].to_numpy()).all()


def test_names_and_na_names():
    counts, xy = _toy(n_genes=6)
    res = sx.sparkx(counts, xy, genes=["a", None, "c", np.nan, "e", "f"])
    assert list(res.index) == ["a", "NAgene", "c", "NAgene", "e", "f"]
    with pytest.raises(DataError, match="gene names"):
        sx.sparkx(counts, xy, genes=["a", "b"])


def test_deterministic_across_threads_and_layouts(monkeypatch):
    counts, xy = _toy(n_spots=2000, n_genes=30, seed=3)
    m = sp.csr_matrix(counts)
    base = sx.sparkx(m, xy)
    assert sx.sparkx(m, xy).equals(base)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sx.sparkx(m, xy)
    finally:
        numba.set_num_threads(old)
    assert one.equals(base)
    # Davies' cases in many small chunks over the threads: bit for bit the same
    monkeypatch.setattr(davies, "_CASES_PER_CHUNK", 7)
    assert sx.sparkx(m, xy).equals(base)
    # every sum runs in spot order whatever the layout, so gene-major input gives the same bits
    assert sx.sparkx(m.tocsc(), xy).equals(base)


def test_near_integer_and_integer_dtypes():
    counts, xy = _toy(n_genes=8)
    ref = sx.sparkx(counts, xy)
    pd.testing.assert_frame_equal(sx.sparkx(counts.astype(np.int32), xy), ref, check_exact=True)
    pd.testing.assert_frame_equal(sx.sparkx(sp.csr_matrix(counts.astype(np.float32)), xy), ref, check_exact=True)
    noisy = counts + np.where(counts > 0, 1e-9, 0.0)  # float export noise is accepted
    np.testing.assert_allclose(sx.sparkx(noisy, xy).to_numpy(), ref.to_numpy(), rtol=1e-6)


# --------------------------------------------------------------------------------------------------
# ACAT and BY


def test_acat_as_r():
    p = np.array([[0.01, 0.2, 0.5], [1e-20, 0.3, 0.9], [0.0, 0.5, 0.5], [1.0, 0.5, 0.5]])
    out = sx.acat(p)
    w = 1 / 3
    t0 = sum(w * np.tan((0.5 - x) * np.pi) for x in p[0])
    assert out[0] == pytest.approx(0.5 - np.arctan(t0) / np.pi, rel=1e-13)
    t1 = w / 1e-20 / np.pi + sum(w * np.tan((0.5 - x) * np.pi) for x in p[1, 1:])
    assert t1 > 1e15 and out[1] == pytest.approx(1 / t1 / np.pi, rel=1e-13)
    assert out[2] == 0.0 and out[3] == 1.0
    # R's 1 - pcauchy(T) from the lower tail: small combined p are not the exact Cauchy tail
    big = sx.acat(np.full((1, 11), 1e-10))[0]
    assert big == pytest.approx(1e-10, rel=1e-5)
    for bad in ([np.nan, 0.5], [1.5, 0.5], [0.0, 1.0]):
        with pytest.raises(ValueError):
            sx.acat(np.array([bad]))


def test_p_adjust_by():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.03, 0.9])
    m = len(p)
    q = sum(1 / i for i in range(1, m + 1))
    order = np.argsort(p)
    expect = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):  # step-up from the largest p
        i = order[rank - 1]
        running = min(running, q * m / rank * p[i])
        expect[i] = min(1.0, running)
    np.testing.assert_allclose(sx.p_adjust_by(p), expect, rtol=1e-15)
    assert sx.p_adjust_by(p)[2] == sx.p_adjust_by(p)[4]  # ties get the same value
    assert sx.p_adjust_by(np.array([])).shape == (0,)


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.fixture
def toy():
    return _toy(n_spots=50, n_genes=5, seed=4)


def test_bad_coordinates(toy):
    counts, xy = toy
    with pytest.raises(DataError, match="rows"):
        sx.sparkx(counts, xy[:-1])
    with pytest.raises(DataError, match="spots x d"):
        sx.sparkx(counts, xy[:, 0])
    with pytest.raises(DataError, match="spots x d"):
        sx.sparkx(counts, np.zeros((50, 0)))
    bad = xy.copy()
    bad[7, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        sx.sparkx(counts, bad)
    with pytest.raises(DataError, match="numeric"):
        sx.sparkx(counts, np.full((50, 2), "a"))
    with pytest.raises(DataError, match="constant"):
        sx.sparkx(counts, np.ones((50, 2)))
    flat = xy.copy()
    flat[:, 1] = 2.5
    with pytest.raises(DataError, match="constant along axis 1"):
        sx.sparkx(counts, flat)
    line = np.column_stack([xy[:, 0], 2 * xy[:, 0] + 1])
    with pytest.raises(DataError, match="linearly dependent"):
        sx.sparkx(counts, line)


def test_bad_counts(toy):
    counts, xy = toy
    for value, msg in ((0.5, "not integers"), (-1.0, "negative"), (np.nan, "NaN"), (np.inf, "NaN or infinite")):
        bad = counts.copy()
        bad[3, 2] = value
        with pytest.raises(DataError, match=msg):
            sx.sparkx(bad, xy)
        with pytest.raises(DataError, match=msg):
            sx.sparkx(sp.csc_matrix(bad), xy)
    with pytest.raises(DataError, match="non-numeric"):
        sx.sparkx(np.full((50, 5), "1"), xy)
    with pytest.raises(DataError, match="2-D"):
        sx.sparkx(counts[:, 0], xy)
    with pytest.raises(DataError, match="empty"):
        sx.sparkx(np.zeros((50, 0)), xy)


def test_too_few_spots(toy):
    counts, xy = toy
    one = np.zeros_like(counts)
    one[4] = counts[4] + 1
    with pytest.raises(DataError, match="at least 2 spots"):
        sx.sparkx(one, xy)
    with pytest.raises(DataError, match="at least 2 spots"):
        sx.sparkx(np.zeros_like(counts), xy)
    two = np.zeros_like(counts)
    two[[4, 9]] = 1 + counts[[4, 9]]
    with pytest.raises(DataError, match="more spots"):
        sx.sparkx(two, xy)


def test_constant_gene_stops_like_r(toy):
    counts, xy = toy
    counts = counts + 0
    counts[:, 2] = 3  # the same count in every spot: lambda_y = 0, R's ACAT stops on NA p-values
    with pytest.raises(DataError, match="same count in every spot"):
        sx.sparkx(counts, xy, genes=list("abcde"))
