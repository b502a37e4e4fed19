"""R-compatible statistics that SCTransform's results depend on, written from their textbook definitions.

These reproduce the numbers of the R functions that Seurat/sctransform call, where the exact arithmetic
matters for matching Seurat (bandwidths, root finding, kernel smoothing, robust scores):

- :func:`bw_nrd` -- Scott's rule of thumb as in R's ``bw.nrd``: 1.06 * min(sd, IQR/1.34) * m^(-1/5).
- :func:`kde_on_data` -- a Gaussian KDE evaluated on R's 512-point ``density()`` grid and read off at the
  data points by linear interpolation (R's ``density`` bins the data before an FFT; the exact kernel sum
  used here differs from it by the binning error only, which is far below what matters for sampling).
- :func:`bw_sj` -- the Sheather & Jones (1991) "solve-the-equation" bandwidth with binned pair counts
  (R's ``bw.SJ(method = "ste", nb = 1000)``), root found by :func:`zeroin`.
- :func:`zeroin` -- Brent's (1973) root finder with the iterates of the classic ``zeroin`` formulation,
  because ``bw.SJ``'s loose tolerance makes its answer depend on them.
- :func:`ksmooth_normal` -- Nadaraya-Watson smoothing with R ``ksmooth``'s "normal" kernel (quartiles at
  +-0.25 * bandwidth, i.e. sigma = 0.3706506 * bandwidth, points beyond 4 sigma ignored).
- :func:`robust_z` -- (y - median) / (1.4826 * MAD + 2.2e-16).
- :func:`running_weighted_median` -- a centred running weighted median (lower weighted median).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: R's .Machine$double.eps.
DOUBLE_EPS = float(np.finfo(np.float64).eps)
#: Gaussian kernel sd per unit of ksmooth bandwidth: the kernel's quartiles sit at +-0.25 * bandwidth.
KSMOOTH_NORMAL_SD = 0.3706506
#: R density()'s default grid size and its extension of the range by ``cut`` bandwidths.
DENSITY_GRID = 512
DENSITY_CUT = 3.0


def quantile7(x: np.ndarray, prob: float) -> float:
    """R's default (type 7) sample quantile, with R's interpolation arithmetic."""
    xs = np.sort(np.asarray(x, dtype=np.float64))
    index = (len(xs) - 1) * prob
    lo = math.floor(index)
    hi = math.ceil(index)
    q = float(xs[lo])
    if index > lo and xs[hi] != q:
        h = index - lo
        q = (1.0 - h) * q + h * float(xs[hi])
    return q


def iqr(x: np.ndarray) -> float:
    """Inter-quartile range with R's default (type 7) quantiles."""
    return quantile7(x, 0.75) - quantile7(x, 0.25)


def bw_nrd(x: np.ndarray) -> float:
    """R ``bw.nrd``: 1.06 * min(sd, IQR / 1.34) * len(x)^(-1/5)."""
    return 1.06 * min(float(np.std(x, ddof=1)), iqr(x) / 1.34) * len(x) ** (-0.2)


def kde_on_data(x: np.ndarray, bw: float) -> np.ndarray:
    """Gaussian KDE of ``x`` (bandwidth ``bw``) on R's 512-point density grid, interpolated back at ``x``.

    The grid spans [min - 3 bw, max + 3 bw] as in R's ``density(x, bw)``. Returns densities, shape of x.
    """
    grid = np.linspace(x.min() - DENSITY_CUT * bw, x.max() + DENSITY_CUT * bw, DENSITY_GRID)
    dens = np.zeros(DENSITY_GRID)
    for start in range(0, len(x), 4096):  # bounded memory: 512 x 4096 doubles per block
        u = (grid[:, None] - x[None, start:start + 4096]) / bw
        dens += np.exp(-0.5 * u * u).sum(axis=1)
    dens /= len(x) * bw * math.sqrt(2.0 * math.pi)
    return np.interp(x, grid, dens)


