"""SCTransform v2 step 1: negative-binomial fits of a gene sample, in bins, the way glmGamPoi makes them.

Model per gene g and cell c: y_gc ~ NB(mu_gc, alpha_g), var = mu + alpha mu^2, ln mu_gc = beta_g + ln umi_c
(the offset fixes the slope on log10 umi at ln 10). Genes are fitted in bins of ``bin_size`` genes, in the
order given; within a bin (all steps vectorised over the bin's genes):

a. moment start alpha0 = (s2 - m / mean(umi)) / m^2, with m, s2 the mean and sample variance of the
   raw counts y (negative or NaN -> 0);
b. intercept beta given alpha0 by Newton's method from ln mean(y / umi) (stop when |step| < 1e-8);
c. alpha_hat: the local maximum, reached from alpha0, of
   l_NB(alpha) - 0.99 * 1/2 ln sum_c mu_c / (1 + alpha mu_c) (the Cox-Reid adjustment scaled by 0.99)
   over alpha in [1e-16, 1e16]; alpha_hat = 0 when the derivative at alpha = 1e-8 is negative;
d. the dispersion trend: a running weighted median of alpha_hat over the genes sorted by mean, window
   2h + 1 with h = floor(npoints / 2), npoints = max(0.1 * bin genes, 100) capped at the bin size;
e. the intercept refitted with alpha = trend, starting from b (the returned intercept);
f. theta = 1 / alpha_hat, infinite when alpha_hat = 0 or theta_mm / theta < 1e-3
   (theta_mm = amean^2 / (var - amean)), then at least 1e-7.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import special

from genegraph.stats.sctransform.rstats import running_weighted_median

log = logging.getLogger(__name__)

#: Scale of the Cox-Reid adjustment in glmGamPoi's overdispersion objective.
COX_REID_FACTOR = 0.99
#: Upper end of the overdispersion range, and the point where a negative slope means alpha_hat = 0.
ALPHA_MAX, ALPHA_ZERO_TEST = 1e16, 1e-8
#: Newton stop for the intercept (absolute step on the natural-log scale).
BETA_TOL = 1e-8
#: Newton stop for ln(alpha) (absolute step); the next iterate is then exact to rounding.
LOG_ALPHA_TOL = 1e-10
#: theta is infinite when theta_mm / theta is below this; theta is at least THETA_MIN.
THETA_MM_RATIO, THETA_MIN = 1e-3, 1e-7
#: Trend window: at least this many genes, or this fraction of the bin.
TREND_MIN_POINTS, TREND_FRACTION = 100, 0.1
#: Above this size r = 1/alpha, digamma differences use their asymptotic series (no cancellation).
_ASYMPTOTIC_R = 50.0
#: Counts up to this use exact finite sums for the digamma/trigamma differences.
_FINITE_SUM_MAX_COUNT = 16
_MAX_ITER = 200
#: Largest intercept step (natural log); only far-off starts reach it, converging steps are tiny.
_MAX_BETA_STEP = 3.0
#: Largest step in ln(alpha) per iteration of the overdispersion search (keeps it in its basin).
_MAX_LOG_STEP = 2.0


@dataclass(frozen=True)
class Step1Fit:
    """Step-1 estimates for the fitted genes (arrays in the order the genes were given).

    ``theta``: NB size (inf = Poisson); ``beta0``: intercept (natural log, offset ln umi) refitted at the
    trended dispersion.
    """

    theta: np.ndarray
    beta0: np.ndarray


def _count_sums(y: np.ndarray, gene: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """D = psi(y + r) - psi(r) and T = psi'(r) - psi'(y + r) for non-zero counts y of genes ``gene``.

    ``r``: size 1/alpha per gene. For y <= 16 the exact finite sums D = sum_{k<y} 1/(r + k) and
    T = sum_{k<y} 1/(r + k)^2 (read off per-gene cumulative tables); above, digamma differences
    (r < 50) or their asymptotic series (r >= 50, where the differences would cancel). T only feeds
    Newton steps, so its series is short.
    """
    inv = 1.0 / (r[:, None] + np.arange(_FINITE_SUM_MAX_COUNT)[None, :])
    d_table = np.cumsum(inv, axis=1)
    t_table = np.cumsum(inv * inv, axis=1)
    col = np.minimum(y, _FINITE_SUM_MAX_COUNT).astype(np.int64) - 1
    d = d_table[gene, col]
    t = t_table[gene, col]
    large = np.flatnonzero(y > _FINITE_SUM_MAX_COUNT)
    if large.size:
        yl, rl = y[large], r[gene[large]]
        big = rl >= _ASYMPTOTIC_R
        mid = large[~big]
        d[mid] = special.digamma(yl[~big] + rl[~big]) - special.digamma(rl[~big])
        t[mid] = special.polygamma(1, rl[~big]) - special.polygamma(1, yl[~big] + rl[~big])
        rb, yb, far = rl[big], yl[big], large[big]
        sb = rb + yb
        d[far] = (np.log1p(yb / rb) + yb / (2.0 * rb * sb) + (1.0 / rb ** 2 - 1.0 / sb ** 2) / 12.0
                  - (1.0 / rb ** 4 - 1.0 / sb ** 4) / 120.0 + (1.0 / rb ** 6 - 1.0 / sb ** 6) / 252.0)
        t[far] = (yb / (rb * sb) + (1.0 / rb ** 2 - 1.0 / sb ** 2) / 2.0
                  + (1.0 / rb ** 3 - 1.0 / sb ** 3) / 6.0 - (1.0 / rb ** 5 - 1.0 / sb ** 5) / 30.0)
    return d, t


def fit_intercepts(y: np.ndarray, log_umi: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Newton solve of sum_c (y - mu) / (1 + alpha mu) = 0 for each gene's intercept.

    ``y``: genes x cells counts (float64); ``log_umi``: ln umi per cell; ``alpha``: per gene; ``beta``:
    start values. A gene stops once |step| < 1e-8 (the step is applied); steps are capped at 3 so
    that a far-off start cannot overshoot into overflow. Returns the intercepts.
    """
    beta = beta.astype(np.float64, copy=True)
    active = np.arange(len(beta))
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        mu = np.exp(beta[active, None] + log_umi[None, :])
        a = alpha[active, None]
        ya = y[active]
        denom = 1.0 + a * mu
        score = ((ya - mu) / denom).sum(axis=1)
        info = (mu * (1.0 + ya * a) / (denom * denom)).sum(axis=1)
        step = np.clip(score / info, -_MAX_BETA_STEP, _MAX_BETA_STEP)
        beta[active] += step
        active = active[~(np.abs(step) < BETA_TOL)]
    else:
        log.warning("intercept Newton did not converge for %d genes", active.size)
    return beta


