"""CS-CORE: agreement with the original R output, edge cases of the algorithm, input checks, simulations."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
import scipy.stats
import torch

from genegraph.errors import DataError
from genegraph.stats.cscore import CSCoreResult, _plan, cscore, cscore_adata

# ---------------------------------------------------------------------------------------------------------
# helpers


def _read_matrix(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col=0, keep_default_na=False, na_values=["NA", "NaN"])


def _assert_close(cand: np.ndarray, ref: np.ndarray, *, rtol: float, atol: float, what: str) -> None:
    """The spec's comparison (§5.4): identical NaN and exact-zero patterns, then atol + rtol |ref|."""
    assert cand.shape == ref.shape, what
    assert np.array_equal(np.isnan(cand), np.isnan(ref)), f"{what}: NaN patterns differ"
    assert np.array_equal(cand == 0, ref == 0), f"{what}: zero patterns differ"
    ok = np.isfinite(cand) & np.isfinite(ref)
    assert np.array_equal(np.isinf(cand), np.isinf(ref)) and np.array_equal(cand[np.isinf(cand)], ref[np.isinf(ref)])
    err = np.abs(cand[ok] - ref[ok])
    bound = atol + rtol * np.abs(ref[ok])
    worst = int(np.argmax(err - bound)) if err.size else 0
    assert np.all(err <= bound), (
        f"{what}: {int((err > bound).sum())} entries out of tolerance, worst |Δ| {err[worst]:.3g} at ref "
        f"{ref[ok][worst]:.3g}"
    )


def _literal_cscore(x: np.ndarray, s: np.ndarray, n_iter: int = 10, eps: float = 0.05) -> dict:
    """A direct, unblocked NumPy transcription of spec §1.3-1.6 (base-R style), for cross-checking edge cases."""
    x = np.asarray(x, dtype=np.float64)
    s2 = s**2
    mu = (x * s[:, None]).sum(0) / s2.sum()
    m = np.outer(s, mu)
    r = x - m
    sigma2 = ((r**2 - m) * s2[:, None]).sum(0) / (s2**2).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = mu**2 / sigma2
        j, delta = 0, np.inf
        while delta > eps and j <= n_iter:
            prev = theta
            med = np.median(theta[theta > 0])
            w = m + np.outer(s2, mu**2 / med)
            w[~np.isfinite(w) | (w <= 0)] = 1
            mu = ((x / w) * s[:, None]).sum(0) / (s2[:, None] / w).sum(0)
            m = np.outer(s, mu)
            r = x - m
            h = (m**2 / med + m) ** 2
            h[h <= 0] = 1
            sigma2 = ((r**2 - m) / h * s2[:, None]).sum(0) / (s2[:, None] ** 2 / h).sum(0)
            theta = mu**2 / sigma2
            j += 1
            ok = (theta > 0) & (prev > 0)
            ratio = np.abs(np.log(theta[ok] / prev[ok]))
            ratio = ratio[~np.isnan(ratio)]
            delta = ratio.max() if ratio.size else -np.inf
        med = np.median(theta[theta > 0])
        w = m + np.outer(s2, mu**2 / med)
        w[~np.isfinite(w) | (w <= 0)] = 1
        a = r / w
        covar = ((s2[:, None] * a).T @ a) / ((s2[:, None] / w).T @ (s2[:, None] / w))
        sig = m + np.outer(s2, sigma2)
        v = r / sig
        stat = ((s2[:, None] * v).T @ v) / np.sqrt((s2[:, None] / sig).T @ (s2[:, None] / sig))
        pval = 2 * scipy.stats.norm.sf(np.abs(stat))
        sd = np.sqrt(np.clip(sigma2, 0, None))
        raw = covar / np.outer(sd, sd)
    est = raw.copy()
    bad = ~np.isfinite(np.diag(est))
    est[bad, :] = 0
    est[:, bad] = 0
    np.fill_diagonal(est, 1)
    est = np.clip(est, -1, 1)
    return {"est": est, "raw": raw, "p": pval, "stat": stat, "mu": mu, "sigma2": sigma2, "passes": j}


