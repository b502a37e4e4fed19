"""genegraph.stats.sctransform.residuals: SCTransform v2 residual features.

Against Seurat's outputs (``../shared/reference/sctransform_*``, read in place) with the tiers of
``sctransform_README.md``: C (Seurat's parameters -> residuals), B + C (Seurat's step-1 estimates ->
regularisation -> residuals), A + B + C (Seurat's step-1 gene sample -> everything) and own RNG.
Then synthetic data for the API, bad input and the numerical building blocks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from scipy import special

from genegraph.errors import DataError
from genegraph.stats.sctransform.fit import COX_REID_FACTOR, fit_intercepts, fit_overdispersion
from genegraph.stats.sctransform.residuals import (
    feature_file,
    fit_model,
    gene_attributes,
    min_variance,
    model_features,
    rank_by_residual_variance,
    regularised_model,
    residual_block,
    residual_moments,
    scale_features,
    sctransform,
    selected_genes,
)
from genegraph.stats.sctransform.rstats import ksmooth_normal, running_weighted_median, zeroin

DATASETS = ["pbmcA", "celseq2"]


# --------------------------------------------------------------------------------------------------
# Reference data


@dataclass(frozen=True)
class Reference:
    name: str
    counts: sp.csc_matrix  # cells x genes, int
    genes: pd.Index
    pars: pd.DataFrame  # model_pars.csv, index = gene
    step1: list[str]
    scalars: pd.Series
    hvgs: list[str]
    scale: pd.DataFrame  # scale.data, genes x cells, rows re-indexed to the HVG order

    @property
    def n_cells(self) -> int:
        return self.counts.shape[0]

    def adata(self) -> ad.AnnData:
        return ad.AnnData(X=self.counts.tocsr(), var=pd.DataFrame(index=self.genes))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture(scope="module", params=DATASETS)
def ref(request, shared_reference: Path) -> Reference:
    folder = shared_reference / f"sctransform_{request.param}"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    out = folder / "r_output"
    counts = sp.csc_matrix(scipy.io.mmread(folder / "counts.mtx.gz").T).astype(np.int64)
    genes = pd.Index(_lines(folder / "genes.txt"))
    exact = {"float_precision": "round_trip"}  # the files hold %.17g: read them back bit for bit
    pars = pd.read_csv(out / "model_pars.csv", keep_default_na=False, na_values=["NA"], **exact)
    pars = pars.set_index("gene")
    for col in ("poisson_gene", "step1_outlier"):
        pars[col] = pars[col].eq(True)
    hvgs = _lines(out / "variable_features.txt")
    scale = pd.read_csv(out / "scale_data.csv.gz", index_col=0).loc[hvgs]
    scalars = pd.read_csv(out / "scalars.csv", index_col=0, **exact)["value"]
    return Reference(request.param, counts, genes, pars, _lines(out / "step1_genes.txt"), scalars,
                     hvgs, scale)


def _rel(ours, theirs) -> np.ndarray:
    """|ours / theirs - 1| over entries finite in both; the infinite entries must coincide."""
    a, b = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    mismatched = int((np.isinf(a) != np.isinf(b)).sum())
    assert mismatched == 0, f"{mismatched} genes are infinite in one result only"
    ok = np.isfinite(a) & np.isfinite(b)
    return np.abs(a[ok] / b[ok] - 1.0)


def _features64(ref: Reference, params: pd.DataFrame, genes: list[str], min_var: float) -> np.ndarray:
    """Float64 scale.data (genes x cells) of ``genes`` under ``params`` (theta, beta0, beta1)."""
    cols = ref.genes.get_indexer(genes)
    y = ref.counts[:, cols].toarray().T.astype(float)
    umi = np.asarray(ref.counts.sum(axis=1), dtype=float).ravel()
    p = params.loc[genes]
    r = residual_block(y, np.log10(umi), p["theta"].to_numpy(), p["beta0"].to_numpy(),
                       p["beta1"].to_numpy(), min_var, math.sqrt(ref.n_cells))
    return scale_features(r, math.sqrt(ref.n_cells / 30))


def _row_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def _check_residuals_exact(ref: Reference, params: pd.DataFrame) -> None:
    """Tier C gates given theta, beta0, beta1 for the modelled genes (``params`` index = genes)."""
    modelled = params.index
    xm = ref.counts[:, ref.genes.get_indexer(modelled)]
    min_var = min_variance(xm)
    assert min_var == pytest.approx(ref.scalars["min_var"], rel=1e-15)
    umi = np.asarray(ref.counts.sum(axis=1), dtype=float).ravel()
    _, rv = residual_moments(xm, np.log10(umi), params["theta"].to_numpy(), params["beta0"].to_numpy(),
                             params["beta1"].to_numpy(), min_var, math.sqrt(ref.n_cells))
    assert _rel(rv, ref.pars.loc[modelled, "residual_variance"]).max() <= 1e-10
    hvgs = list(modelled[rank_by_residual_variance(rv)[:1000]])
    assert hvgs == ref.hvgs
    diff = np.abs(_features64(ref, params, hvgs, min_var) - ref.scale.to_numpy())
    assert diff.max() <= 1e-8


# --------------------------------------------------------------------------------------------------
# Tier C: residuals and Seurat's post-processing from Seurat's parameters


def test_tier_c_residuals_from_seurat_parameters(ref: Reference) -> None:
    params = ref.pars[ref.pars["in_model"]][["theta", "beta0", "beta1"]]
    _check_residuals_exact(ref, params)


def test_gene_attributes_match_seurat(ref: Reference) -> None:
    attrs = gene_attributes(ref.counts)
    attrs.index = ref.genes
    assert np.array_equal(attrs["n_cells_detected"], ref.pars["n_cells_detected"])
    m = ref.pars["in_model"].to_numpy()
    assert m.sum() == ref.scalars["n_genes_model"]
    assert np.abs(10 ** attrs["log10_gmean"][m] / ref.pars["gmean"][m] - 1).max() <= 1e-12
    # sum / n and the two-pass variance reproduce R bit for bit (this keeps exact var == mean ties)
    assert np.array_equal(attrs["amean"][m], ref.pars["amean"][m])
    assert np.array_equal(attrs["variance"][m], ref.pars["variance"][m])


# --------------------------------------------------------------------------------------------------
# Tier B + C: regularisation from Seurat's step-1 estimates


def test_tier_bc_regularisation_from_seurat_step1(ref: Reference) -> None:
    attrs = gene_attributes(ref.counts)
    attrs.index = ref.genes
    modelled = attrs[ref.pars["in_model"].to_numpy()]
    step1_pos = modelled.index.get_indexer(ref.step1)
    s1 = ref.pars.loc[ref.step1]
    xm = ref.counts[:, ref.genes.get_indexer(modelled.index)]
    mean_cell_sum = float(np.asarray(xm.sum(axis=1)).mean())
    params, run = regularised_model(modelled, step1_pos, s1["step1_theta"].to_numpy(),
                                    s1["step1_beta0"].to_numpy(), mean_cell_sum)
    rp = ref.pars.loc[modelled.index]
    assert np.array_equal(params["step1_outlier"].to_numpy()[step1_pos], s1["step1_outlier"].to_numpy())
    assert np.array_equal(params["poisson_gene"].to_numpy(), rp["poisson_gene"].to_numpy())
    assert run["n_step1_outliers"] == ref.scalars["n_step1_outliers"]
    assert run["n_regularisation_genes"] == ref.scalars["n_regularisation_genes"]
    assert abs(run["bw_regularisation"] / ref.scalars["bw_regularisation"] - 1) <= 1e-12
    assert _rel(params["theta"], rp["theta"]).max() <= 1e-9
    assert np.abs(params["beta0"] - rp["beta0"]).max() <= 1e-9
    _check_residuals_exact(ref, params)


# --------------------------------------------------------------------------------------------------
# Tier A + B + C: the whole method on Seurat's step-1 gene sample


@pytest.fixture(scope="module")
def abc(ref: Reference):
    model = fit_model(ref.counts, ref.genes, step1_genes=ref.step1)
    return model, model_features(ref.adata(), model, n_genes=1000)


def test_tier_abc_model(ref: Reference, abc) -> None:
    model, _ = abc
    g = model.genes
    assert np.array_equal(g["in_model"], ref.pars["in_model"])
    for key in ("n_genes_model", "n_step1_theta_inf", "n_step1_outliers", "n_regularisation_genes",
                "n_poisson_genes", "n_cells_step1"):
        assert model.run[key] == ref.scalars[key], key
    s1 = g.loc[ref.step1]
    assert np.array_equal(s1["step1"], np.arange(len(ref.step1)))
    rel = _rel(s1["step1_theta"], ref.pars.loc[ref.step1, "step1_theta"])
    assert np.median(rel) <= 1e-8
    assert rel.max() <= 1e-3
    assert np.array_equal(s1["step1_outlier"], ref.pars.loc[ref.step1, "step1_outlier"])
    m = g[g["in_model"]]
    rp = ref.pars.loc[m.index]
    assert np.array_equal(m["poisson_gene"], rp["poisson_gene"])
    assert _rel(m["theta"], rp["theta"]).max() <= 1e-5
    assert np.abs(m["beta0"] - rp["beta0"]).max() <= 1e-6
    assert _rel(m["residual_variance"], rp["residual_variance"]).max() <= 1e-5


def test_tier_abc_features(ref: Reference, abc) -> None:
    _, out = abc
    ours = list(out.var_names)
    assert set(ours) == set(ref.hvgs)
    # The order may differ only between genes whose residual variances differ by < 1e-6 relative.
    rv = ref.pars.loc[ours, "residual_variance"].to_numpy()
    r_rank = pd.Index(ref.hvgs).get_indexer(ours)
    inverted = np.triu(r_rank[:, None] > r_rank[None, :], k=1)
    close = np.abs(rv[:, None] / rv[None, :] - 1) < 1e-6
    assert not (inverted & ~close).any()
    assert np.array_equal(out.var["variable_rank"], np.arange(1, 1001))
    assert out.X.dtype == np.float32 and out.shape == (ref.n_cells, 1000)
    theirs = ref.scale.loc[ours].to_numpy()
    feats = np.asarray(out.X, dtype=float).T
    assert _row_correlations(feats, theirs).min() >= 0.999999
    assert np.abs(feats - theirs).max() <= 1e-4


# --------------------------------------------------------------------------------------------------
# Own RNG: the production setting (our own step-1 draw)


def test_own_rng_against_seurat(ref: Reference) -> None:
    model = fit_model(ref.counts, ref.genes)
    out = model_features(ref.adata(), model, n_genes=1000)
    ours, theirs = set(out.var_names), set(ref.hvgs)
    assert len(ours & theirs) / len(ours | theirs) >= 0.82
    assert len(set(ref.hvgs[:800]) & ours) / 800 >= 0.97
    common = [g for g in ref.hvgs if g in ours]
    a = np.asarray(out[:, common].X, dtype=float).T
    b = ref.scale.loc[common].to_numpy()
    r = _row_correlations(a, b)
    assert np.median(r) >= 0.9998
    assert np.quantile(r, 0.01) >= 0.99
    assert r.min() >= 0.98
    assert np.abs(a - b).max() <= 1.0
    m = model.genes[model.genes["in_model"]]
    assert _rel(m["theta"], ref.pars.loc[m.index, "theta"]).max() <= 0.35


# --------------------------------------------------------------------------------------------------
# Synthetic data


def _simulate(n_cells: int = 300, n_genes: int = 400, seed: int = 7) -> ad.AnnData:
    """NB counts with log-normal gene means, varied theta, a few Poisson genes and rare genes."""
    rng = np.random.default_rng(seed)
    depth = rng.lognormal(mean=0.0, sigma=0.4, size=n_cells)
    gene_mean = rng.lognormal(mean=-1.0, sigma=1.5, size=n_genes)
    theta = rng.lognormal(mean=0.0, sigma=1.0, size=n_genes)
    mu = np.outer(depth, gene_mean)
    y = rng.negative_binomial(theta[None, :], theta[None, :] / (theta[None, :] + mu))
    y[:, :20] = rng.poisson(mu[:, :20])
    y[:, -3:] = 0
    y[:2, -3:] = 1  # three genes detected in < 5 cells
    return ad.AnnData(X=sp.csr_matrix(y.astype(np.int64)),
                      obs=pd.DataFrame({"batch": ["a"] * n_cells}, index=[f"c{i}" for i in range(n_cells)]),
                      var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))


@pytest.fixture(scope="module")
def synthetic() -> ad.AnnData:
    return _simulate()


def test_sctransform_output_layout(synthetic: ad.AnnData, tmp_path: Path) -> None:
    out = sctransform(synthetic, n_genes=50)
    assert out.shape == (synthetic.n_obs, 50) and out.X.dtype == np.float32
    assert list(out.obs_names) == list(synthetic.obs_names) and "batch" in out.obs
    assert np.array_equal(out.obs["sct_umi"], np.asarray(synthetic.X.sum(axis=1)).ravel())
    for col in ("theta", "beta0", "beta1", "residual_variance", "variable_rank"):
        assert col in out.var
    assert np.array_equal(out.var["variable_rank"], np.arange(1, 51))
    assert (np.diff(out.var["residual_variance"]) <= 0).all()
    x = np.asarray(out.X, dtype=float)
    assert np.abs(x.mean(axis=0)).max() < 1e-5  # centred per gene
    clip = math.sqrt(synthetic.n_obs / 30)
    assert (x.max(axis=0) - x.min(axis=0) <= 2 * clip + 1e-5).all()  # clipped before centring
    uns = out.uns["sctransform"]
    assert uns["n_features"] == 50 and uns["library_size"] == "row sums of X"
    assert uns["clip_sct"] == pytest.approx(clip)
    assert uns["n_genes_model"] == (np.asarray((synthetic.X > 0).sum(axis=0)).ravel() >= 5).sum()
    out.write_h5ad(tmp_path / "features.h5ad")  # the graph stage reads it back
    back = ad.read_h5ad(tmp_path / "features.h5ad")
    np.testing.assert_array_equal(back.X, out.X)
    assert list(back.uns["sctransform"]["step1_genes"]) == list(uns["step1_genes"])


def test_feature_file_flags_the_selection_and_selected_genes_restores_it(synthetic: ad.AnnData) -> None:
    sct = sctransform(synthetic, n_genes=20)
    features = feature_file(synthetic, sct)
    assert features.shape == synthetic.shape and (features.X != synthetic.X).nnz == 0  # counts kept
    hv = features.var["highly_variable"].to_numpy()
    assert hv.sum() == 20 and set(features.var_names[hv]) == set(sct.var_names)
    ranks = features.var.loc[sct.var_names, "highly_variable_rank"].to_numpy()
    assert list(ranks) == list(range(1, 21))
    assert features.var["highly_variable_rank"].isna().sum() == features.n_vars - 20
    res = features.layers["residuals"]
    assert sp.issparse(res) and res[:, ~hv].nnz == 0
    assert np.isnan(features.var.loc[~hv, "theta"]).all() and np.isfinite(features.var.loc[hv, "beta0"]).all()
    genes = selected_genes(features)
    assert list(genes.var_names) == list(sct.var_names)  # selection order
    np.testing.assert_array_equal(genes.layers["residuals"], sct.X)
    assert (genes.X != synthetic[:, sct.var_names].X).nnz == 0
    spatial = sctransform(synthetic, residual_features=list(synthetic.var_names[[5, 1, 9]]))
    assert list(selected_genes(feature_file(synthetic, spatial)).var_names) == list(synthetic.var_names[[5, 1, 9]])
    with pytest.raises(DataError, match="not a feature file"):
        selected_genes(synthetic)


def test_fewer_modelled_genes_than_requested_uses_all(synthetic: ad.AnnData) -> None:
    sub = synthetic[:, :120].copy()
    detected = np.asarray((sub.X > 0).sum(axis=0)).ravel()
    out = sctransform(sub, n_genes=1000)
    assert out.n_vars == (detected >= 5).sum() == out.uns["sctransform"]["n_genes_model"]
    assert set(out.var_names) == set(sub.var_names[detected >= 5])


def test_same_seed_same_result_and_seed_changes_the_draw(synthetic: ad.AnnData) -> None:
    a = fit_model(synthetic.X, synthetic.var_names, n_step1_genes=100, seed=3)
    b = fit_model(synthetic.X, synthetic.var_names, n_step1_genes=100, seed=3)
    c = fit_model(synthetic.X, synthetic.var_names, n_step1_genes=100, seed=4)
    pd.testing.assert_frame_equal(a.genes, b.genes)
    assert a.run["n_step1_genes"] == 100
    assert not a.genes["step1"].equals(c.genes["step1"])


def test_cell_subsample_for_step1(synthetic: ad.AnnData) -> None:
    model = fit_model(synthetic.X, synthetic.var_names, n_step1_cells=120, seed=1)
    assert model.run["n_cells_step1"] == 120 and len(np.unique(model.cells_step1)) == 120
    full = fit_model(synthetic.X, synthetic.var_names, seed=1)
    assert full.run["n_cells_step1"] == synthetic.n_obs
    m = model.genes["in_model"]
    assert not np.allclose(model.genes.loc[m, "theta"], full.genes.loc[m, "theta"])
    assert np.isfinite(model.genes.loc[m, "residual_variance"]).all()  # residuals use all cells


def test_step1_genes_are_used_in_the_given_order(synthetic: ad.AnnData) -> None:
    model = fit_model(synthetic.X, synthetic.var_names)
    drawn = model.genes["step1"][model.genes["step1"] >= 0].sort_values().index
    given = list(drawn[::-1])
    again = fit_model(synthetic.X, synthetic.var_names, step1_genes=given)
    assert list(again.genes.loc[given, "step1"]) == list(range(len(given)))
    out = sctransform(synthetic, n_genes=10, step1_genes=given)
    assert list(out.uns["sctransform"]["step1_genes"]) == given


def test_depth_key_sets_the_library_size(synthetic: ad.AnnData) -> None:
    adata = synthetic.copy()
    sums = np.asarray(adata.X.sum(axis=1)).ravel()
    adata.obs["same"] = sums
    adata.obs["total_counts"] = sums + 50  # e.g. MT counts removed by QC
    base = sctransform(adata, n_genes=30)
    same = sctransform(adata, n_genes=30, depth_key="same")
    np.testing.assert_array_equal(base.X, same.X)
    deeper = sctransform(adata, n_genes=30, depth_key="total_counts")
    assert deeper.uns["sctransform"]["library_size"] == "obs['total_counts']"
    assert np.array_equal(deeper.obs["sct_umi"], sums + 50)
    assert not np.allclose(deeper.var["beta0"], base.var.loc[deeper.var_names, "beta0"])
    adata.obs["short"] = sums - 1
    with pytest.raises(DataError, match="library size below"):
        sctransform(adata, depth_key="short")
    with pytest.raises(DataError, match="no column"):
        sctransform(adata, depth_key="nope")


def test_residual_features(synthetic: ad.AnnData, caplog) -> None:
    wanted = ["g5", "g399", "g1", "g200"]  # g399 is detected in 2 cells only
    with caplog.at_level(logging.WARNING, logger="genegraph.stats.sctransform.residuals"):
        out = sctransform(synthetic, residual_features=wanted)
    assert list(out.var_names) == ["g5", "g1", "g200"]
    assert list(out.uns["sctransform"]["residual_features_dropped"]) == ["g399"]
    assert "no model" in caplog.text
    with pytest.raises(DataError, match="not in the data"):
        sctransform(synthetic, residual_features=["g1", "MISSING"])


# --------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("bad, match", [
    (np.array([[1.5, 2.0], [3.0, 4.0]] * 5), "not integer"),
    (np.array([[-1, 2], [3, 4]] * 5), "negative"),
])
def test_bad_counts(bad, match) -> None:
    adata = ad.AnnData(X=bad, var=pd.DataFrame(index=["a", "b"]))
    with pytest.raises(DataError, match=match):
        sctransform(adata)


def test_too_few_cells_or_genes(synthetic: ad.AnnData) -> None:
    with pytest.raises(DataError, match="at least 2 cells"):
        sctransform(synthetic[:1].copy())
    best = synthetic.var_names[np.argmax(np.asarray((synthetic.X > 0).sum(axis=0)).ravel())]
    few = synthetic[:, [best, "g397", "g398"]].copy()  # only one gene is modelled
    few.obs["total_counts"] = np.asarray(synthetic.X.sum(axis=1)).ravel()
    with pytest.raises(DataError, match="genes are detected in >= 5 cells"):
        sctransform(few, depth_key="total_counts")
    with pytest.raises(DataError, match="library size 0"):
        sctransform(few)  # cells without counts need a depth from before the gene filter


def test_bad_step1_genes(synthetic: ad.AnnData) -> None:
    with pytest.raises(DataError, match="not in the data"):
        sctransform(synthetic, step1_genes=["g1", "g2", "g3", "NOPE"])
    with pytest.raises(DataError, match="not modelled"):
        sctransform(synthetic, step1_genes=["g1", "g2", "g3", "g398"])
    with pytest.raises(DataError, match="repeats"):
        sctransform(synthetic, step1_genes=["g1", "g2", "g3", "g1"])


def test_duplicate_gene_names() -> None:
    adata = ad.AnnData(X=sp.csr_matrix(np.ones((10, 2), dtype=np.int64)), var=pd.DataFrame(index=["a", "b"]))
    adata.var_names = ["a", "a"]
    with pytest.raises(DataError, match="not unique"):
        sctransform(adata)


# --------------------------------------------------------------------------------------------------
# Building blocks


def _objective(alpha: float, y: np.ndarray, mu: np.ndarray) -> float:
    """Cox-Reid (x 0.99) adjusted NB log likelihood of one gene, from its textbook definition."""
    r = 1.0 / alpha
    ll = np.sum(special.gammaln(y + r) - special.gammaln(r) - special.gammaln(y + 1)
                + y * np.log(alpha * mu) - (y + r) * np.log1p(alpha * mu))
    return ll - COX_REID_FACTOR * 0.5 * np.log(np.sum(mu / (1 + alpha * mu)))


def test_overdispersion_is_the_constrained_maximum() -> None:
    rng = np.random.default_rng(11)
    n = 400
    umi = rng.lognormal(7, 0.5, n)
    mu = np.outer(np.array([1e-3, 5e-4, 2e-3]), umi)
    y = np.vstack([rng.negative_binomial(th, th / (th + m)) for th, m in zip([0.5, 3.0, 20.0], mu)])
    y = np.vstack([y, np.round(mu[2])]).astype(float)  # last gene: under-dispersed, alpha_hat = 0
    mu = np.vstack([mu, mu[2]])
    alpha = fit_overdispersion(y, mu, np.full(4, 0.1))
    assert alpha[3] == 0.0
    for g in range(3):
        best = _objective(alpha[g], y[g], mu[g])
        for factor in (0.999, 1.001, 0.9, 1.1):
            assert best >= _objective(alpha[g] * factor, y[g], mu[g])
    beta = fit_intercepts(y[:3], np.log(umi), alpha[:3], np.zeros(3))
    m = np.exp(beta[:, None] + np.log(umi)[None, :])
    score = ((y[:3] - m) / (1 + alpha[:3, None] * m)).sum(axis=1)
    assert np.abs(score).max() < 1e-6


def test_running_weighted_median_matches_definition() -> None:
    rng = np.random.default_rng(2)
    v = rng.exponential(size=40)
    h = 5
    got = running_weighted_median(v, h)
    w = np.exp(-0.5 * np.linspace(-3, 3, 2 * h + 1) ** 2)
    for i in range(h, 40 - h):
        win = v[i - h:i + h + 1]
        # smallest value whose weight of values <= it reaches half the total
        cand = [x for x in np.sort(win) if w[win <= x].sum() >= w.sum() / 2][0]
        assert got[i] == cand
    assert np.all(got[:h] == got[h]) and np.all(got[-h:] == got[-h - 1])


def test_ksmooth_matches_direct_kernel_sum() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 10, 200), rng.normal(size=200)
    xp = np.array([0.0, 2.5, 7.3, 10.0, 15.0])
    got = ksmooth_normal(x, y, xp, bandwidth=1.5)
    sd = 0.3706506 * 1.5
    for value, x0 in zip(got, xp):
        w = np.where(np.abs(x - x0) <= 4 * sd, np.exp(-0.5 * ((x - x0) / sd) ** 2), 0.0)
        if w.sum() == 0:
            assert np.isnan(value)
        else:
            assert value == pytest.approx((w * y).sum() / w.sum(), rel=1e-12)


def test_zeroin_finds_root_within_tolerance() -> None:
    f = lambda v: v ** 3 - 2.0  # noqa: E731
    root = zeroin(f, 0.0, 3.0, f(0.0), f(3.0), tol=1e-10)
    assert abs(root - 2 ** (1 / 3)) < 1e-9
