"""SpaFormer: the hold-out, normalisation, sections and graphs, PEs, bi-level masking, training, baselines,
leakage and bad input. Tiny synthetic data written here; real data only in the slow test at the end."""

from __future__ import annotations

import dataclasses

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from genegraph.errors import DataError
from genegraph.evaluate.imputation import benchmark_seed, evaluation_settings
from genegraph.models.spaformer import (
    hold_out,
    imputation_settings,
    impute,
    impute_adata,
    prepare,
)
from genegraph.models.spaformer import holdout as holdout_mod
from genegraph.models.spaformer import positional as pos_mod
from genegraph.models.spaformer.baselines import knn_smooth
from genegraph.models.spaformer.data import (
    normalise,
    scaled_positions,
    select_genes,
    spatial_graph,
    spatial_input,
    split_sections,
)
from genegraph.models.spaformer.masking import bilevel_mask
from genegraph.models.spaformer.positional import (
    Context,
    laplacian_eigvecs,
    sinusoid_encoding,
)
from genegraph.models.spaformer.train import fit, predict

TINY = {
    "model": {"hidden": 16, "ffn": 32, "heads": 2, "latent": 4, "cond_heads": 2, "lap_k": 3},
    "train": {"max_epochs": 4, "min_epochs": 1, "patience": 2},
    "spatial": {"radius": 120.0, "section_key": "fov"},
}
NO_LABELS = evaluation_settings({"label_key": "no_labels"})


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def settings(**over):
    merged = {k: dict(v) for k, v in TINY.items()}
    for key, value in over.items():
        merged.setdefault(key, {}).update(value)
    return imputation_settings(merged)