def _nb_counts(rng: np.random.Generator, n: int, p: int, mean_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    depth = np.round(np.exp(rng.normal(np.log(3000), 0.4, n)))
    rel = np.exp(rng.normal(np.log(1e-3), 0.7, p)) * mean_scale
    size = rng.uniform(1, 8, p)
    mean = depth[:, None] * rel
    x = rng.negative_binomial(size, size / (size + mean))
    return x, depth


# ---------------------------------------------------------------------------------------------------------
# the R reference (shared/reference/cscore_mic100)


@pytest.fixture(scope="module")
def mic100(shared_reference: Path) -> dict:
    ref = shared_reference / "cscore_mic100"
    with gzip.open(ref / "counts.mtx.gz") as fh:
        counts = sp.csr_matrix(scipy.io.mmread(fh).T)  # cells x genes
    genes = (ref / "genes.txt").read_text().splitlines()
    depth = np.loadtxt(ref / "seq_depth.txt")
    out = ref / "r_output"
    r = {k: _read_matrix(out / f"cscore_mic100_{k}.csv") for k in ("est", "p", "stat")}
    for k, df in r.items():
        assert list(df.index) == genes and list(df.columns) == genes, k
    musigma = pd.read_csv(out / "cscore_mic100_musigma.csv", keep_default_na=False, na_values=["NA", "NaN"])
    assert list(musigma["gene"]) == genes
    return {
        "counts": counts, "genes": genes, "depth": depth, "est": r["est"].to_numpy(), "p": r["p"].to_numpy(),
        "stat": r["stat"].to_numpy(), "mu": musigma["mu"].to_numpy(), "sigma2": musigma["sigma2"].to_numpy(),
    }


@pytest.fixture(scope="module")
def mic100_result(mic100: dict) -> CSCoreResult:
    return cscore(mic100["counts"], mic100["depth"], device="cpu", dtype=torch.float64)


def _assert_matches_r(res: CSCoreResult, ref: dict) -> None:
    """The gates of spec §5.5 (CS-CORE)."""
    _assert_close(res.est, ref["est"], rtol=0, atol=1e-9, what="est")
    _assert_close(res.test_stat, ref["stat"], rtol=1e-8, atol=1e-8, what="test_stat")
    _assert_close(res.p_value, ref["p"], rtol=1e-6, atol=1e-300, what="p_value")
    _assert_close(res.mu, ref["mu"], rtol=1e-10, atol=0, what="mu")
    _assert_close(res.sigma2, ref["sigma2"], rtol=1e-10, atol=0, what="sigma2")
    assert np.array_equal(np.abs(res.est) == 1, np.abs(ref["est"]) == 1), "clipped entries differ"


def test_matches_r_reference(mic100: dict, mic100_result: CSCoreResult) -> None:
    res = mic100_result
    _assert_matches_r(res, mic100)
    # what a faithful float64 port achieves (spec §5.5 "expected" column)
    assert np.nanmax(np.abs(res.est - mic100["est"])) <= 1e-12
    nz = mic100["p"] > 1e-300
    assert np.max(np.abs(res.p_value[nz] - mic100["p"][nz]) / mic100["p"][nz]) <= 1e-9
    assert np.max(np.abs(res.test_stat - mic100["stat"]) / np.abs(mic100["stat"])) <= 1e-10
    # facts of the reference set (spec §5.3)
    assert res.n_passes == 3 and res.converged
    assert np.all(np.diag(res.est) == 1.0)
    assert (res.sigma2 > 0).all()
    off = ~np.eye(100, dtype=bool)
    assert np.max(np.abs(res.est[off])) == pytest.approx(0.852, abs=5e-4)
    assert int((res.p_value == 0).sum()) == 101
    assert 0 < np.min(res.p_value[res.p_value > 0]) < 1e-204
    assert int((res.p_value < 1e-8).sum()) == 1822
    assert int((res.p_value < 0.005).sum()) == 5348
    for m in (res.est, res.p_value, res.test_stat):
        assert np.array_equal(m, m.T)
    assert res.est.dtype == res.p_value.dtype == res.test_stat.dtype == np.float64
    assert res.mu.shape == res.sigma2.shape == (100,)


def test_reference_blocked_dense_and_adata(mic100: dict, mic100_result: CSCoreResult) -> None:
    """Gene blocks (several, uneven), dense input and the AnnData entry point give the same numbers."""
    dense = mic100["counts"].toarray()
    n = dense.shape[0]
    # block 7: one panel of 3 blocks at a time (later blocks recomputed per panel), or one block per panel
    assert _plan(n, 100, torch.device("cpu"), torch.float64, 5_000_000, False, 7)[:2] == (7, 3)
    assert _plan(n, 100, torch.device("cpu"), torch.float64, 1, True, 7)[:2] == (7, 1)
    for counts, limit in ((dense, 5_000_000), (mic100["counts"], 1)):
        blocked = cscore(counts, mic100["depth"], block_size=7, memory_limit=limit)
        _assert_matches_r(blocked, mic100)
        for a, b in ((blocked.est, mic100_result.est), (blocked.test_stat, mic100_result.test_stat)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)

    import anndata as ad

    adata = ad.AnnData(
        X=mic100["counts"].astype(np.float32),
        obs=pd.DataFrame({"total_counts": mic100["depth"]}, index=[f"c{i}" for i in range(dense.shape[0])]),
        var=pd.DataFrame(index=mic100["genes"]),
    )
    order = mic100["genes"][::-1]
    res = cscore_adata(adata, order, depth_key="total_counts")
    assert res.genes == tuple(order)
    rev = slice(None, None, -1)
    np.testing.assert_allclose(res.est, mic100_result.est[rev, rev], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(res.p_value, mic100_result.p_value[rev, rev], rtol=1e-9, atol=0)


def test_float32_path_tolerance(mic100: dict, mic100_result: CSCoreResult) -> None:
    """float32 pair products: the tolerances documented in the module docstring (measured on this data)."""
    res = cscore(mic100["counts"], mic100["depth"], dtype="float32")
    ref = mic100_result
    assert res.n_passes == ref.n_passes  # the IRLS runs in float64 either way
    np.testing.assert_array_equal(res.mu, ref.mu)
    assert np.max(np.abs(res.est - ref.est)) < 1e-5
    assert np.max(np.abs(res.test_stat - ref.test_stat)) < 1e-3
    assert np.max(np.abs(res.test_stat - ref.test_stat) / np.maximum(np.abs(ref.test_stat), 1.0)) < 1e-5
    assert np.array_equal(res.p_value == 0, ref.p_value == 0)
    big = ref.p_value > 1e-10
    assert np.max(np.abs(res.p_value[big] - ref.p_value[big]) / ref.p_value[big]) < 1e-4
    pos = ref.p_value > 0
    assert np.max(np.abs(res.p_value[pos] - ref.p_value[pos]) / ref.p_value[pos]) < 1e-2
    assert np.array_equal(res.edges(), ref.edges())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(mic100: dict, mic100_result: CSCoreResult) -> None:
    res = cscore(mic100["counts"], mic100["depth"], device="cuda")
    _assert_matches_r(res, mic100)
    np.testing.assert_allclose(res.est, mic100_result.est, rtol=0, atol=1e-12)
    res32 = cscore(mic100["counts"], mic100["depth"], device="cuda", dtype="float32", block_size=30)
    assert np.max(np.abs(res32.est - mic100_result.est)) < 1e-5
    assert np.array_equal(res32.edges(), mic100_result.edges())


def test_auto_device(mic100: dict, mic100_result: CSCoreResult) -> None:
    res = cscore(mic100["counts"][:, :10], mic100["depth"], device="auto")
    sub = cscore(mic100["counts"][:, :10], mic100["depth"], device="cpu")
    np.testing.assert_allclose(res.est, sub.est, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# algorithm rules on synthetic data (spec §5.6), against a literal transcription of the spec


@pytest.fixture(scope="module")
def awkward() -> tuple[np.ndarray, np.ndarray]:
    """NB genes plus under-dispersed (negative variance) genes, an all-zero gene and a duplicated gene."""
    rng = np.random.default_rng(7)
    x, depth = _nb_counts(rng, 600, 12)
    # variance below Poisson, so sigma2 < 0: two nearly deterministic genes
    under = np.column_stack([np.round(depth * 2e-3) + rng.binomial(1, 0.5, depth.size), np.round(depth * 4e-3)])
    under = under.astype(np.int64)
    zero = np.zeros((600, 1), dtype=np.int64)
    dup = x[:, [3]]  # identical counts: est with gene 3 equals gene 3's raw diagonal, not 1
    x = np.hstack([x[:, :5], under[:, [0]], x[:, 5:], zero, dup, under[:, [1]]])
    return x, depth + x.sum(1)


def test_edge_cases_match_literal_spec(awkward: tuple[np.ndarray, np.ndarray]) -> None:
    x, depth = awkward
    lit = _literal_cscore(x, depth)
    for kw in ({}, {"block_size": 4}, {"block_size": 3, "memory_limit": 1}):
        res = cscore(sp.csc_matrix(x), depth, **kw)
        assert res.n_passes == lit["passes"]
        np.testing.assert_allclose(res.mu, lit["mu"], rtol=1e-12)
        np.testing.assert_allclose(res.sigma2, lit["sigma2"], rtol=1e-10)
        _assert_close(res.est, lit["est"], rtol=0, atol=1e-12, what="est")
        _assert_close(res.test_stat, lit["stat"], rtol=1e-10, atol=1e-12, what="stat")
        _assert_close(res.p_value, lit["p"], rtol=1e-6, atol=1e-300, what="p")
        raw = cscore(x, depth, post_process=False, **kw).est
        both_nan = np.isnan(raw) & np.isnan(lit["raw"])
        np.testing.assert_allclose(np.where(both_nan, 0, raw), np.where(both_nan, 0, lit["raw"]), rtol=1e-10)


def test_negative_variance_genes(awkward: tuple[np.ndarray, np.ndarray]) -> None:
    x, depth = awkward
    res = cscore(x, depth)
    p = x.shape[1]
    neg = np.flatnonzero(res.sigma2 < 0)
    zero_gene = p - 3
    assert set(neg) == {5, p - 1}  # the two binomial genes; sigma2 is reported raw
    for g in list(neg) + [zero_gene]:
        others = np.arange(p) != g
        assert np.all(res.est[g, others] == 0) and np.all(res.est[others, g] == 0)
        assert res.est[g, g] == 1
    # statistics and p-values of negative-variance genes are not zeroed: they use the raw sigma2 in Sigma
    # (where sum s^4 / (Sigma Sigma') < 0 they are NaN, as in R; the literal-spec test checks the values)
    for g in neg:
        row = res.test_stat[g, np.arange(p) != g]
        assert np.isfinite(row).sum() >= 3 and np.all(row[np.isfinite(row)] != 0)
        assert np.array_equal(np.isnan(res.p_value[g]), np.isnan(res.test_stat[g]))
    # an all-zero gene: NaN statistics and p-values (R's pattern), est row zeroed with 1 on the diagonal
    assert res.mu[zero_gene] == 0 and res.sigma2[zero_gene] == 0
    assert np.isnan(res.test_stat[zero_gene]).all() and np.isnan(res.test_stat[:, zero_gene]).all()
    assert np.isnan(res.p_value[zero_gene]).all()
    assert not res.edges()[zero_gene].any()


def test_clipping_to_unit_interval(awkward: tuple[np.ndarray, np.ndarray]) -> None:
    x, depth = awkward
    p = x.shape[1]
    raw = cscore(x, depth, post_process=False).est
    res = cscore(x, depth).est
    dup = p - 2
    # the duplicated gene: its estimate with gene 3 is gene 3's raw diagonal (> 1 on this seed)
    assert raw[3, dup] == pytest.approx(raw[3, 3], rel=1e-12)
    assert raw[3, dup] > 1
    assert res[3, dup] == 1.0 and res[dup, 3] == 1.0
    ok = np.isfinite(np.diag(raw))
    sub = raw[np.ix_(ok, ok)].copy()
    np.fill_diagonal(sub, 1)
    np.testing.assert_array_equal(res[np.ix_(ok, ok)], np.clip(sub, -1, 1))
    assert res.max() <= 1 and res.min() >= -1


def test_clipping_below_minus_one() -> None:
    """Perfectly anti-correlated latent expression: estimates below -1 become -1."""
    rng = np.random.default_rng(4)  # a seed where the raw estimate is -1.077
    n = 400
    depth = np.round(np.exp(rng.normal(np.log(2000), 0.3, n)))
    u = rng.uniform(0.2, 1.8, n)
    lam = np.column_stack([u, 2 - u, rng.gamma(2, 0.5, n), rng.gamma(2, 0.5, n)]) * 5e-3
    x = rng.poisson(depth[:, None] * lam)
    raw = cscore(x, depth, post_process=False).est
    res = cscore(x, depth).est
    assert raw[0, 1] < -1
    assert res[0, 1] == -1.0 and res[1, 0] == -1.0


def test_pass_cap_and_non_convergence(awkward: tuple[np.ndarray, np.ndarray], caplog) -> None:
    x, depth = awkward
    with caplog.at_level("WARNING", logger="genegraph.stats.cscore"):
        res = cscore(x, depth, eps=0.0)
    assert res.n_passes == 11 and not res.converged  # the test runs before each pass: n_iter + 1 passes
    assert "did not converge" in caplog.text
    lit = _literal_cscore(x, depth, eps=0.0)
    assert lit["passes"] == 11
    _assert_close(res.est, lit["est"], rtol=0, atol=1e-12, what="est")
    assert cscore(x, depth, n_iter=0, eps=0.0).n_passes == 1
    assert cscore(x, depth, n_iter=3, eps=0.0).n_passes == 4


# ---------------------------------------------------------------------------------------------------------
# simulations with a known truth


def test_recovers_latent_correlation() -> None:
    """Poisson measurement of correlated log-normal expression: est estimates corr(z), not corr(x)."""
    rng = np.random.default_rng(11)
    n, p = 4000, 6
    rho = np.array([
        [1.0, 0.8, 0.5, 0.0, 0.0, 0.0],
        [0.8, 1.0, 0.4, 0.0, 0.0, 0.0],
        [0.5, 0.4, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, -0.6, 0.0],
        [0.0, 0.0, 0.0, -0.6, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    ])
    sig = np.full(p, 0.6)
    mu = np.array([2e-3, 1e-3, 4e-3, 1.5e-3, 3e-3, 2e-3])
    eps = rng.multivariate_normal(np.zeros(p), rho, size=n)
    z = mu * np.exp(sig * eps - sig**2 / 2)
    depth = np.round(np.exp(rng.normal(np.log(4000), 0.4, n)))
    x = rng.poisson(depth[:, None] * z)
    truth = (np.exp(np.outer(sig, sig) * rho) - 1) / np.sqrt(np.outer(np.exp(sig**2) - 1, np.exp(sig**2) - 1))
    res = cscore(x, depth)
    off = ~np.eye(p, dtype=bool)
    assert np.max(np.abs(res.est[off] - truth[off])) < 0.1
    np.testing.assert_allclose(res.mu, mu, rtol=0.05)
    # the correlated pairs are edges, the independent ones (mostly) are not
    edges = res.edges()
    assert edges[off & (np.abs(truth) > 0.2)].all()
    # the naive correlation of the counts is strongly attenuated by the Poisson noise
    naive = np.corrcoef((x / depth[:, None]).T)
    assert naive[0, 1] < truth[0, 1] - 0.15


def test_null_p_values_uniform_and_diagonal_edges() -> None:
    """Independent gamma-Poisson genes: off-diagonal p ~ U(0, 1); the diagonal p is ~0 (a gene is an edge to itself)."""
    rng = np.random.default_rng(2024)
    n, p = 1500, 40
    mu = np.exp(rng.uniform(np.log(1e-3), np.log(5e-3), p))
    shape = rng.uniform(1, 5, p)
    z = rng.gamma(shape, mu / shape, size=(n, p))
    depth = np.round(np.exp(rng.normal(np.log(3000), 0.4, n)))
    x = rng.poisson(depth[:, None] * z)
    res = cscore(x, depth)
    pv = res.p_value[np.triu_indices(p, 1)]
    assert scipy.stats.kstest(pv, "uniform").pvalue > 0.01
    assert 0.02 < np.mean(pv < 0.05) < 0.09
    assert np.all(np.diag(res.p_value) < 1e-10)
    assert np.all(np.diag(res.test_stat) > 6)
    assert np.abs(res.est[np.triu_indices(p, 1)]).max() < 0.25


# ---------------------------------------------------------------------------------------------------------
# input checks


def _good() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x, depth = _nb_counts(rng, 50, 4)
    return x.astype(np.float64), depth + x.sum(1)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda x, d: (np.where(np.arange(x.size).reshape(x.shape) == 5, 0.5, x), d), "not integer"),
        (lambda x, d: (np.where(np.arange(x.size).reshape(x.shape) == 5, -1.0, x), d), "negative"),
        (lambda x, d: (np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), d), "NaN"),
        (lambda x, d: (np.where(np.arange(x.size).reshape(x.shape) == 5, np.inf, x), d), "infinite"),
        (lambda x, d: (sp.csr_matrix(x * 0.5 + 0.25), d), "not integer"),
        (lambda x, d: (x, d[:-1]), "49 values but the count matrix has 50 cells"),
        (lambda x, d: (x, np.append(d, 1.0)), "51 values"),
        (lambda x, d: (x, np.where(np.arange(d.size) == 3, 0.0, d)), "positive"),
        (lambda x, d: (x, np.where(np.arange(d.size) == 3, -5.0, d)), "positive"),
        (lambda x, d: (x, np.where(np.arange(d.size) == 3, np.nan, d)), "NaN"),
        (lambda x, d: (x, np.where(np.arange(d.size) == 3, np.inf, d)), "infinite"),
        (lambda x, d: (x, np.vstack([d, d])), "vector"),
        (lambda x, d: (x, ["a"] * d.size), "not numeric"),
        (lambda x, d: (x[:, :1], d), "at least 2 genes"),
        (lambda x, d: (x[:1], d[:1]), "at least 2 cells"),
        (lambda x, d: (x.ravel(), d), "2-dimensional"),
        (lambda x, d: (x.astype(str).astype(object), d), "object"),
    ],
)
def test_bad_input_raises_data_error(mutate, match) -> None:
    x, depth = _good()
    bad_x, bad_d = mutate(x, depth)
    with pytest.raises(DataError, match=match):
        cscore(bad_x, bad_d)