def zeroin(f: Callable[[float], float], a: float, b: float, fa: float, fb: float, tol: float,
           maxiter: int = 1000) -> float:
    """Brent's root finder on [a, b] with f(a), f(b) of opposite signs; returns the last iterate b.

    Each step keeps c with f(c) of the sign opposite to f(b), tries inverse quadratic (or secant)
    interpolation and falls back to bisection; it stops when |c - b| / 2 <= 2 eps |b| + tol / 2.
    """
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    c, fc = a, fa
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):  # make b the best approximation so far
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * DOUBLE_EPS * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:  # two distinct points: secant
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:  # inverse quadratic interpolation
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < 0.75 * cb * q - abs(tol_act * q) / 2.0 and p < abs(prev_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0.0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0.0 and fc > 0.0) or (fb < 0.0 and fc < 0.0):
            c, fc = a, fa
    return b


def _binned_pair_distances(x: np.ndarray, nb: int) -> tuple[float, np.ndarray]:
    """Bin width d and, per bin distance k = 0..nb-1, the number of pairs i < j that far apart.

    Points are binned as trunc(x / d) with d = 1.01 * range / nb (as R's ``bw.SJ`` does: truncation
    towards zero, not relative to the minimum). Pair counts come from the autocorrelation of the bin
    histogram.
    """
    d = (x.max() - x.min()) * 1.01 / nb
    idx = np.trunc(x / d).astype(np.int64)
    hist = np.bincount(idx - idx.min()).astype(np.int64)
    auto = np.correlate(hist, hist, mode="full")[len(hist) - 1:]  # auto[k] = sum_i h[i] h[i+k]
    cnt = np.zeros(nb, dtype=np.float64)
    k = min(nb, len(auto))
    cnt[:k] = auto[:k]
    cnt[0] = float(np.sum(hist * (hist - 1)) // 2)
    return float(d), cnt


def _phi_binned(n: int, d: float, cnt: np.ndarray, h: float, order: int) -> float:
    """Binned estimate of the density functional psi_order (order 4 or 6) at bandwidth h.

    psi_r = sum over ordered pairs (incl. i = j) of the Gaussian's r-th derivative at (x_i - x_j) / h,
    divided by n (n - 1) h^(r+1).
    """
    delta = (np.arange(len(cnt)) * d / h) ** 2
    keep = delta < 1000.0
    delta, c = delta[keep], cnt[keep]
    if order == 4:
        term = np.exp(-delta / 2.0) * (delta * delta - 6.0 * delta + 3.0)
        diag = 3.0
    else:
        term = np.exp(-delta / 2.0) * (delta * delta * delta - 15.0 * delta * delta + 45.0 * delta - 15.0)
        diag = -15.0
    total = 2.0 * np.cumsum(term * c)[-1] + n * diag
    return total / (n * (n - 1) * h ** (order + 1) * math.sqrt(2.0 * math.pi))


def bw_sj(x: np.ndarray, nb: int = 1000) -> float:
    """Sheather-Jones solve-the-equation bandwidth of ``x`` (R ``bw.SJ(x, nb, method = "ste")``).

    The search interval [0.1 hmax, hmax] (hmax = 1.144 * scale * n^(-1/5)) is widened by factors of 1.2
    until it brackets the root; the root is found by :func:`zeroin` with tolerance 0.1 * lower end.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        raise ValueError("bw_sj needs at least 2 data points")
    scale = min(float(np.std(x, ddof=1)), iqr(x) / 1.349)
    if not scale > 0:
        raise ValueError("bw_sj: the data have no spread (sd or IQR is 0)")
    d, cnt = _binned_pair_distances(x, nb)
    a = 1.24 * scale * n ** (-1.0 / 7.0)
    b = 1.23 * scale * n ** (-1.0 / 9.0)
    c1 = 1.0 / (2.0 * math.sqrt(math.pi) * n)
    td = -_phi_binned(n, d, cnt, b, 6)
    if not math.isfinite(td) or td <= 0:
        raise ValueError("sample is too sparse to find TD")
    alph2 = 1.357 * (_phi_binned(n, d, cnt, a, 4) / td) ** (1.0 / 7.0)
    if not math.isfinite(alph2):
        raise ValueError("sample is too sparse to find alph2")

    def f_sd(h: float) -> float:
        return (c1 / _phi_binned(n, d, cnt, alph2 * h ** (5.0 / 7.0), 4)) ** 0.2 - h

    hmax = 1.144 * scale * n ** (-0.2)
    lower, upper = 0.1 * hmax, hmax
    for itry in range(1, 101):
        f_lo, f_hi = f_sd(lower), f_sd(upper)
        if f_lo * f_hi <= 0:
            break
        if itry > 99:
            raise ValueError("bw_sj: no solution in the specified range of bandwidths")
        if itry % 2:
            upper *= 1.2
        else:
            lower /= 1.2
    return zeroin(f_sd, lower, upper, f_lo, f_hi, tol=0.1 * lower)


def ksmooth_normal(x: np.ndarray, y: np.ndarray, x_points: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel regression of y on x, evaluated at ``x_points`` (R ``ksmooth(kernel = "normal")``).

    Weights exp(-u^2/2) with u = |x - x0| / (0.3706506 * bandwidth); points with |x - x0| > 4 sd are
    ignored. Returns an array shaped like ``x_points`` (NaN where no point is in reach).
    """
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    sd = KSMOOTH_NORMAL_SD * bandwidth
    cutoff = 4.0 * sd
    xp, back = np.unique(np.asarray(x_points, dtype=np.float64), return_inverse=True)
    lo = np.searchsorted(xs, xp - cutoff, side="left")  # first x >= x0 - cutoff
    hi = np.searchsorted(xs, xp + cutoff, side="right")  # past the last x <= x0 + cutoff
    num = np.zeros(len(xp))
    den = np.zeros(len(xp))
    block = 512  # sorted points: each block needs one contiguous stretch of x
    for s in range(0, len(xp), block):
        e = min(s + block, len(xp))
        i0, i1 = int(lo[s:e].min()), int(hi[s:e].max())
        if i1 <= i0:
            continue
        t = np.abs(xs[None, i0:i1] - xp[s:e, None]) / sd
        pos = np.arange(i0, i1)[None, :]
        inside = (pos >= lo[s:e, None]) & (pos < hi[s:e, None])
        w = np.where(inside, np.exp(-0.5 * t * t), 0.0)
        num[s:e] = w @ ys[i0:i1]
        den[s:e] = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fit = np.where(den > 0, num / den, np.nan)
    return fit[back].reshape(np.shape(x_points))


def robust_z(y: np.ndarray) -> np.ndarray:
    """(y - median) / (1.4826 * median|y - median| + eps), as R's ``(y - median(y)) / (mad(y) + eps)``."""
    med = np.median(y)
    mad = 1.4826 * np.median(np.abs(y - med))
    return (y - med) / (mad + DOUBLE_EPS)


def running_weighted_median(values: np.ndarray, half_width: int) -> np.ndarray:
    """Weighted median of each window of 2h+1 consecutive values, weights dnorm(seq(-3, 3, 2h+1)).

    The weighted median is the smallest sorted value whose cumulative weight reaches half of the total
    (an exact tie at one half takes the mean of the two candidates). Positions within h of either end
    copy the nearest full window. Requires len(values) >= 2h+1; returns an array of len(values).
    """
    n = len(values)
    width = 2 * half_width + 1
    if n < width:
        raise ValueError(f"running_weighted_median: {n} values cannot fill a window of {width}")
    grid = np.linspace(-3.0, 3.0, width)
    weights = np.exp(-0.5 * grid * grid) / math.sqrt(2.0 * math.pi)
    windows = np.lib.stride_tricks.sliding_window_view(values, width)  # (n - 2h, width)
    order = np.argsort(windows, axis=1, kind="stable")
    sorted_vals = np.take_along_axis(windows, order, axis=1)
    cum = np.cumsum(weights[order], axis=1)
    half = cum[:, -1:] / 2.0
    k = np.argmax(cum >= half, axis=1)
    med = sorted_vals[np.arange(len(k)), k]
    tie = cum[np.arange(len(k)), k] == half[:, 0]
    if tie.any():
        nxt = sorted_vals[np.arange(len(k)), np.minimum(k + 1, width - 1)]
        med = np.where(tie, (med + nxt) / 2.0, med)
    return np.concatenate([np.full(half_width, med[0]), med, np.full(half_width, med[-1])])
