"""CellPLM downstream tasks: the denoising hold-out, annotation split, baselines against direct computations,
and each task end to end at a tiny size (shapes, determinism, the caller's model untouched); real data when
``../shared/data`` is present."""

from __future__ import annotations

from types import SimpleNamespace

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition import PCA

from genegraph.errors import DataError
from genegraph.evaluate.annotation import annotation_metrics
from genegraph.evaluate.denoising import denoising_metrics
from genegraph.models.cellplm import baselines, tasks
from genegraph.models.cellplm.pretrain import pretrain
from genegraph.models.cellplm.sentences import dataset_sentences
from genegraph.models.cellplm.settings import cellplm_settings
from genegraph.models.cellplm.simulate import simulate_counts
from genegraph.models.cellplm.vocab import build_vocabulary

SMALL = {"model": {"hidden": 16, "layers": 1, "heads": 2, "latent_dim": 8, "clusters": 3, "decoder_hidden": 16,
                   "nb_hidden": 8, "dropout": 0.1},
         "pretrain": {"epochs": 8, "lr": 0.003},
         "denoising": {"epochs": 4, "patience": 2, "warmup_epochs": 1},
         "annotation": {"epochs": 40, "patience": 10, "n_top_genes": 0, "lr": 0.01},
         "imputation": {"epochs": 3, "warmup_epochs": 1}}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    settings = cellplm_settings(SMALL)
    data = {"a": simulate_counts(120, 40, n_types=3, seed=1), "b": simulate_counts(80, 40, n_types=3, seed=2)}
    vocab = build_vocabulary([a.var_names for a in data.values()])
    return settings, pretrain(data, vocab, settings).model


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- denoising ------------------------------------------------------------------------------------------------


def test_denoising_split_follows_the_deepimpute_protocol():
    rng = np.random.default_rng(0)
    dense = rng.poisson(rng.gamma(0.3, 20.0, size=(200, 60))).astype(np.float32)
    dense[:5] = 0
    dense[:5, :3] = 4  # 3 expressed genes: below min_genes, left untouched
    settings = cellplm_settings({"denoising": {"holdout_fraction": 0.1, "val_fraction": 0.1}}).denoising
    split = tasks.denoising_split(sp.csr_matrix(dense), settings, seed=0)
    test = set(zip(split.test.rows.tolist(), split.test.cols.tolist()))
    val = set(zip(split.val.rows.tolist(), split.val.cols.tolist()))
    assert not test & val
    assert all(dense[r, c] > 0 for r, c in test | val)
    np.testing.assert_array_equal(split.test.counts, dense[split.test.rows, split.test.cols])
    observed = split.observed.toarray()
    assert all(observed[r, c] == 0 for r, c in test | val)
    kept = np.ones_like(dense, dtype=bool)
    kept[split.test.rows, split.test.cols] = kept[split.val.rows, split.val.cols] = False
    np.testing.assert_array_equal(observed[kept], dense[kept])
    for i in range(5, 200):
        nnz = int((dense[i] > 0).sum())
        assert np.sum(split.test.rows == i) == int(np.floor(0.1 * nnz + 0.5))
        assert np.sum(split.val.rows == i) == int(np.floor(0.1 * nnz + 0.5))
    assert not np.isin(np.arange(5), split.test.rows).any()
    assert split.test.counts.mean() < dense[dense > 0].mean()  # low counts are likelier to be held out
    np.testing.assert_allclose(split.library, dense.sum(1))
    again = tasks.denoising_split(sp.csr_matrix(dense), settings, seed=0)
    np.testing.assert_array_equal(again.test.rows, split.test.rows)
    np.testing.assert_array_equal(again.test.cols, split.test.cols)