def make_adata(n_per: int = 30, sections=("a", "b", "c"), genes: int = 24, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    n = n_per * len(sections)
    xy = rng.uniform(0, 600, (n, 2))
    rate = 2 * np.exp(rng.normal(0, 0.7, (1, genes))) * (1.2 + np.sin(xy[:, :1] / 150))
    x = sp.csr_matrix(rng.poisson(rate).astype(np.int64))
    adata = ad.AnnData(x)
    adata.obsm["spatial"] = xy
    adata.obs["fov"] = np.repeat(list(sections), n_per)
    return adata


# --- settings ---------------------------------------------------------------------------------------------


def test_defaults_follow_the_reference():
    s = imputation_settings()
    assert (s.mask.fraction, s.normalise.scale) == (0.3, 250)
    assert (s.masking.cell_rate, s.masking.feature_rate, s.masking.drop_node_rate) == (0.5, 0.5, 0.3)
    assert s.masking.loss_on == "masked_cells"
    m = s.model
    assert (m.encoder, m.pe, m.hidden, m.latent, m.layers, m.heads, m.ffn) == ("performer", "cond", 128, 20, 2, 8, 512)
    assert m.dropout == 0.2
    t = s.train
    assert (t.lr, t.weight_decay, t.grad_clip, t.max_epochs, t.patience, t.min_epochs) == (1e-3, 5e-4, 2, 3000, 10, 10)
    assert evaluation_settings().clustering.start == 0.26 and s.mask.seed == 0
    with pytest.raises(DataError, match="divisible"):
        imputation_settings({"model": {"hidden": 30, "heads": 8}})
    with pytest.raises(DataError, match="invalid configuration"):
        imputation_settings({"masking": {"cell_rate": 1.5}})


# --- hold-out -----------------------------------------------------------------------------------------------


def test_hold_out_is_30_percent_of_all_entries_seeded():
    x = make_adata(n_per=100, genes=60).X
    masked, held = hold_out(x, 0.3, seed=5, scale=250)
    n_entries = x.shape[0] * x.shape[1]
    assert len(held.rows) / n_entries == pytest.approx(0.3, abs=0.012)
    zero_share = 1 - x.nnz / n_entries
    assert np.mean(held.counts == 0) == pytest.approx(zero_share, abs=0.03)  # zeros are held out too
    restored = masked + sp.csr_matrix((held.counts, (held.rows, held.cols)), shape=x.shape)
    assert (restored != x).nnz == 0
    assert np.all(np.asarray(masked[held.rows, held.cols]).ravel() == 0)
    lib = np.asarray(x.sum(axis=1)).ravel()
    assert np.allclose(held.truth, np.log1p(held.counts / lib[held.rows] * 250), rtol=1e-6)
    again_m, again = hold_out(x, 0.3, seed=5, scale=250)
    assert np.array_equal(again.rows, held.rows) and np.array_equal(again.cols, held.cols)
    assert (again_m != masked).nnz == 0
    _, other = hold_out(x, 0.3, seed=6, scale=250)
    assert not np.array_equal(other.rows, held.rows)


def test_hold_out_does_not_depend_on_chunking(monkeypatch):
    x = make_adata(n_per=40).X
    _, whole = hold_out(x, 0.3, 1, 250)
    monkeypatch.setattr(holdout_mod, "CHUNK_ENTRIES", 50)
    _, chunked = hold_out(x, 0.3, 1, 250)
    assert np.array_equal(whole.rows, chunked.rows) and np.array_equal(whole.cols, chunked.cols)


def test_cell_that_would_lose_all_counts_is_unmasked():
    n, g = 400, 8
    x = sp.csr_matrix((np.full(n, 3), (np.arange(n), np.arange(n) % g)), shape=(n, g))  # one count per cell
    masked, held = hold_out(x, 0.3, seed=0, scale=250)
    assert np.all(np.diff(masked.indptr) == 1)  # every cell keeps its only count
    assert np.all(held.counts == 0)
    untouched = np.setdiff1d(np.arange(n), held.rows)
    # ~30 % of the cells drew their count and were rescued entirely (plus the few that drew nothing)
    assert 0.25 < len(untouched) / n < 0.40


def test_hold_out_bad_input():
    x = sp.csr_matrix(np.array([[1, 2], [0, 0]]))
    with pytest.raises(DataError, match="1 cell"):
        hold_out(x, 0.3, 0, 250)
    with pytest.raises(DataError, match="fraction"):
        hold_out(sp.csr_matrix(np.ones((2, 2))), 1.0, 0, 250)


# --- normalisation, genes, sections, graphs ----------------------------------------------------------------------


def test_normalise_hand_computed():
    norm, lib = normalise(sp.csr_matrix(np.array([[1, 3, 0], [0, 0, 5]])), 250)
    assert np.allclose(norm.toarray(), np.log1p([[62.5, 187.5, 0], [0, 0, 250]]))
    assert np.array_equal(lib, [4, 5])


def test_select_genes_by_total_and_detection():
    a = ad.AnnData(sp.csr_matrix(np.array([[9, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 2]])))
    s = settings(genes={"top_n": 2})
    assert list(select_genes(a, s.genes).var_names) == ["0", "1"]  # totals 9, 3, 2, 2
    s = settings(genes={"top_n": 2, "rank_by": "detection"})
    assert list(select_genes(a, s.genes).var_names) == ["1", "2"]  # detection 1, 3, 2, 1


def test_positions_scaled_per_section_by_the_larger_side():
    xy = np.array([[10.0, 10.0], [30.0, 20.0], [20.0, 15.0], [500.0, 0.0], [500.0, 4.0]])
    sections, names = split_sections(np.array(["s1", "s1", "s1", "s2", "s2"]))
    p = scaled_positions(xy, sections)
    assert names == ["s1", "s2"]
    assert np.allclose(p[:3], [[0, 0], [1, 0.5], [0.5, 0.25]])
    assert np.allclose(p[3:], [[0, 0], [0, 1]])


@pytest.mark.parametrize("kind", ["radius", "knn"])
def test_spatial_graph(kind):
    xy = np.random.default_rng(0).uniform(0, 100, (40, 2))
    s = settings(spatial={"graph": kind, "radius": 25.0, "k": 4}).spatial
    a = spatial_graph(xy, s).toarray()
    assert np.allclose(a, a.T) and np.all(np.diag(a) == 1)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    if kind == "radius":
        assert np.array_equal(a > 0, d < 25.0)
    else:
        assert np.all(a.sum(1) - 1 >= 4)
        nearest = np.argsort(d, axis=1)[:, 1:5]
        assert all(a[i, nearest[i]].all() for i in range(40))


def test_missing_section_key_is_one_section():
    a = make_adata()
    s = settings(spatial={"section_key": "slice"})
    inp = spatial_input(a, a.X, 250, s.spatial)
    assert inp.section_names == ["all"] and len(inp.sections[0]) == a.n_obs


@pytest.mark.parametrize("problem, message", [
    ("no_coords", "obsm\\['spatial'\\] is missing"),
    ("nan", "NaN or infinite coordinates for 2 cell"),
    ("singleton", "single cell: lonely"),
    ("shape", "cells x 2"),
])
def test_bad_spatial_input(problem, message):
    a = make_adata()
    if problem == "no_coords":
        del a.obsm["spatial"]
    elif problem == "nan":
        a.obsm["spatial"][[3, 7], 0] = np.nan
    elif problem == "singleton":
        a.obs["fov"] = a.obs["fov"].astype(str)
        a.obs.iloc[0, a.obs.columns.get_loc("fov")] = "lonely"
    else:
        a.obsm["spatial"] = np.c_[a.obsm["spatial"], a.obsm["spatial"][:, 0]]
    with pytest.raises(DataError, match=message):
        prepare(a, settings(), 0)
    with pytest.raises(DataError, match=message):
        impute_adata(a, settings(), "raw")


# --- positional encodings -----------------------------------------------------------------------------------


def test_sinusoid_hand_computed():
    p = np.array([[0.5, 0.0], [0.504, 0.003], [1.0, 1.0]])
    e = sinusoid_encoding(p, 8, 100)
    assert e.shape == (3, 8)
    assert np.allclose(e[0, :4], [np.sin(50), np.cos(50), np.sin(50 * 0.01), np.cos(50 * 0.01)], atol=1e-6)
    assert np.allclose(e[0, 4:], [0, 1, 0, 1])
    assert np.array_equal(e[0], e[1])  # same grid cell
    assert np.allclose(e[2, :2], [np.sin(99), np.cos(99)], atol=1e-6)  # the last bin


def test_laplacian_eigvecs_of_a_cycle():
    n, k = 12, 4
    a = sp.csr_matrix((np.ones(n), (np.arange(n), (np.arange(n) + 1) % n)), shape=(n, n))
    a = a + a.T + sp.eye(n)
    v = laplacian_eigvecs(a, k)
    assert v.shape == (n, k)
    lap = np.eye(n) - (a.toarray() - np.eye(n)) / 2
    ev = np.sort(1 - np.cos(2 * np.pi * np.arange(n) / n))[1:k + 1]
    assert np.allclose(np.sort(np.diag(v.T @ lap @ v)), ev, atol=1e-5)
    assert np.allclose(v.T @ v, np.eye(k), atol=1e-5)
    tiny = laplacian_eigvecs(sp.csr_matrix(np.ones((3, 3))), k)
    assert tiny.shape == (3, k) and np.all(tiny[:, 2:] == 0)


def test_laplacian_eigvecs_sparse_path_matches_dense(monkeypatch):
    xy = np.random.default_rng(3).uniform(0, 10, (150, 2))
    adj = spatial_graph(xy, settings(spatial={"graph": "knn", "k": 6}).spatial)
    dense = laplacian_eigvecs(adj, 5)
    monkeypatch.setattr(pos_mod, "DENSE_EIGEN_MAX", 10)
    sparse = laplacian_eigvecs(adj, 5)
    assert np.allclose(np.abs(dense.T @ sparse), np.eye(5), atol=1e-4)  # same eigenvectors up to sign


def test_context_subset_renumbers_edges():
    ctx = Context(4, None, torch.arange(8.0).view(4, 2), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]))
    sub = ctx.subset(torch.tensor([1, 2, 3]))
    assert sub.n_cells == 3
    assert sub.edge_index.tolist() == [[0, 1], [1, 2]]
    assert sub.eigvecs.tolist() == [[2, 3], [4, 5], [6, 7]]