def test_near_integer_counts_are_accepted() -> None:
    x, depth = _good()
    a = cscore(x + 1e-9, depth)
    b = cscore(x.astype(np.int32), depth)
    np.testing.assert_array_equal(a.est, b.est)


def test_bad_options() -> None:
    x, depth = _good()
    with pytest.raises(ValueError, match="dtype"):
        cscore(x, depth, dtype="float16")
    with pytest.raises(ValueError, match="device"):
        cscore(x, depth, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            cscore(x, depth, device="cuda")
    with pytest.raises(ValueError, match="block_size"):
        cscore(x, depth, block_size=0)
    with pytest.raises(ValueError, match="num_threads"):
        cscore(x, depth, num_threads=0)


def test_num_threads_is_restored() -> None:
    x, depth = _good()
    before = torch.get_num_threads()
    a = cscore(x, depth, num_threads=1)
    assert torch.get_num_threads() == before
    np.testing.assert_allclose(a.est, cscore(x, depth).est, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------------------------------------
# AnnData entry point


@pytest.fixture()
def adata():
    import anndata as ad

    rng = np.random.default_rng(5)
    x, _ = _nb_counts(rng, 300, 10)
    other = rng.poisson(2000, 300)  # counts of genes not in the object: total_counts covers them
    obs = pd.DataFrame({"total_counts": x.sum(1) + other}, index=[f"cell{i}" for i in range(300)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(10)])
    a = ad.AnnData(X=sp.csr_matrix(x.astype(np.float32)), obs=obs, var=var)
    a.layers["counts"] = sp.csr_matrix(x)
    a.X = sp.csr_matrix(np.log1p(x).astype(np.float32))  # normalised data in X, counts in a layer
    return a


def test_cscore_adata_layer_genes_and_depth(adata) -> None:
    genes = ["G7", "G2", "G4", "G0"]
    res = cscore_adata(adata, genes, layer="counts", depth_key="total_counts")
    idx = [7, 2, 4, 0]
    direct = cscore(adata.layers["counts"][:, idx], adata.obs["total_counts"].to_numpy())
    assert res.genes == tuple(genes)
    np.testing.assert_array_equal(res.est, direct.est)
    np.testing.assert_array_equal(res.p_value, direct.p_value)
    # depth_key=None: row sums of the whole matrix (all genes of the object, here fewer than total_counts counts)
    alt = cscore_adata(adata, genes, layer="counts", depth_key=None)
    full = np.asarray(adata.layers["counts"].sum(1)).ravel()
    np.testing.assert_array_equal(alt.est, cscore(adata.layers["counts"][:, idx], full).est)
    assert not np.allclose(alt.est, res.est, rtol=0, atol=1e-3)  # the depth matters


def test_cscore_adata_errors(adata) -> None:
    with pytest.raises(DataError, match="not integer"):
        cscore_adata(adata, ["G1", "G2"])  # X holds log-normalised values
    with pytest.raises(DataError, match="not in the AnnData"):
        cscore_adata(adata, ["G1", "nope"], layer="counts")
    with pytest.raises(DataError, match="duplicates"):
        cscore_adata(adata, ["G1", "G1"], layer="counts")
    with pytest.raises(DataError, match="no column 'depth'"):
        cscore_adata(adata, ["G1", "G2"], layer="counts", depth_key="depth")
    with pytest.raises(DataError, match="no layer"):
        cscore_adata(adata, ["G1", "G2"], layer="raw")
    with pytest.raises(DataError, match="at least 2 genes"):
        cscore_adata(adata, ["G1"], layer="counts")
    adata.obs.loc["cell3", "total_counts"] = 0
    with pytest.raises(DataError, match="positive"):
        cscore_adata(adata, ["G1", "G2"], layer="counts")
    adata.obs["label"] = "x"
    with pytest.raises(DataError, match="not numeric"):
        cscore_adata(adata, ["G1", "G2"], layer="counts", depth_key="label")