def test_truth_uses_the_library_before_hold_out():
    counts = sp.csr_matrix(np.array([[2, 3, 5, 10, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=np.float32))
    settings = cellplm_settings({"denoising": {"min_genes": 4, "holdout_fraction": 0.25, "val_fraction": 0.0}})
    split = tasks.denoising_split(counts, settings.denoising, seed=1)
    truth = split.truth(split.test, 1e4)
    expected = np.log1p(split.test.counts / np.array([20.0, 6.0])[split.test.rows] * 1e4)
    np.testing.assert_allclose(truth, expected)
    assert np.all(baselines.raw_prediction(split.observed, split.test.rows, split.test.cols, 1e4) == 0)


def test_knn_smoothing_matches_a_direct_computation():
    a = simulate_counts(60, 30, n_types=2, seed=3)
    x = a.X.toarray().astype(np.float64)
    rows, cols = np.array([0, 5, 17, 59]), np.array([1, 2, 29, 0])
    got = baselines.knn_smooth(a.X, rows, cols, 1e4, k=5, n_pcs=4)
    lib = x.sum(1, keepdims=True)
    logn = np.log1p(x / lib * 1e4)
    pcs = PCA(n_components=4, svd_solver="full").fit_transform(logn)
    dist = ((pcs[:, None, :] - pcs[None, :, :]) ** 2).sum(-1)
    nbrs = np.argsort(dist, axis=1, kind="stable")[:, :5]
    expected = np.log1p(np.array([(x[nbrs[r]] / lib[nbrs[r]])[:, c].mean() for r, c in zip(rows, cols)]) * 1e4)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_training_steps_cover_every_cell_once_per_epoch():
    a = simulate_counts(100, 20, n_batches=2, seed=4)
    vocab = build_vocabulary([a.var_names])
    sentences = dataset_sentences("d", a, vocab)
    rng = np.random.default_rng(0)
    whole = list(tasks._steps(sentences, 0, rng))
    assert len(whole) == 2 and sorted(s.name for s in whole) == ["d/b0", "d/b1"]
    chunks = list(tasks._steps(sentences, 16, rng))
    assert all(s.n_cells <= 16 for s in chunks) and len(chunks) >= 100 / 16
    rows = np.concatenate([s.cells for s in chunks])
    assert sorted(rows.tolist()) == list(range(100))
    for s in chunks:  # each chunk keeps its cells' counts
        np.testing.assert_array_equal(s.counts.toarray(), a.X[s.cells].toarray())


def test_denoising_end_to_end(trained):
    settings, model = trained
    before = _state(model)
    target = simulate_counts(90, 40, n_types=3, seed=7)
    split = tasks.denoising_split(target.X, settings.denoising, seed=0)
    zero_shot = tasks.denoise_cellplm(model, target, split, settings.denoising, fine_tune_model=False)
    tuned = tasks.denoise_cellplm(model, target, split, settings.denoising, seed=0)
    tuned_again = tasks.denoise_cellplm(model, target, split, settings.denoising, seed=0)
    nb_settings = cellplm_settings({**SMALL, "denoising": {**SMALL["denoising"], "head": "nb"}}).denoising
    nb = tasks.denoise_cellplm(model, target, split, nb_settings, seed=0)
    assert zero_shot.history is None and len(tuned.history) >= 1
    for pred in (zero_shot, tuned, nb):
        assert pred.test.shape == split.test.rows.shape and np.isfinite(pred.test).all()
    np.testing.assert_array_equal(tuned.test, tuned_again.test)
    truth = split.truth(split.test, 1e4)
    raw = denoising_metrics(truth, baselines.raw_prediction(split.observed, split.test.rows, split.test.cols, 1e4))
    assert denoising_metrics(truth, zero_shot.test)["rmse"] < raw["rmse"]  # NB means beat predicting zeros
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    out_of_vocab = target.copy()
    out_of_vocab.var_names = [f"Z{j}" if j < 3 else g for j, g in enumerate(target.var_names)]
    with pytest.raises(DataError, match="restrict_to_vocabulary"):
        tasks.denoise_cellplm(model, out_of_vocab, split, settings.denoising, fine_tune_model=False)
    assert tasks.restrict_to_vocabulary(out_of_vocab, model.vocab).n_vars == 37


# --- annotation -----------------------------------------------------------------------------------------------


def test_annotation_split_is_stratified_disjoint_and_seeded():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"]
    split = tasks.annotation_split(labels, 0.2, 0.1, seed=0)
    y = np.asarray(labels)
    allidx = np.concatenate([split.train, split.val, split.test])
    assert sorted(allidx.tolist()) == list(range(len(labels)))
    assert [int(np.sum(y[split.test] == c)) for c in "abcd"] == [10, 6, 2, 0]
    assert [int(np.sum(y[split.val] == c)) for c in "abcd"] == [4, 2, 1, 0]
    assert 90 in split.train  # the single "d" cell stays in training
    again = tasks.annotation_split(labels, 0.2, 0.1, seed=0)
    assert np.array_equal(again.test, split.test)
    assert not np.array_equal(tasks.annotation_split(labels, 0.2, 0.1, seed=1).test, split.test)


def test_annotation_end_to_end_and_baselines(trained):
    settings, model = trained
    target = simulate_counts(150, 40, n_types=3, seed=11)
    labels = target.obs["celltype"].to_numpy()
    split = tasks.annotation_split(labels, 0.2, 0.2, seed=0)
    pred = tasks.annotate_cellplm(model, target, labels, split, settings.annotation, seed=0)
    assert pred.labels.shape == (150,) and set(pred.labels) <= set(labels[split.train])
    assert annotation_metrics(labels[split.test], pred.labels[split.test])["macro_f1"] > 0.6
    again = tasks.annotate_cellplm(model, target, labels, split, settings.annotation, seed=0)
    assert np.array_equal(again.labels, pred.labels)
    for baseline in (baselines.pca_logistic(target.X, labels, split.train, 0, 10, 1.0),
                     baselines.celltypist_style(target.X, labels, split.train, 20, 1.0)):
        assert annotation_metrics(labels[split.test], baseline[split.test])["macro_f1"] > 0.9
    with pytest.raises(DataError, match="labels for"):
        tasks.annotate_cellplm(model, target, labels[:10], split, settings.annotation)


def test_highly_variable_genes_rank_by_scanpy_normalised_dispersion():
    import scanpy as sc

    rng = np.random.default_rng(0)
    means = rng.lognormal(0.0, 1.0, size=100)
    flat = rng.poisson(means[None, :] * np.ones((400, 1)))  # Poisson genes over a range of means
    bursty = rng.poisson(np.where(rng.random((400, 1)) < 0.3, 8.0, 0.05))  # one overdispersed gene
    x = sp.csr_matrix(np.hstack([flat, bursty]).astype(np.float32))
    cols = baselines.highly_variable(x, 3)
    assert len(cols) == 3 and 100 in cols
    stats = sc.pp.highly_variable_genes(ad.AnnData(baselines.log_normalise(x).astype(np.float32)), flavor="seurat",
                                        inplace=False)
    ranked = np.argsort(-stats["dispersions_norm"].fillna(-np.inf).to_numpy(), kind="stable")
    assert baselines.highly_variable(x, 17).tolist() == sorted(ranked[:17].tolist())
    assert baselines.highly_variable(x, 0).tolist() == list(range(101))


# --- embedding and spatial imputation ------------------------------------------------------------------------


def test_zero_shot_embedding_and_pca_baseline(trained):
    _, model = trained
    target = simulate_counts(70, 40, n_types=3, n_batches=2, seed=12, spatial=True)
    z = tasks.embed_cells(model, target)
    assert z.shape == (70, 8) and z.dtype == np.float32 and np.isfinite(z).all()
    assert np.array_equal(z, tasks.embed_cells(model, target))
    shuffled = target[np.random.default_rng(0).permutation(70)].copy()
    order = [target.obs_names.get_loc(c) for c in shuffled.obs_names]
    z2 = tasks.embed_cells(model, shuffled)
    np.testing.assert_allclose(z2, z[order], rtol=1e-4, atol=1e-5)  # rows follow the AnnData, whatever the order
    assert baselines.pca_embedding(target.X, 5, 20).shape == (70, 5)


def test_spatial_imputation_returns_log_normalised_values(trained):
    settings, model = trained
    target = simulate_counts(60, 40, n_types=2, n_batches=2, seed=13, spatial=True)
    before = _state(model)
    for tune in (False, True):
        out = tasks.impute_spatial(model, target.X, list(target.var_names), settings.imputation,
                                   coords=target.obsm["spatial"], batches=target.obs["batch"].tolist(),
                                   fine_tune_model=tune)
        assert out.values.shape == (60, 40) and out.values.dtype == np.float32
        assert np.isfinite(out.values).all() and (out.values >= 0).all()
        # log1p(p × 250) with proportions p summing to 1 per cell
        np.testing.assert_allclose(np.expm1(out.values.astype(np.float64)).sum(1), 250.0, rtol=1e-3)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(DataError, match="gene names"):
        tasks.impute_spatial(model, target.X, ["G0"], settings.imputation)


def test_validation_entries_are_uniform_and_chunk_independent():
    rows, cols = tasks._uniform_entries((300, 70), 0.05, np.random.default_rng(0), chunk_entries=700)
    assert len(set(zip(rows.tolist(), cols.tolist()))) == len(rows)
    assert len(rows) / (300 * 70) == pytest.approx(0.05, abs=0.005)
    again = tasks._uniform_entries((300, 70), 0.05, np.random.default_rng(0), chunk_entries=7000)
    assert np.array_equal(again[0], rows) and np.array_equal(again[1], cols)


def test_spaformer_input_adapter_matches_the_direct_call(trained):
    settings, model = trained
    target = simulate_counts(50, 40, n_types=2, n_batches=2, seed=14, spatial=True)
    sections = [np.flatnonzero(target.obs["batch"].to_numpy() == b) for b in ("b0", "b1")]
    inp = SimpleNamespace(counts=target.X, sections=sections, section_names=["b0", "b1"],
                          positions=target.obsm["spatial"].astype(np.float32))
    via = tasks.impute_spatial_input(model, inp, list(target.var_names), settings.imputation, fine_tune_model=False)
    direct = tasks.impute_spatial(model, target.X, list(target.var_names), settings.imputation,
                                  coords=inp.positions, batches=target.obs["batch"].tolist(), fine_tune_model=False)
    np.testing.assert_array_equal(via.values, direct.values)
    inp.sections = sections[:1]
    with pytest.raises(DataError, match="sections"):
        tasks.impute_spatial_input(model, inp, list(target.var_names), settings.imputation, fine_tune_model=False)


def test_fresh_model_has_the_same_architecture(trained):
    settings, model = trained
    fresh = tasks.fresh_model(settings.model, model.vocab, seed=0)
    assert fresh.covariates.datasets == ()
    assert fresh.embedder.gene_embedding.shape == model.embedder.gene_embedding.shape
    assert not torch.equal(fresh.embedder.gene_embedding, model.embedder.gene_embedding)


# --- real data -------------------------------------------------------------------------------------------------


def test_real_counts_split_and_fpkm_rejected(shared_data):
    zheng = ad.read_h5ad(shared_data / "scrna_pbmc_10x_mudan/zheng2017_sorted_pbmc_reference_counts.h5ad")
    sub = zheng[:300].copy()
    settings = cellplm_settings().denoising
    split = tasks.denoising_split(sub.X, settings, seed=0)
    nnz = np.diff(sp.csr_matrix(sub.X).indptr)
    assert len(split.test.rows) == int(np.sum(np.floor(0.1 * nnz[nnz >= 5] + 0.5)))
    labels = sub.obs["cell_type"].astype(str).to_numpy()
    s = tasks.annotation_split(labels, 0.2, 0.1, seed=0)
    assert set(labels[s.test]) <= set(labels)
    hsmm = ad.read_h5ad(shared_data / "scrna_hsmm_myoblast_fpkm_debian/HSMM_fpkm.h5ad")
    vocab = build_vocabulary([hsmm.var_names[:50]])
    with pytest.raises(DataError, match="non-integer"):
        dataset_sentences("hsmm", hsmm[:, :50].copy(), vocab)