@pytest.mark.parametrize("pe", ["cond", "lap", "sinusoid", "none"])
def test_every_pe_trains_and_predicts(pe):
    a = make_adata()
    s = settings(model={"pe": pe})
    _, inp, _ = prepare(a, s, 0)
    out = impute(inp, "spaformer", s, 0)
    assert out.expression.shape == inp.shape and out.latent.shape == (inp.shape[0], 4)
    assert np.all(out.expression >= 0) and np.all(np.isfinite(out.expression))


def test_lap_signs_flip_at_each_training_step_only(monkeypatch):
    seen = []
    original = pos_mod.PositionalEncoding.forward

    def spy(self, h, ctx, signs=None):
        seen.append(None if signs is None else signs.clone())
        return original(self, h, ctx, signs)

    monkeypatch.setattr(pos_mod.PositionalEncoding, "forward", spy)
    s = settings(model={"pe": "lap"}, train={"max_epochs": 6, "validation": "none"})
    _, inp, _ = prepare(make_adata(), s, 0)
    fitted = fit(inp, s, 0, torch.device("cpu"))
    flips = torch.stack(seen)
    assert flips.shape == (6 * 3, 3) and set(flips.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(f.tolist()) for f in flips}) > 1
    seen.clear()
    predict(fitted, inp.shape)
    assert seen == [None, None, None]