def _score_and_slope(t: np.ndarray, mu: np.ndarray, nz_gene: np.ndarray, nz_y: np.ndarray,
                     nz_mu: np.ndarray, want_slope: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """d/dt and d2/dt2 of the Cox-Reid-adjusted NB log likelihood at alpha = exp(t), per gene.

    ``mu``: genes x cells means; ``nz_gene``, ``nz_y``, ``nz_mu``: gene index, count and mean of the
    non-zero counts. With r = 1/alpha and D = psi(y + r) - psi(r), the score is
    sum_c [r ln(1 + alpha mu) + (y - mu) / (1 + alpha mu) - r D] + 0.99/2 * alpha Q / S, where
    S = sum mu / (1 + alpha mu) and Q = sum (mu / (1 + alpha mu))^2.
    """
    n_genes = len(t)
    alpha = np.exp(t)
    r = 1.0 / alpha
    am = alpha[:, None] * mu
    log_sum = np.log1p(am).sum(axis=1)
    mu_inv = mu / (1.0 + am)
    s_sum = mu_inv.sum(axis=1)
    mu_inv2 = mu_inv * mu_inv
    q_sum = mu_inv2.sum(axis=1)
    r_nz = r[nz_gene]
    inv_nz = 1.0 / (1.0 + alpha[nz_gene] * nz_mu)
    d_nz, t_nz = _count_sums(nz_y, nz_gene, r)
    cr = COX_REID_FACTOR * 0.5 * alpha * q_sum / s_sum
    score = (r * log_sum + np.bincount(nz_gene, weights=nz_y * inv_nz, minlength=n_genes) - s_sum
             - r * np.bincount(nz_gene, weights=d_nz, minlength=n_genes) + cr)
    if not want_slope:
        return score, None
    c_sum = (mu_inv2 * mu_inv).sum(axis=1)
    y_mu_inv2 = np.bincount(nz_gene, weights=nz_y * nz_mu * inv_nz * inv_nz, minlength=n_genes)
    slope = (np.bincount(nz_gene, weights=r_nz * d_nz - r_nz * r_nz * t_nz, minlength=n_genes)
             - r * log_sum + s_sum - alpha * (y_mu_inv2 - q_sum)
             + cr - COX_REID_FACTOR * alpha ** 2 * c_sum / s_sum + cr * cr / (COX_REID_FACTOR * 0.5))
    return score, slope


def fit_overdispersion(y: np.ndarray, mu: np.ndarray, alpha_start: np.ndarray) -> np.ndarray:
    """Maximise the 0.99-Cox-Reid-adjusted NB likelihood over alpha at fixed ``mu``.

    ``y``, ``mu``: genes x cells; ``alpha_start``: the moment estimates. Genes with all counts 0 or a
    negative score at alpha = 1e-8 get 0; a positive score at alpha = 1e16 gives 1e16. The others
    climb from their start to the nearest local maximum, as a local optimiser does: Newton steps on
    the score in ln(alpha) where it is concave, unit steps uphill where not, steps capped at 2,
    bisection once a step would leave the bracket of points known to lie below/above the root.
    Returns alpha_hat per gene.
    """
    n_genes = y.shape[0]
    alpha_hat = np.zeros(n_genes)
    nz_gene, nz_cell = np.nonzero(y)
    nz_y, nz_mu = y[nz_gene, nz_cell], mu[nz_gene, nz_cell]
    t_lo0, t_hi0 = np.log(ALPHA_ZERO_TEST), np.log(ALPHA_MAX)
    g_lo, _ = _score_and_slope(np.full(n_genes, t_lo0), mu, nz_gene, nz_y, nz_mu, False)
    g_hi, _ = _score_and_slope(np.full(n_genes, t_hi0), mu, nz_gene, nz_y, nz_mu, False)
    has_counts = np.bincount(nz_gene, minlength=n_genes) > 0
    at_max = has_counts & (g_lo >= 0) & (g_hi > 0)
    alpha_hat[at_max] = ALPHA_MAX
    genes = np.flatnonzero(has_counts & (g_lo >= 0) & ~at_max)
    lo = np.full(len(genes), t_lo0)
    hi = np.full(len(genes), t_hi0)
    start = np.where(alpha_start[genes] > 0, alpha_start[genes], ALPHA_ZERO_TEST)
    t = np.clip(np.log(start), t_lo0, t_hi0)
    result = np.empty(len(genes))
    active = np.arange(len(genes))
    keep = np.isin(nz_gene, genes)
    local, a_y, a_mu = np.searchsorted(genes, nz_gene[keep]), nz_y[keep], nz_mu[keep]
    a_mean = mu[genes]
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        ta = t[active]
        g, h = _score_and_slope(ta, a_mean, local, a_y, a_mu, True)
        lo[active] = np.where(g > 0, np.maximum(lo[active], ta), lo[active])
        hi[active] = np.where(g > 0, hi[active], np.minimum(hi[active], ta))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(h < 0, -g / h, np.sign(g))
        step = np.clip(step, -_MAX_LOG_STEP, _MAX_LOG_STEP)
        t_new = ta + step
        outside = ~((t_new > lo[active]) & (t_new < hi[active]))
        t_new = np.where(outside, 0.5 * (lo[active] + hi[active]), t_new)
        t_new = np.where(g == 0, ta, t_new)
        done = (np.abs(t_new - ta) < LOG_ALPHA_TOL) | (g == 0)
        t[active] = t_new
        result[active[done]] = t_new[done]
        active = active[~done]
        if done.any():  # shrink the per-gene arrays to the genes still searching
            new_index = np.cumsum(~done) - 1
            on = ~done[local]
            local, a_y, a_mu = new_index[local[on]], a_y[on], a_mu[on]
            a_mean = a_mean[~done]
    else:
        log.warning("overdispersion search did not converge for %d genes", active.size)
        result[active] = t[active]
    alpha_hat[genes] = np.exp(result)
    return alpha_hat


def dispersion_trend(mean: np.ndarray, alpha_hat: np.ndarray) -> np.ndarray:
    """Running weighted median of ``alpha_hat`` along genes sorted by ``mean`` (see module docstring)."""
    n = len(alpha_hat)
    npoints = min(max(TREND_FRACTION * n, TREND_MIN_POINTS), n)
    half = int(npoints // 2)
    if 2 * half + 1 > n:  # an even-sized bin below the minimum window: the widest centred window
        half = (n - 1) // 2
    order = np.argsort(mean, kind="stable")
    trend = np.empty(n)
    trend[order] = running_weighted_median(alpha_hat[order], half)
    return trend


def _fit_bin(y: np.ndarray, umi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps a-f for one bin: y is genes x cells (float64). Returns theta and beta0."""
    log_umi = np.log(umi)
    m = y.mean(axis=1)
    s2 = y.var(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha0 = (s2 - m / umi.mean()) / (m * m)
        beta_start = np.log((y / umi[None, :]).mean(axis=1))
    alpha0 = np.where(np.isfinite(alpha0) & (alpha0 > 0), alpha0, 0.0)
    beta = fit_intercepts(y, log_umi, alpha0, beta_start)
    mu = np.exp(beta[:, None] + log_umi[None, :])
    alpha_hat = fit_overdispersion(y, mu, alpha0)
    trend = dispersion_trend(mu.mean(axis=1), alpha_hat)
    beta_refit = fit_intercepts(y, log_umi, trend, beta)
    with np.errstate(divide="ignore"):
        theta = 1.0 / alpha_hat
        theta_mm = m * m / (s2 - m)
        theta = np.where(theta_mm / theta < THETA_MM_RATIO, np.inf, theta)
    return np.maximum(theta, THETA_MIN), beta_refit


def fit_step1(counts: sp.csc_matrix, umi: np.ndarray, bin_size: int = 500) -> Step1Fit:
    """Fit the step-1 model for every column of ``counts`` (cells x genes, genes in sample order).

    ``umi``: library size per cell (> 0). Genes are fitted in consecutive bins of ``bin_size``; each
    bin has its own dispersion trend, so the result depends on the gene order. Returns a
    :class:`Step1Fit` with arrays of length counts.shape[1].
    """
    n_cells, n_genes = counts.shape
    umi = np.asarray(umi, dtype=np.float64)
    parts = []
    for start in range(0, n_genes, bin_size):
        y = counts[:, start:start + bin_size].toarray().T.astype(np.float64)
        parts.append(_fit_bin(y, umi))
    theta, beta0 = (np.concatenate(p) for p in zip(*parts))
    log.info("step-1 fit: %d genes x %d cells in %d bins of <= %d genes; %d with theta = inf",
             n_genes, n_cells, len(parts), bin_size, int(np.isinf(theta).sum()))
    return Step1Fit(theta=theta, beta0=beta0)
