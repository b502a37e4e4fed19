"""Davies' method (AS 155) and Liu's approximation against CompQuadForm 1.4.3 (``davies_cases.csv``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from genegraph.stats import davies as dv


@pytest.fixture(scope="module")
def cases(shared_reference):
    df = pd.read_csv(shared_reference / "davies_cases.csv", keep_default_na=False, na_values=["NA", "NaN"])
    df["lam"] = [np.array([float(v) for v in s.split(";")]) for s in df["lambdas"]]
    return df


def _close(ours, ref, rtol, atol):
    ours = np.asarray(ours, dtype=float)
    ref = np.asarray(ref, dtype=float)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    assert np.array_equal(ours == 0, ref == 0), "zero patterns differ"
    ok = np.abs(ours - ref) <= atol + rtol * np.abs(ref)
    assert ok.all(), f"{(~ok).sum()} cases out of tolerance, worst {np.max(np.abs(ours - ref)[~ok])}"


def test_reference_file_shape(cases):
    assert len(cases) == 2500
    assert (cases["ifault"] == 0).all()
    assert ((cases["davies_Qq"] <= 0) == (cases["sparkx_p"] != cases["davies_Qq"])).all()
    assert (cases["davies_Qq"] <= 0).sum() == 34


def test_davies_all_cases(cases):
    res = [dv.davies(q, lam) for q, lam in zip(cases["q"], cases["lam"])]
    p = np.array([r.p for r in res])
    # Davies' accuracy is absolute (1e-4); the port repeats its arithmetic, so it agrees to rounding
    # (measured: max |diff| 8.7e-15, max relative 1.1e-10)
    _close(p, cases["davies_Qq"], rtol=1e-9, atol=1e-13)
    assert all(r.ifault == 0 for r in res)
    # the same cases fall back to Liu (Davies <= 0), including those that are exactly 0
    assert np.array_equal(p <= 0, cases["davies_Qq"].to_numpy() <= 0)


def test_liu_all_cases(cases):
    p = np.array([dv.liu(q, lam) for q, lam in zip(cases["q"], cases["lam"])])
    _close(p, cases["liu"], rtol=1e-9, atol=1e-300)  # measured: relative 9.5e-13


def test_sparkx_rule_all_cases(cases):
    p = np.array([dv.sparkx_pvalue(q, lam)[0] for q, lam in zip(cases["q"], cases["lam"])])
    _close(p, cases["sparkx_p"], rtol=1e-9, atol=1e-13)
    fallback = cases["davies_Qq"].to_numpy() <= 0
    # where SPARK-X uses Liu the p-values are small and must agree in relative terms
    _close(p[fallback], cases["sparkx_p"].to_numpy()[fallback], rtol=1e-9, atol=1e-300)


def test_batch_equals_single_calls(cases):
    bc = cases[cases["case"].str.startswith("bc_")]
    q = bc["q"].to_numpy()
    lam = np.stack(bc["lam"].to_list())
    batch = dv.davies(q, lam)
    single = np.array([dv.davies(a, b).p for a, b in zip(q, lam)])
    assert np.array_equal(batch.p, single)  # bit-identical, whatever the thread split
    again = dv.davies(q, lam)
    assert np.array_equal(batch.p, again.p) and np.array_equal(batch.trace, again.trace)
    p_batch, faults = dv.sparkx_pvalue(q, lam)
    assert (faults == 0).all()
    assert np.array_equal(p_batch, np.array([dv.sparkx_pvalue(a, b)[0] for a, b in zip(q, lam)]))
    liu_batch = dv.liu(q, lam)
    assert np.array_equal(liu_batch, np.array([dv.liu(a, b) for a, b in zip(q, lam)]))


def test_chi_square_special_cases():
    q = np.array([0.5, 2.0, 5.0, 12.0])
    # one term: chi^2_1; Davies' error is absolute, at most acc = 1e-4
    for x in q:
        assert abs(dv.davies(x, [1.0]).p - scipy.stats.chi2.sf(x, 1)) < 1e-4
        assert abs(dv.davies(x, [2.0, 2.0]).p - scipy.stats.chi2.sf(x / 2, 2)) < 1e-4
        # Liu with equal weights is the exact chi-square tail
        assert dv.liu(x, [2.0, 2.0]) == pytest.approx(scipy.stats.chi2.sf(x / 2, 2), rel=1e-12)
        assert dv.liu(x, [1.5, 1.5, 1.5]) == pytest.approx(scipy.stats.chi2.sf(x / 1.5, 3), rel=1e-12)
    # far tail: Davies returns <= 0, so the SPARK-X rule gives Liu's (here exact) value
    assert dv.davies(60.0, [1.0, 1.0]).p <= 0
    p, fault = dv.sparkx_pvalue(60.0, [1.0, 1.0])
    assert fault == 0 and p == pytest.approx(np.exp(-30.0), rel=1e-12)


def test_noncentral_and_df():
    for x in (0.5, 3.0, 9.0):
        exact = scipy.stats.ncx2.sf(x, 1, 2.0)
        assert abs(dv.davies(x, [1.0], delta=[2.0]).p - exact) < 1e-4
        assert dv.liu(x, [1.0], delta=[2.0]) == pytest.approx(exact, rel=1e-10)  # 4 cumulants of 1 term
        assert abs(dv.davies(x, [1.0], df=[3]).p - scipy.stats.chi2.sf(x, 3)) < 1e-4
    # mixed signs: P(Q > q) for Q = chi2_1 - 0.5 chi2_1, checked by simulation-free quadrature bound
    p = dv.davies(0.0, [1.0, -0.5]).p
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 400_000)) ** 2
    assert abs(p - np.mean(z[0] - 0.5 * z[1] > 0)) < 3e-3
    # the distribution function and the upper tail are complements
    r = dv.qfc(3.0, [1.0, 0.7, 0.2])
    assert dv.davies(3.0, [1.0, 0.7, 0.2]).p == 1.0 - r.p


def test_faults_and_degenerate_inputs():
    # bound evaluations beyond lim: fault 4, distribution function -1, upper tail 2 (as CompQuadForm)
    r = dv.davies(3.0, [1.0, 1.0], lim=5)
    assert r.ifault == 4 and r.p == 2.0
    # too many integration terms for lim: fault 1
    r = dv.davies(3.0, [1.0, 1e-3, 1e-3], lim=40)
    assert r.ifault in (1, 4) and r.p == 2.0
    # invalid parameters: fault 3
    assert dv.davies(3.0, [1.0, 1.0], df=[-1, 1]).ifault == 3
    assert dv.davies(3.0, [1.0, 1.0], delta=[-1.0, 0.0]).ifault == 3
    # all weights zero: a point mass at 0
    assert dv.davies(3.0, [0.0, 0.0]).p == 0.0
    assert dv.davies(0.0, [0.0, 0.0]).p == 1.0
    # NaN inputs give NaN (fault 3), not a number
    r = dv.davies(np.nan, [1.0, 1.0])
    assert np.isnan(r.p) and r.ifault == 3
    p, _ = dv.sparkx_pvalue(np.array([np.nan, 3.0]), np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert np.isnan(p[0]) and 0 < p[1] < 1
    # Liu below the support (x <= 0): the whole mass is above
    assert dv.liu(-1.0, [1.0, 0.5]) == 1.0
    with pytest.raises(ValueError):
        dv.davies([1.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError):
        dv.davies(1.0, [1.0, 1.0], df=[1.5, 1])


def test_trace_is_reported():
    r = dv.davies(5.0, [1.0, 0.8])
    terms, n_integrations, interval, trunc_point, count = r.trace[1], r.trace[2], r.trace[3], r.trace[4], r.trace[6]
    assert terms >= 1 and n_integrations >= 1 and interval > 0 and trunc_point > 0 and count >= 1
    assert r.trace[0] > 0  # error bound