# --- bi-level masking -----------------------------------------------------------------------------------------


def test_bilevel_mask_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 50) + 0.5
    m = bilevel_mask(x, 0.5, 0.5, 0.0, g)
    assert torch.equal(m.keep, torch.arange(400))
    assert int(m.masked.sum()) == 200
    drops = m.dropped[m.masked]
    assert drops.float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert not m.dropped[~m.masked].any()
    assert torch.equal(m.x[~m.masked], x[~m.masked])
    assert torch.all(m.x[m.dropped] == 0)
    kept = m.masked[:, None] & ~m.dropped
    assert torch.allclose(m.x[kept], 2 * x[kept])
    assert m.x[m.masked].mean().item() == pytest.approx(x[m.masked].mean().item(), rel=0.03)  # mean-preserving


def test_drop_node_rate():
    m = bilevel_mask(torch.ones(3000, 2), 0.5, 0.5, 0.3, torch.Generator().manual_seed(1))
    assert len(m.keep) / 3000 == pytest.approx(0.7, abs=0.03)
    assert m.masked.float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert torch.all(torch.diff(m.keep) > 0)


def test_bilevel_reductions_mae_and_denoising():
    x = torch.rand(100, 20) + 0.1
    mae = bilevel_mask(x, 0.3, 1.0, 0.0, torch.Generator().manual_seed(2))
    assert torch.all(mae.x[mae.masked] == 0) and mae.dropped[mae.masked].all()
    assert torch.equal(mae.x[~mae.masked], x[~mae.masked])
    dae = bilevel_mask(x, 1.0, 0.5, 0.0, torch.Generator().manual_seed(2))
    assert dae.masked.all()
    assert dae.dropped.float().mean().item() == pytest.approx(0.5, abs=0.05)


def test_bilevel_mask_is_deterministic_and_keeps_a_masked_cell():
    x = torch.rand(10, 5)
    a = bilevel_mask(x, 0.5, 0.5, 0.3, torch.Generator().manual_seed(9))
    b = bilevel_mask(x, 0.5, 0.5, 0.3, torch.Generator().manual_seed(9))
    assert torch.equal(a.x, b.x) and torch.equal(a.keep, b.keep)
    one = bilevel_mask(torch.rand(2, 3), 0.1, 0.5, 0.99, torch.Generator().manual_seed(0))
    assert one.masked.sum() == 1  # at least one masked cell, and it survives drop-node


# --- training ---------------------------------------------------------------------------------------------------


def test_training_is_deterministic_and_seeded():
    s = settings()
    _, inp, _ = prepare(make_adata(), s, 0)
    first = impute(inp, "spaformer", s, 3)
    again = impute(inp, "spaformer", s, 3)
    other = impute(inp, "spaformer", s, 4)
    assert np.array_equal(first.expression, again.expression)
    assert np.array_equal(first.latent, again.latent)
    assert not np.array_equal(first.expression, other.expression)


def test_validation_modes():
    s = settings()
    _, inp, _ = prepare(make_adata(), s, 0)
    fitted = fit(inp, s, 0, torch.device("cpu"))
    assert fitted.validation == "section"
    assert all("val_rmse" in r for r in fitted.history)
    one = make_adata(sections=("only",))
    _, inp1, _ = prepare(one, s, 0)
    assert fit(inp1, s, 0, torch.device("cpu")).validation == "entries"
    with pytest.raises(DataError, match="single section"):
        fit(inp1, settings(train={"validation": "section"}), 0, torch.device("cpu"))


