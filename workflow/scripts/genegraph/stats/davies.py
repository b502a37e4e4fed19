"""Tail probabilities of quadratic forms in normal variables: Davies' method and Liu's approximation.

Q = sum_j lambda_j chi^2(h_j, delta_j) + sigma * N(0, 1), with independent terms (h_j degrees of freedom,
noncentrality delta_j). Two methods, both returning the **upper tail** P(Q > q) like R's CompQuadForm:

* :func:`davies`: Davies' numerical inversion of the characteristic function, Algorithm AS 155
  (Davies, R.B. 1980, "The distribution of a linear combination of chi^2 random variables",
  Applied Statistics 29:323-333). Written from the paper's algorithm description: the Gil-Pelaez/Imhof
  formula integrated by the trapezoidal rule at u = (k + 1/2) * interval, k = nterm..0, with the integration
  interval chosen from Chernoff-type bounds on both tails (``ctff``/``errbd``), the truncation point from the
  truncation-error bound (``findu``/``truncation``), an optional convergence factor exp(-tau^2 u^2 / 2)
  (``cfe``) and, when too many terms would be needed, an auxiliary integration with a coarser step. The
  requested accuracy ``acc`` is an absolute error on the distribution function; ``lim`` caps the number of
  integration terms (and bound evaluations). The constants of the published algorithm are kept (pi as
  3.14159265358979, log(2)/8 as 0.0866, exp(x) taken as 0 below x = -50) and so is the order of every floating
  point operation, so results agree with CompQuadForm 1.4.3 (``davies``, lim 10000, acc 1e-4) to rounding.
  Fault codes (``ifault``) as in AS 155: 0 ok; 1 required accuracy not obtained within ``lim`` terms;
  2 round-off error possibly significant; 3 invalid parameters; 4 unable to locate the integration
  parameters (bound evaluations exceeded ``lim``). With faults 1, 3 and 4 the distribution function is -1,
  so the upper tail reported is 2 (as CompQuadForm reports it).
* :func:`liu`: the four-cumulant (noncentral) chi-square approximation of Liu, Tang & Zhang (2009,
  Computational Statistics & Data Analysis 53:853-856). With equal weights it is the exact chi^2 tail.
  The chi-square tail is evaluated as R's ``pchisq(x, df = l, ncp = delta, lower.tail = FALSE)`` does it:
  central (ncp 0) as a regularised incomplete gamma, ncp < 80 as R's Poisson mixture (terms until the
  Poisson weights sum to 1 - 1e-15, at most 110), ncp >= 80 with :func:`scipy.stats.ncx2.sf`.

:func:`sparkx_pvalue` is the rule SPARK-X applies per gene and kernel: Davies, and Liu wherever Davies gives
a value <= 0 (Davies' absolute accuracy of 1e-4 makes small tail probabilities noisy; below about 1e-7 they
come out <= 0).

Implementation: the Davies core is compiled with numba (scalar code calling the C library's exp, log, atan,
sin, pow, so it rounds like the C original); a batch is split into chunks of cases run on
``numba.get_num_threads()`` threads. One case costs microseconds to a few hundred microseconds. Only the entry
point is cached on disk (its helpers are compiled into it), so the first call after an installation compiles
for about 2-3 s of CPU and later processes load it in milliseconds (plus, in a process's first call to any numba
code, about 0.2 s for numba's compiler context). Liu's approximation is NumPy, with the C library's ``pow`` where
R uses it. Results are deterministic and do not depend on the number of threads.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np
import scipy.special

__all__ = ["DaviesResult", "davies", "qfc", "liu", "sparkx_pvalue"]

#: pi and log(2)/8 exactly as written in AS 155.
_PI = 3.14159265358979
_LOG28 = 0.0866

# Slots of the per-case state vector (the "global" variables of AS 155).
_SIGSQ = 0  # sigma^2, plus any convergence-factor tau^2 added on the way
_LMAX = 1
_LMIN = 2
_MEAN = 3
_C = 4  # the point at which the distribution function is evaluated
_INTL = 5  # integral accumulated so far
_ERSM = 6  # round-off error bound accumulated so far
_COUNT = 7  # number of bound evaluations (counter)
_LIM = 8
_FAIL = 9  # cfe could not find a useful convergence factor
_NDTSRT = 10  # weights not yet ordered by magnitude
_OVER = 11  # counter exceeded lim: abort (fault 4)
_NSTATE = 12

#: The compiled entry point is cached on disk; the helpers it calls are compiled into it (no cache files, no
#: Python wrappers of their own), which keeps the first compilation short.
_JIT = dict(cache=True, nogil=True, error_model="numpy")
_INNER = dict(nogil=True, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)

#: Cases per unit of work when a batch is split over threads.
_CASES_PER_CHUNK = 512


@numba.njit(**_INNER)
def _exp1(x):
    return 0.0 if x < -50.0 else math.exp(x)


@numba.njit(**_INNER)
def _log1_series(y, s):
    """The series of log(1 + x) in y = x / (2 + x) from its first term ``s`` (AS 155's ``log1``, |x| <= 0.1)."""
    term = 2.0 * (y * y * y)
    k = 3.0
    y = y * y
    s1 = s + term / k
    while s1 != s:
        k = k + 2.0
        term = term * y
        s = s1
        s1 = s + term / k
    return s


@numba.njit(**_INNER)
def _log1p(x):
    """log(1 + x), accurate for small |x|."""
    if abs(x) > 0.1:
        return math.log(1.0 + x)
    y = x / (2.0 + x)
    return _log1_series(y, 2.0 * y)


@numba.njit(**_INNER)
def _log1p_minus(x):
    """log(1 + x) - x, accurate for small |x|."""
    if abs(x) > 0.1:
        return math.log(1.0 + x) - x
    y = x / (2.0 + x)
    return _log1_series(y, -x * y)


@numba.njit(**_INNER)
def _counter(st):
    st[_COUNT] += 1.0
    if st[_COUNT] > st[_LIM]:
        st[_OVER] = 1.0


@numba.njit(**_INNER)
def _order(lb, th, st):
    """Indices of the weights by decreasing |lambda| (insertion sort, ties keep their order)."""
    r = lb.shape[0]
    for j in range(r):
        lj = abs(lb[j])
        k = j - 1
        while k >= 0:
            if lj > abs(lb[th[k]]):
                th[k + 1] = th[k]
                k -= 1
            else:
                break
        th[k + 1] = j
    st[_NDTSRT] = 0.0


@numba.njit(**_INNER)
def _errbd(u, lb, nc, n, st):
    """Chernoff bound exp(-u c + log M(u)) on a tail probability; also returns the point c it refers to."""
    _counter(st)
    xconst = u * st[_SIGSQ]
    sum1 = u * xconst
    u = 2.0 * u
    for j in range(lb.shape[0] - 1, -1, -1):
        nj = n[j]
        lj = lb[j]
        ncj = nc[j]
        x = u * lj
        y = 1.0 - x
        xconst = xconst + lj * (ncj / y + nj) / y
        t = x / y
        sum1 = sum1 + ncj * (t * t) + nj * ((x * x) / y + _log1p_minus(-x))
    return _exp1(-0.5 * sum1), xconst


@numba.njit(**_INNER)
def _ctff(accx, upn, lb, nc, n, st):
    """A point c beyond which the tail (upper if upn > 0, lower otherwise) has probability < accx."""
    mean = st[_MEAN]
    u2 = upn
    u1 = 0.0
    c1 = mean
    rb = 2.0 * (st[_LMAX] if u2 > 0.0 else st[_LMIN])
    u = u2 / (1.0 + u2 * rb)
    while True:
        e, c2 = _errbd(u, lb, nc, n, st)
        if st[_OVER] != 0.0:
            return 0.0, u2
        if not (e > accx):
            break
        u1 = u2
        c1 = c2
        u2 = 2.0 * u2
        u = u2 / (1.0 + u2 * rb)
    u = (c1 - mean) / (c2 - mean)
    while u < 0.9:
        u = (u1 + u2) / 2.0
        e, xconst = _errbd(u / (1.0 + u * rb), lb, nc, n, st)
        if st[_OVER] != 0.0:
            return 0.0, u2
        if e > accx:
            u1 = u
            c1 = xconst
        else:
            u2 = u
            c2 = xconst
        u = (c1 - mean) / (c2 - mean)
    return c2, u2


@numba.njit(**_INNER)
def _truncation(u, tausq, lb, nc, n, st):
    """Bound on the integration error from truncating the integral at u (convergence factor tausq)."""
    _counter(st)
    sum1 = 0.0
    prod2 = 0.0
    prod3 = 0.0
    s = 0.0
    sum2 = (st[_SIGSQ] + tausq) * (u * u)
    prod1 = 2.0 * sum2
    u = 2.0 * u
    for j in range(lb.shape[0]):
        lj = lb[j]
        ncj = nc[j]
        nj = n[j]
        t = u * lj
        x = t * t
        sum1 = sum1 + ncj * x / (1.0 + x)
        if x > 1.0:
            prod2 = prod2 + nj * math.log(x)
            prod3 = prod3 + nj * _log1p(x)
            s = s + nj
        else:
            prod1 = prod1 + nj * _log1p(x)
    sum1 = 0.5 * sum1
    prod2 = prod1 + prod2
    prod3 = prod1 + prod3
    x = _exp1(-sum1 - 0.25 * prod2) / _PI
    y = _exp1(-sum1 - 0.25 * prod3) / _PI
    err1 = 1.0 if s == 0.0 else x * 2.0 / s
    err2 = 2.5 * y if prod3 > 1.0 else 1.0
    if err2 < err1:
        err1 = err2
    x = 0.5 * sum2
    err2 = 1.0 if x <= y else y / x
    return err1 if err1 < err2 else err2


@numba.njit(**_INNER)
def _findu(utx, accx, lb, nc, n, st):
    """A truncation point u with truncation(u) <= accx, refined downwards by factors 2, 1.4, 1.2, 1.1."""
    ut = utx
    u = ut / 4.0
    if _truncation(u, 0.0, lb, nc, n, st) > accx:
        u = ut
        while _truncation(u, 0.0, lb, nc, n, st) > accx:
            if st[_OVER] != 0.0:
                return ut
            ut = ut * 4.0
            u = ut
    else:
        ut = u
        u = u / 4.0
        while _truncation(u, 0.0, lb, nc, n, st) <= accx:
            if st[_OVER] != 0.0:
                return ut
            ut = u
            u = u / 4.0
    if st[_OVER] != 0.0:
        return ut
    for divis in (2.0, 1.4, 1.2, 1.1):
        u = ut / divis
        if _truncation(u, 0.0, lb, nc, n, st) <= accx:
            ut = u
    return ut


@numba.njit(**_INNER)
def _integrate(nterm, interv, tausq, aux, lb, nc, n, st):
    """Trapezoidal rule on the Imhof integrand at u = (k + 1/2) interv, k = nterm..0; adds to intl, ersm.

    For the auxiliary integration (``aux`` 1.0; 0.0 for the main one) the integrand is multiplied by
    1 - exp(-tausq u^2 / 2). (A float flag: numba compiles one specialisation, not one per literal bool.)
    """
    c = st[_C]
    sigsq = st[_SIGSQ]
    inpi = interv / _PI
    intl = st[_INTL]
    ersm = st[_ERSM]
    for k in range(nterm, -1, -1):
        u = (k + 0.5) * interv
        sum1 = -2.0 * u * c
        sum2 = abs(sum1)
        sum3 = -0.5 * sigsq * (u * u)
        for j in range(lb.shape[0] - 1, -1, -1):
            nj = n[j]
            x = 2.0 * lb[j] * u
            y = x * x
            sum3 = sum3 - 0.25 * nj * _log1p(y)
            y = nc[j] * x / (1.0 + y)
            z = nj * math.atan(x) + y
            sum1 = sum1 + z
            sum2 = sum2 + abs(z)
            sum3 = sum3 - 0.5 * x * y
        x = inpi * _exp1(sum3) / u
        if aux != 0.0:
            x = x * (1.0 - _exp1(-0.5 * tausq * (u * u)))
        sum1 = math.sin(0.5 * sum1) * x
        sum2 = 0.5 * sum2 * x
        intl = intl + sum1
        ersm = ersm + sum2
    st[_INTL] = intl
    st[_ERSM] = ersm


@numba.njit(**_INNER)
def _cfe(x, lb, nc, n, th, st):
    """Coefficient of tausq in the error bound when the convergence factor exp(-tausq u^2 / 2) is used at x."""
    _counter(st)
    if st[_NDTSRT] != 0.0:
        _order(lb, th, st)
    axl = abs(x)
    sxl = 1.0 if x > 0.0 else -1.0
    sum1 = 0.0
    for j in range(lb.shape[0] - 1, -1, -1):
        t = th[j]
        if lb[t] * sxl > 0.0:
            lj = abs(lb[t])
            axl1 = axl - lj * (n[t] + nc[t])
            axl2 = lj / _LOG28
            if axl1 > axl2:
                axl = axl1
            else:
                if axl > axl2:
                    axl = axl2
                sum1 = (axl - axl1) / lj
                for k in range(j - 1, -1, -1):
                    sum1 = sum1 + (n[th[k]] + nc[th[k]])
                break
    if sum1 > 100.0:
        st[_FAIL] = 1.0
        return 1.0
    return math.pow(2.0, sum1 / 4.0) / (_PI * (axl * axl))


@numba.njit(**_INNER)
def _qf(lb, nc, n, sigma, c, lim, acc, trace, st, th):
    """AS 155: P(Q < c). Returns (qfval, ifault); fills ``trace`` (7 diagnostics, as in the paper).

    ``st`` (_NSTATE,) and ``th`` (r,) int64 are work arrays (reset here; allocated by the caller, so that no
    numpy allocation has to be compiled).
    """
    r = lb.shape[0]
    for j in range(_NSTATE):
        st[j] = 0.0
    for j in range(r):
        th[j] = 0
    for j in range(7):
        trace[j] = 0.0
    ifault = 0
    qfval = -1.0
    acc1 = acc
    st[_C] = c
    st[_LIM] = lim
    st[_NDTSRT] = 1.0
    xlim = float(lim)

    # mean, sd, max and min of the weights; check the parameters
    sigsq = sigma * sigma
    sd = sigsq
    lmax = 0.0
    lmin = 0.0
    mean = 0.0
    for j in range(r):
        nj = n[j]
        lj = lb[j]
        ncj = nc[j]
        if nj < 0.0 or ncj < 0.0:
            trace[6] = st[_COUNT]
            return -1.0, 3
        sd = sd + (lj * lj) * (2.0 * nj + 4.0 * ncj)
        mean = mean + lj * (nj + ncj)
        if lmax < lj:
            lmax = lj
        elif lmin > lj:
            lmin = lj
    st[_SIGSQ] = sigsq
    st[_LMAX] = lmax
    st[_LMIN] = lmin
    st[_MEAN] = mean
    if sd == 0.0:
        return (1.0 if c > 0.0 else 0.0), 0
    if lmin == 0.0 and lmax == 0.0 and sigma == 0.0:
        return -1.0, 3
    sd = math.sqrt(sd)
    almx = -lmin if lmax < -lmin else lmax

    # starting values for findu and ctff
    utx = 16.0 / sd
    up = 4.5 / sd
    un = -up
    # truncation point without a convergence factor
    utx = _findu(utx, 0.5 * acc1, lb, nc, n, st)
    if st[_OVER] != 0.0:
        trace[6] = st[_COUNT]
        return qfval, 4
    # does a convergence factor help?
    if c != 0.0 and almx > 0.07 * sd:
        tausq = 0.25 * acc1 / _cfe(c, lb, nc, n, th, st)
        if st[_OVER] != 0.0:
            trace[6] = st[_COUNT]
            return qfval, 4
        if st[_FAIL] != 0.0:
            st[_FAIL] = 0.0
        else:
            tr = _truncation(utx, tausq, lb, nc, n, st)
            if st[_OVER] != 0.0:
                trace[6] = st[_COUNT]
                return qfval, 4
            if tr < 0.2 * acc1:
                st[_SIGSQ] = st[_SIGSQ] + tausq
                utx = _findu(utx, 0.25 * acc1, lb, nc, n, st)
                if st[_OVER] != 0.0:
                    trace[6] = st[_COUNT]
                    return qfval, 4
                trace[5] = math.sqrt(tausq)
    trace[4] = utx
    acc1 = 0.5 * acc1

    # find the range of the distribution; quit if c is outside it
    while True:
        cu, up = _ctff(acc1, up, lb, nc, n, st)
        if st[_OVER] != 0.0:
            trace[6] = st[_COUNT]
            return qfval, 4
        d1 = cu - c
        if d1 < 0.0:
            trace[6] = st[_COUNT]
            return 1.0, 0
        cl, un = _ctff(acc1, un, lb, nc, n, st)
        if st[_OVER] != 0.0:
            trace[6] = st[_COUNT]
            return qfval, 4
        d2 = c - cl
        if d2 < 0.0:
            trace[6] = st[_COUNT]
            return 0.0, 0
        # integration interval
        intv = 2.0 * _PI / (d1 if d1 > d2 else d2)
        # number of terms for the main and the auxiliary integration
        xnt = utx / intv
        xntm = 3.0 / math.sqrt(acc1)
        if not (xnt > xntm * 1.5):
            break
        # parameters of the auxiliary integration
        if xntm > xlim:
            trace[6] = st[_COUNT]
            return qfval, 1
        ntm = int(math.floor(xntm + 0.5))
        intv1 = utx / ntm
        x = 2.0 * _PI / intv1
        if x <= abs(c):
            break
        # convergence factor
        f1 = _cfe(c - x, lb, nc, n, th, st)
        f2 = _cfe(c + x, lb, nc, n, th, st)
        if st[_OVER] != 0.0:
            trace[6] = st[_COUNT]
            return qfval, 4
        tausq = 0.33 * acc1 / (1.1 * (f1 + f2))
        if st[_FAIL] != 0.0:
            break
        acc1 = 0.67 * acc1
        # auxiliary integration
        _integrate(ntm, intv1, tausq, 1.0, lb, nc, n, st)
        xlim = xlim - xntm
        st[_SIGSQ] = st[_SIGSQ] + tausq
        trace[2] += 1.0
        trace[1] += ntm + 1
        # truncation point with the new convergence factor
        utx = _findu(utx, 0.25 * acc1, lb, nc, n, st)
        if st[_OVER] != 0.0:
            trace[6] = st[_COUNT]
            return qfval, 4
        acc1 = 0.75 * acc1

    # main integration
    trace[3] = intv
    if xnt > xlim:
        trace[6] = st[_COUNT]
        return qfval, 1
    nt = int(math.floor(xnt + 0.5))
    _integrate(nt, intv, 0.0, 0.0, lb, nc, n, st)
    trace[2] += 1.0
    trace[1] += nt + 1
    qfval = 0.5 - st[_INTL]
    trace[0] = st[_ERSM]

    # could round-off error be significant? (allows for radix 8 or 16 machines)
    up = st[_ERSM]
    x = up + acc / 10.0
    for rat in (1.0, 2.0, 4.0, 8.0):
        if rat * x == rat * up:
            ifault = 2
    trace[6] = st[_COUNT]
    return qfval, ifault


@numba.njit(**_JIT)
def _qf_batch(c, lb, nc, n, sigma, lim, acc, qfval, ifault, trace, st, th):
    """AS 155 for each case (row) in turn; ``st``, ``th``: one case's work arrays (see :func:`_qf`)."""
    for i in range(c.shape[0]):
        bad = math.isnan(c[i]) or math.isnan(sigma[i])
        for j in range(lb.shape[1]):
            if not (math.isfinite(lb[i, j]) and math.isfinite(nc[i, j]) and math.isfinite(n[i, j])):
                bad = True
        if bad:  # not a valid case (AS 155 would not terminate sensibly): NaN with fault 3
            qfval[i] = np.nan
            ifault[i] = 3
            for j in range(7):
                trace[i, j] = 0.0
        else:
            qfval[i], ifault[i] = _qf(lb[i], nc[i], n[i], sigma[i], c[i], lim, acc, trace[i], st, th)


def _qf_threads(c, lb, nc, n, sigma, lim, acc, qfval, ifault, trace) -> None:
    """:func:`_qf_batch` over chunks of cases on ``numba.get_num_threads()`` threads (the compiled code runs
    without the GIL). Every case is computed alone, so the results do not depend on the split."""
    m, r = lb.shape

    def run(lo: int, hi: int) -> None:
        st = np.zeros(_NSTATE)
        th = np.zeros(max(r, 1), dtype=np.int64)
        sl = slice(lo, hi)
        _qf_batch(c[sl], lb[sl], nc[sl], n[sl], sigma[sl], lim, acc, qfval[sl], ifault[sl], trace[sl], st, th)

    n_threads = min(numba.get_num_threads(), -(-m // _CASES_PER_CHUNK))
    if n_threads <= 1:
        run(0, m)
        return
    cuts = list(range(0, m, _CASES_PER_CHUNK)) + [m]
    with ThreadPoolExecutor(n_threads) as pool:
        for _ in pool.map(run, cuts[:-1], cuts[1:]):
            pass


class DaviesResult(NamedTuple):
    """Result of :func:`davies` / :func:`qfc`: ``p`` (the probability), ``ifault`` and AS 155's ``trace``."""

    p: np.ndarray | float
    ifault: np.ndarray | int
    trace: np.ndarray


def _broadcast(q, lambdas, df, delta, sigma):
    """Cases as (m,) q and (m, r) weights, dfs, noncentralities; plus whether the input was a single case."""
    lam = np.asarray(lambdas, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    single = lam.ndim == 1
    if single:
        if qa.ndim != 0:
            raise ValueError("with 1-D lambdas (one case), q must be a scalar")
        lam = lam[None, :]
        qa = qa[None]
    elif lam.ndim != 2 or qa.ndim != 1 or qa.shape[0] != lam.shape[0]:
        raise ValueError(
            f"q must be a scalar with 1-D lambdas, or 1-D (m,) with 2-D (m, r) lambdas; got q {qa.shape}, "
            f"lambdas {lam.shape}"
        )
    m, r = lam.shape
    h = np.ones((m, r)) if df is None else np.broadcast_to(np.asarray(df, dtype=np.float64), (m, r))
    d = np.zeros((m, r)) if delta is None else np.broadcast_to(np.asarray(delta, dtype=np.float64), (m, r))
    if df is not None and np.any(h != np.round(h)):
        raise ValueError("degrees of freedom must be integers")
    sg = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (m,))
    return (
        np.ascontiguousarray(qa),
        np.ascontiguousarray(lam),
        np.ascontiguousarray(h, dtype=np.float64),
        np.ascontiguousarray(d, dtype=np.float64),
        np.ascontiguousarray(sg),
        single,
    )


def qfc(c, lambdas, df=None, delta=None, sigma=0.0, lim: int = 10000, acc: float = 1e-4) -> DaviesResult:
    """Davies' AS 155 distribution function P(Q < c) for Q = sum lambda_j chi^2(df_j, delta_j) + sigma N(0,1).

    One case (scalar ``c``, 1-D ``lambdas``) or a batch (``c`` of shape (m,), ``lambdas`` of shape (m, r), one
    row per case; ``df``/``delta`` broadcast to (m, r), ``sigma`` to (m,)). Defaults: df 1, delta 0, sigma 0.
    Returns :class:`DaviesResult` with ``p`` = the distribution function (-1 on faults 1, 3, 4), ``ifault`` and
    ``trace`` (absolute error bound, total terms, integrations, main interval, truncation point, sd of the
    convergence factor, bound evaluations).
    """
    cc, lam, h, d, sg, single = _broadcast(c, lambdas, df, delta, sigma)
    m = cc.shape[0]
    qfval = np.empty(m)
    ifault = np.empty(m, dtype=np.int64)
    trace = np.empty((m, 7))
    if m:
        _qf_threads(cc, lam, d, h, sg, int(lim), float(acc), qfval, ifault, trace)
    if single:
        return DaviesResult(float(qfval[0]), int(ifault[0]), trace[0])
    return DaviesResult(qfval, ifault, trace)


def davies(q, lambdas, df=None, delta=None, sigma=0.0, lim: int = 10000, acc: float = 1e-4) -> DaviesResult:
    """Upper tail P(Q > q) by Davies' method, as R's ``CompQuadForm::davies`` reports it (``Qq`` = 1 - qfc).

    Same arguments as :func:`qfc`. ``p`` is 2 where AS 155 fails (faults 1, 3, 4), and may be slightly
    negative or 0 for tail probabilities below the requested accuracy (``acc`` is an absolute error).
    """
    res = qfc(q, lambdas, df=df, delta=delta, sigma=sigma, lim=lim, acc=acc)
    return DaviesResult(1.0 - res.p, res.ifault, res.trace)


# --------------------------------------------------------------------------------------------------
# Liu, Tang & Zhang (2009)


def _rsum(terms: np.ndarray) -> np.ndarray:
    """Row sums as R's ``sum`` forms them: left to right in long double, then rounded to double."""
    acc = np.zeros(terms.shape[0], dtype=np.longdouble)
    for j in range(terms.shape[1]):
        acc += terms[:, j].astype(np.longdouble)
    return acc.astype(np.float64)


def _c_pow(x: float, y: float) -> float:
    """C's ``pow(x, y)`` through :func:`math.pow`, with C's results where Python raises instead."""
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and y % 2 == 1 else math.inf
    except ValueError:  # negative base, non-integer exponent
        return math.nan


def _pow(x: np.ndarray, y: float) -> np.ndarray:
    """C's ``pow`` element by element, as R's ``^`` calls it (numpy's vectorised power may round differently)."""
    flat = x.ravel().tolist()
    return np.fromiter((_c_pow(v, y) for v in flat), np.float64, len(flat)).reshape(x.shape)


def _liu_terms(lb: np.ndarray, h: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(8, m, r): lambda^k * df and lambda^k * delta for k = 1..4, with powers as R evaluates ``lambda^k``."""
    powers = (lb, lb * lb, _pow(lb, 3.0), _pow(lb, 4.0))
    return np.stack([t for pw in powers for t in (pw * h, pw * d)])


def _liu_params(q: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """(m, 3): per case the chi-square argument x, df l and noncentrality delta of Liu's approximation.

    ``sums`` (8, m): the row sums of :func:`_liu_terms`. Same floating-point operations as the R code.
    """
    c1 = sums[0] + sums[1]
    c2 = sums[2] + 2.0 * sums[3]
    c3 = sums[4] + 3.0 * sums[5]
    c4 = sums[6] + 4.0 * sums[7]
    s1 = c3 / _pow(c2, 1.5)
    s2 = c4 / (c2 * c2)
    tstar = (q - c1) / np.sqrt(2.0 * c2)
    mixed = s1 * s1 > s2  # else: a central chi-square
    a = 1.0 / s1
    delta = np.zeros_like(s1)
    l = _pow(c2, 3.0) / (c3 * c3)
    sm = s1[mixed]
    a[mixed] = 1.0 / (sm - np.sqrt(sm * sm - s2[mixed]))
    am = a[mixed]
    delta[mixed] = sm * _pow(am, 3.0) - am * am
    l[mixed] = am * am - 2.0 * delta[mixed]
    return np.column_stack([tstar * (math.sqrt(2.0) * a) + (l + delta), l, delta])


def _pchisq_upper(x: np.ndarray, df: np.ndarray, ncp: np.ndarray) -> np.ndarray:
    """R's ``pchisq(x, df, ncp, lower.tail = FALSE)`` with ``ncp`` given explicitly (R's pnchisq path)."""
    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x) & np.isfinite(df) & np.isfinite(ncp) & (df >= 0) & (ncp >= 0)
    # x <= 0: the whole mass is above (R's special case x == 0, df == 0 aside: a point mass exp(-ncp/2) at 0)
    nonpos = ok & (x <= 0)
    out[nonpos] = np.where((x[nonpos] == 0) & (df[nonpos] == 0), -np.expm1(-0.5 * ncp[nonpos]), 1.0)
    out[ok & (x == np.inf)] = 0.0
    ok &= (x > 0) & (x < np.inf)
    central = ok & (ncp == 0)
    out[central] = scipy.special.chdtrc(df[central], x[central])
    for i in np.flatnonzero(ok & (ncp > 0) & (ncp < 80)):
        xi, f, lam = x[i], df[i], 0.5 * ncp[i]
        pr = np.longdouble(math.exp(-lam))
        total = np.longdouble(0.0)
        weight = np.longdouble(0.0)
        for k in range(110):
            weight += pr
            total += pr * np.longdouble(scipy.special.chdtrc(f + 2 * k, xi))
            if weight >= 1 - 1e-15:
                break
            pr *= np.longdouble(lam) / (k + 1)
        out[i] = float(total / weight)
    big = ok & (ncp >= 80)
    if big.any():
        from scipy.stats import ncx2  # imported here: it takes about a second and is rarely needed

        out[big] = np.maximum(ncx2.sf(x[big], df[big], ncp[big]), 0.0)
    return out


def liu(q, lambdas, df=None, delta=None):
    """Upper tail P(Q > q) by Liu, Tang & Zhang's (2009) approximation, as R's ``CompQuadForm::liu``.

    One case (scalar ``q``, 1-D ``lambdas``; returns a float) or a batch (``q`` (m,), ``lambdas`` (m, r);
    returns an (m,) array). ``df`` (default 1) and ``delta`` (noncentralities, default 0) broadcast like the
    weights.
    """
    qa, lam, h, d, _, single = _broadcast(q, lambdas, df, delta, 0.0)
    params = np.empty((lam.shape[0], 3))
    if lam.shape[0]:
        sums = np.stack([_rsum(t) for t in _liu_terms(lam, h, d)])
        with np.errstate(all="ignore"):
            params = _liu_params(qa, sums)
    p = _pchisq_upper(params[:, 0], params[:, 1], params[:, 2])
    return float(p[0]) if single else p


def sparkx_pvalue(q, lambdas, lim: int = 10000, acc: float = 1e-4):
    """SPARK-X's p-value for one kernel: Davies' upper tail, replaced by Liu's where Davies gives <= 0.

    Shapes as in :func:`davies`. Returns ``(p, ifault)``; p is 2 where Davies fails (faults 1, 3, 4),
    which SPARK-X does not guard against either.
    """
    res = davies(q, lambdas, lim=lim, acc=acc)
    p = np.atleast_1d(np.asarray(res.p, dtype=np.float64)).copy()
    bad = p <= 0
    if bad.any():
        qa = np.atleast_1d(np.asarray(q, dtype=np.float64))
        lam = np.asarray(lambdas, dtype=np.float64)
        lam = lam[None, :] if lam.ndim == 1 else lam
        p[bad] = liu(qa[bad], lam[bad])
    if np.ndim(q) == 0 and np.ndim(lambdas) == 1:
        return float(p[0]), int(res.ifault)
    return p, res.ifault
