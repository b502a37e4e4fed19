"""Protein task inputs, splits and baselines: transforms by hand, split statistics, bad input, real starter data."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from genegraph.errors import DataError
from genegraph.models.protein_baselines import (
    BASELINES,
    BaselineSettings,
    knn_baseline,
    mean_baseline,
    svd_linear_baseline,
)
from genegraph.models.protein_task import (
    SplitSettings,
    TransformSettings,
    build_cross_task,
    build_task,
    load_settings,
    predictions_anndata,
    protein_counts,
    protein_split,
    transform_protein,
    transform_rna,
)


def _cite(n=40, genes=("A", "B", "C", "D"), proteins=("P1", "P2", "P3"), batches=None, seed=0):
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(rng.poisson(2.0, (n, len(genes))).astype(np.float32) + np.eye(n, len(genes)))
    adata = ad.AnnData(X=x, obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]), var=pd.DataFrame(index=list(genes)))
    if batches is not None:
        adata.obs["batch"] = batches
    adata.obsm["protein"] = pd.DataFrame(rng.poisson(5.0, (n, len(proteins))), index=adata.obs_names,
                                         columns=list(proteins))
    return adata


def _split(**kw):
    return load_settings(SplitSettings, "split", kw)


def _transforms(**kw):
    return load_settings(TransformSettings, "transforms", kw)


def test_rna_transforms_by_hand():
    counts = sp.csr_matrix(np.array([[1.0, 3.0], [0.0, 2.0]]))
    # library sizes 4 and 2, mean 3 -> size factors 4/3 and 2/3
    got = transform_rna(counts, "log_size_factor").toarray()
    np.testing.assert_allclose(got, np.log1p([[0.75, 2.25], [0.0, 3.0]]), rtol=1e-6)
    given = transform_rna(counts, "log_size_factor", np.array([0.5, 2.0])).toarray()
    np.testing.assert_allclose(given, np.log1p([[2.0, 6.0], [0.0, 1.0]]), rtol=1e-6)
    cp = transform_rna(counts, "log1p_cp10k").toarray()
    np.testing.assert_allclose(cp, np.log1p([[2500.0, 7500.0], [0.0, 1e4]]), rtol=1e-6)
    np.testing.assert_array_equal(transform_rna(counts, "none").toarray(), counts.toarray())
    with pytest.raises(DataError, match="no RNA counts"):
        transform_rna(sp.csr_matrix(np.array([[0.0, 0.0], [1.0, 0.0]])), "log_size_factor")


def test_protein_clr_is_per_cell_seurat_margin2():
    x = np.array([[0.0, 3.0, 7.0], [1.0, 1.0, 1.0]])
    g0 = np.exp((np.log(1) + np.log(4) + np.log(8)) / 3)  # = 2 (geometric mean of 1 + x)
    np.testing.assert_allclose(transform_protein(x, "clr")[0], np.log1p(x[0] / g0), rtol=1e-6)
    np.testing.assert_allclose(transform_protein(x, "clr")[1], np.log1p([0.5, 0.5, 0.5]), rtol=1e-6)
    with pytest.raises(DataError, match="unknown protein transform"):
        transform_protein(x, "zscore")


def test_split_holds_out_the_last_batch_and_a_seeded_validation_share():
    obs = pd.DataFrame({"batch": ["b2"] * 30 + ["a1"] * 20 + ["c3"] * 10})
    labels = protein_split(obs, 0, _split())
    assert (labels[obs["batch"] == "c3"] == "test").all()
    assert (labels[obs["batch"] != "c3"] != "test").all()
    assert (labels == "val").sum() == int(50 * 0.15)
    np.testing.assert_array_equal(labels, protein_split(obs, 0, _split()))
    assert not np.array_equal(labels, protein_split(obs, 1, _split()))
    chosen = protein_split(obs, 0, _split(test_batch="a1"))
    assert (chosen[obs["batch"] == "a1"] == "test").all() and (chosen == "test").sum() == 20
    with pytest.raises(DataError, match="not a batch"):
        protein_split(obs, 0, _split(test_batch="zz"))


def test_split_without_batches_is_a_seeded_fraction():
    obs = pd.DataFrame(index=range(100))
    labels = protein_split(obs, 3, _split())
    assert (labels == "test").sum() == 20
    assert (labels == "val").sum() == int(80 * 0.15)
    assert set(labels) == {"train", "val", "test"}


def test_build_task_shapes_and_masked_targets():
    adata = _cite(batches=["x"] * 25 + ["y"] * 15)
    task = build_task(adata, 0, _split(), _transforms())
    assert task.x.shape == (40, 4) and task.y.shape == (40, 3)
    assert list(task.proteins) == ["P1", "P2", "P3"] and list(task.genes) == ["A", "B", "C", "D"]
    assert (task.split[25:] == "test").all()
    masked = task.masked_y()
    assert np.isnan(masked[task.split == "test"]).all()
    assert not np.isnan(masked[task.split != "test"]).any()
    sub = task.subset(task.index("test"))
    assert sub.x.shape[0] == 15 and (sub.split == "test").all()


def test_bad_protein_input_raises_naming_the_problem():
    adata = _cite()
    del adata.obsm["protein"]
    with pytest.raises(DataError, match=r"obsm\['protein'\]"):
        build_task(adata, 0, _split(), _transforms())
    adata = _cite()
    prot = adata.obsm["protein"].astype(float)
    prot.iloc[3, 1] = np.nan
    adata.obsm["protein"] = prot
    with pytest.raises(DataError, match="NaN.*P2"):
        protein_counts(adata)
    adata = _cite()
    adata.obsm["protein"].iloc[0, 0] = -1
    with pytest.raises(DataError, match="negative"):
        protein_counts(adata)


def test_cross_task_uses_shared_genes_and_proteins():
    a = _cite(30, genes=("A", "B", "C", "D"), proteins=("P1", "P2", "P3"), seed=1)
    b = _cite(20, genes=("D", "B", "E"), proteins=("P3", "P1", "P9"), seed=2)
    task = build_cross_task(a, b, 0, _split(), _transforms(), names=("X", "Y"))
    assert list(task.genes) == ["B", "D"] and list(task.proteins) == ["P1", "P3"]
    assert (task.split[30:] == "test").all() and (task.split[:30] != "test").all()
    assert (task.split == "val").sum() == int(30 * 0.15)
    assert task.cells[0] == "X:c0" and task.cells[30] == "Y:c0"
    # the test cells' targets are the test dataset's own CLR values, reordered to the shared proteins
    clr_b = transform_protein(b.obsm["protein"].to_numpy(), "clr")
    np.testing.assert_allclose(task.y[30:], clr_b[:, [1, 0]], rtol=1e-6)
    c = _cite(20, proteins=("P3", "Q1"), seed=3)
    with pytest.raises(DataError, match="share 1 protein"):
        build_cross_task(a, c, 0, _split(), _transforms())


def test_baselines_by_hand_and_deterministic():
    settings = load_settings(BaselineSettings, "baselines", {"svd_components": 3, "knn_components": 2,
                                                            "knn_neighbors": 1})
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 6))  # RNA of rank 3 in 6 genes: 3 SVD components span it exactly
    x_train = sp.csr_matrix(rng.normal(size=(30, 3)) @ basis)
    w = rng.normal(size=(6, 2))
    y_train = x_train @ w + 1.0
    x_test = sp.csr_matrix(rng.normal(size=(5, 3)) @ basis)
    np.testing.assert_allclose(mean_baseline(x_train, y_train, x_test, 0, settings),
                               np.tile(y_train.mean(axis=0), (5, 1)), rtol=1e-6)
    exact = svd_linear_baseline(x_train, y_train, x_test, 0, settings)
    np.testing.assert_allclose(exact, x_test @ w + 1.0, atol=1e-4)
    two = load_settings(BaselineSettings, "baselines", {"svd_components": 2, "svd_fit_cells": "train"})
    assert np.abs(svd_linear_baseline(x_train, y_train, x_test, 0, two) - (x_test @ w + 1.0)).max() > 1e-2
    np.testing.assert_array_equal(svd_linear_baseline(x_train, y_train, x_test, 0, settings),
                                  svd_linear_baseline(x_train, y_train, x_test, 0, settings))
    # kNN with one neighbour on a training cell returns that cell's target
    pred = knn_baseline(x_train, y_train, x_train[:3], 0, settings)
    np.testing.assert_allclose(pred, y_train[:3], rtol=1e-5)
    assert set(BASELINES) == {"mean", "svd_linear", "knn"}
    with pytest.raises(DataError, match="NaN"):
        mean_baseline(x_train, np.full((30, 2), np.nan), x_test, 0, settings)


def _starter(shared_data):
    folder = shared_data / "neurips2021_multimodal_starter"
    rna = ad.read_h5ad(folder / "bmmc_cite_starter.rna.h5ad")
    adt = ad.read_h5ad(folder / "bmmc_cite_starter.adt.h5ad")
    adata = ad.AnnData(X=sp.csr_matrix(rna.layers["counts"]), obs=rna.obs.copy(),
                       var=pd.DataFrame(index=rna.var_names))
    adata.obsm["protein"] = pd.DataFrame(adt.layers["counts"].toarray().astype(int), index=rna.obs_names,
                                         columns=adt.var_names)
    return adata, rna, adt


def test_starter_task_reproduces_the_competition_inputs(shared_data):
    adata, rna, adt = _starter(shared_data)
    task = build_task(adata, 0, _split(), _transforms())
    assert (task.split[rna.obs["batch"].to_numpy() == "s1d2"] == "test").all()
    assert (task.split == "test").sum() == 289
    np.testing.assert_allclose(task.x.toarray(), rna.X.toarray(), atol=1e-5)  # ln(1 + counts / scran sf)
    y_ref = adt.X.toarray()
    assert np.abs(task.y - y_ref).max() < 0.1
    assert np.corrcoef(task.y.ravel(), y_ref.ravel())[0, 1] > 0.9999


def test_predictions_anndata_carries_truth_and_metadata():
    task = build_task(_cite(batches=["x"] * 25 + ["y"] * 15), 0, _split(), _transforms())
    pred = np.zeros((15, 3), dtype=np.float32)
    out = predictions_anndata(task, pred, "mean", 0, {"best_epoch": 3})
    assert out.shape == (15, 3) and list(out.var_names) == ["P1", "P2", "P3"]
    np.testing.assert_array_equal(out.layers["truth"], task.y[task.split == "test"])
    assert out.uns["protein_prediction"]["method"] == "mean" and out.uns["protein_prediction"]["best_epoch"] == 3
    with pytest.raises(DataError, match="shape"):
        predictions_anndata(task, pred[:3], "mean", 0)