def test_early_stopping_restores_the_best_state():
    s = settings(train={"max_epochs": 15, "min_epochs": 2, "patience": 3, "lr": 0.05})
    _, inp, _ = prepare(make_adata(), s, 0)
    fitted = fit(inp, s, 0, torch.device("cpu"))
    vals = [r["val_rmse"] for r in fitted.history]
    assert fitted.best_epoch >= 2
    assert vals[fitted.best_epoch] == min(vals[2:])
    if len(vals) < 15:
        assert len(vals) - 1 - fitted.best_epoch == 3


def test_loss_on_masked_entries_and_mlp_encoder():
    s = settings(masking={"loss_on": "masked_entries"})
    _, inp, _ = prepare(make_adata(), s, 0)
    assert impute(inp, "spaformer", s, 0).expression.shape == inp.shape
    mlp = impute(inp, "spaformer_mlp", s, 0)
    assert mlp.info["n_parameters"] < impute(inp, "spaformer", s, 0).info["n_parameters"]


# --- baselines, leakage, outputs --------------------------------------------------------------------------------


def test_knn_smooth_hand_computed():
    a = ad.AnnData(sp.csr_matrix(np.array([[4, 0], [0, 4], [2, 2]])))
    a.obsm["spatial"] = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    s = settings(knn_smooth={"k": 1})
    inp = spatial_input(a, a.X, 250, s.spatial)
    out = knn_smooth(inp, s.knn_smooth)
    # cell 0 averages itself (250, 0) with cell 1 (0, 250); cell 2's nearest cell is cell 1
    assert np.allclose(out[0], np.log1p([125, 125]))
    assert np.allclose(out[2], np.log1p([(125 + 0) / 2, (125 + 250) / 2]))
    no_self = knn_smooth(inp, dataclasses.replace(s.knn_smooth, include_self=False))
    assert np.allclose(no_self[0], np.log1p([0, 250]))


def test_no_method_sees_a_held_out_value():
    """Change every held-out entry of the counts: no method's output may change (it would on leakage)."""
    a = make_adata()
    s = settings(train={"max_epochs": 3})
    methods = ("spaformer", "spaformer_mlp", "raw", "knn_smooth")
    base = benchmark_seed(a, s, NO_LABELS, 7, methods=methods)
    held = base.heldout
    perturbed = a.copy()
    x = perturbed.X.tolil()
    bump = np.random.default_rng(0).integers(1, 6, len(held.rows))
    for r, c, v in zip(held.rows, held.cols, bump):
        x[r, c] = x[r, c] + v
    perturbed.X = sp.csr_matrix(x)
    other = benchmark_seed(perturbed, s, NO_LABELS, 7, methods=methods)
    assert np.array_equal(other.heldout.rows, held.rows) and not np.allclose(other.heldout.truth, held.truth)
    for m in methods:
        assert np.array_equal(base.imputations[m].expression, other.imputations[m].expression), m
    scores = base.scores.set_index("method")
    assert scores.loc["spaformer", "rmse"] < scores.loc["raw", "rmse"]


def test_impute_adata_output():
    a = make_adata()
    a.obs["celltype"] = "x"
    out = impute_adata(a, settings(genes={"top_n": 10}), "spaformer", seed=0)
    assert out.shape == (a.n_obs, 10)
    assert out.X.dtype == np.float32 and out.obsm["X_spaformer"].shape == (a.n_obs, 4)
    assert np.array_equal(out.obsm["spatial"], a.obsm["spatial"])
    assert out.uns["imputation"]["method"] == "spaformer" and out.uns["imputation"]["epochs"] >= 1
    assert list(out.obs["celltype"]) == ["x"] * a.n_obs
    with pytest.raises(DataError, match="unknown imputation method"):
        impute_adata(a, settings(), "magic")


@pytest.mark.slow
def test_real_breast_cancer_sections(shared_data):
    a = ad.read_h5ad(shared_data / "spatial_st_mob_breastcancer" / "human_breast_cancer_st_4layers_counts.h5ad")
    s = settings(genes={"top_n": 200}, spatial={"section_key": "slice", "radius": 1.5}, train={"max_epochs": 5})
    a = a[np.asarray(select_genes(a, s.genes).X.sum(1)).ravel() >= 50].copy()
    run = benchmark_seed(a, s, NO_LABELS, 0, methods=("spaformer", "raw"))
    assert run.scores.set_index("method").loc["spaformer", "rmse"] < run.scores.set_index("method").loc["raw", "rmse"]
