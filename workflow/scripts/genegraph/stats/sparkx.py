"""SPARK-X: spatially variable genes (Zhu, Sun & Zhou, Genome Biology 2021), a native Python port.

Follows R SPARK 1.1.1 ``sparkx(count_in, locus_in, numCores = 1, option = "mixture")`` as specified in
``shared/specs/cscore_sparkx.md`` §2:

* **filter**: spots whose counts are all zero are dropped (with their coordinates), then genes whose counts
  are all zero over the remaining spots. Dropped genes are absent from the result. Counts are used raw.
* **11 kernels**, each a projection kernel K = Zc (Zc^T Zc)^{-1} Zc^T of an n x d coordinate matrix Z (columns
  centred, Zc); K itself (n x n) is never formed. ``projection``: the raw coordinates. Per axis, with c the
  centred coordinate and l_k the type-7 quantiles at 0.2, 0.4, 0.6, 0.8, 1.0 of |c|: ``gaus_k``:
  exp(-c^2 / (2 l_k^2)); ``cos_k``: cos(2 pi c / l_k).
* **statistic** per gene y (counts over spots) and kernel: T = n e^T L e / sum(y^2) with e = Zc^T y and
  L = (Zc^T Zc)^{-1}; null weights lambda_y * lambda_K with lambda_y = 1 - n ybar^2 / sum(y^2) and lambda_K
  the eigenvalues of Zc^T Zc L (1 up to rounding), sorted decreasingly.
* **p-value** per gene and kernel: Davies' method (AS 155, accuracy 1e-4, limit 10,000), replaced by Liu's
  approximation where Davies gives <= 0 (:mod:`genegraph.stats.davies`).
* **ACAT** (Cauchy combination, weights 1/11) exactly as SPARK-X's R code evaluates it, including the lower-tail
  expression for 1 - pcauchy(T) and the 1/(T pi) branch above T = 1e15; then **Benjamini-Yekutieli** over the
  tested genes.

Numerical fidelity: every step that can move a p-value replays R's floating-point operations in R's order:
column means accumulated in long double (``colMeans``), sequential dot products (reference BLAS), the 2 x 2
``solve`` as LAPACK's LU, the eigenvalues through R's symmetric path (``dsyevr``/``dsterf``), sums in
long double (``sum``), and transcendental functions from the C library. On the breast-cancer layer-2
reference (251 spots x 14,789 genes) the null weights of all 2,200 reference cases are bit-identical to
R's; statistics agree to about 1e-12 relative and p-values to Davies' own rounding (about 1e-10 relative).

Scale: memory is linear in spots (the n x 11d transformed coordinates plus the sparse counts and one float64
copy of their values; never an n x n or dense n x genes array). Time is two sparse products over the non-zero
counts (scipy: Zc^T y of all kernels at once, then sum(y^2)), vectorised per-gene algebra and one Davies
evaluation per gene and kernel (compiled with numba, on several threads). Only two functions are compiled
(Davies' method and the kernel transform), both cached on disk, so a process's first call costs a few seconds
of compilation once per installation, and afterwards about 0.2 s (numba setting up its compiler context to load
the cached code, once per process; measured on 2 busy cores). Results are deterministic: every sum runs in R's
sequential order whatever the number of threads.

Input checks raise :class:`genegraph.errors.DataError`. Where R's code itself stops (a gene with the same
count in every spot gives NaN p-values; a Davies failure gives p = 2; a gene with p = 0 in one kernel and
p = 1 in another), this port raises a DataError naming the genes instead of returning partial results.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import scipy.sparse as sp

from genegraph.data.counts import INTEGER_TOLERANCE
from genegraph.errors import DataError
from genegraph.io import atomic_path
from genegraph.stats import davies as _davies

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = [
    "KERNELS", "sparkx", "sparkx_columns", "sparkx_adata", "read_h5ad_counts", "rank_spatial_genes", "ranked_table",
    "write_ranked", "acat", "p_adjust_by",
]

#: Kernel names in SPARK-X's order (the order of the ``stat_*`` and ``pval_*`` columns).
KERNELS: tuple[str, ...] = ("projection",) + tuple(f"gaus{k}" for k in range(1, 6)) + tuple(
    f"cos{k}" for k in range(1, 6)
)

#: R's pi (M_PI), used in the cosine kernels and in ACAT. (Davies' algorithm has its own truncated pi.)
_M_PI = math.pi

_JIT = dict(cache=True, nogil=True, error_model="numpy")

#: Count values checked per step (bounds the checks' temporary arrays).
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------
# input checks


def _faults(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of the non-finite, the negative and the non-integer values among some counts (checked in float64)."""
    if x.dtype.kind != "f":
        negative = x < 0
        return np.zeros_like(negative), negative, np.zeros_like(negative)
    x = x.astype(np.float64)
    finite = np.isfinite(x)
    with np.errstate(invalid="ignore"):  # inf - inf; masked out by ``finite``
        non_integer = np.abs(x - np.round(x)) > INTEGER_TOLERANCE
    return ~finite, finite & (x < 0.0), finite & non_integer


def _check_values(v: np.ndarray) -> None:
    """DataError unless the stored values ``v`` are finite, non-negative and integer (within INTEGER_TOLERANCE).

    Checked _CHUNK values at a time, so the temporaries stay small.
    """
    n_bad = [0, 0, 0]
    example = [0.0, 0.0, 0.0]  # the first value of each kind
    for lo in range(0, v.size, _CHUNK):
        chunk = v[lo : lo + _CHUNK]
        for k, bad in enumerate(_faults(chunk)):
            count = int(np.count_nonzero(bad))
            if count and not n_bad[k]:
                example[k] = float(chunk[np.argmax(bad)])
            n_bad[k] += count
    if n_bad[0]:
        raise DataError(f"counts contain {n_bad[0]} NaN or infinite values")
    if n_bad[1]:
        raise DataError(f"counts contain {n_bad[1]} negative values (e.g. {example[1]:g})")
    if n_bad[2]:
        raise DataError(
            f"counts are not integers: {n_bad[2]} values are non-integer (e.g. {example[2]:g}); SPARK-X "
            "needs raw counts, not normalised or log-transformed data"
        )


def _as_counts(counts: Any) -> sp.csr_matrix | sp.csc_matrix:
    """Spots x genes counts as CSR or CSC (whichever the input is closer to), with the values checked."""
    if sp.issparse(counts):
        m = counts
        if m.format not in ("csr", "csc"):
            m = m.tocsr()
        elif not isinstance(m, (sp.csr_matrix, sp.csc_matrix)):  # sparse arrays -> matrices (same buffers)
            m = sp.csr_matrix(m) if m.format == "csr" else sp.csc_matrix(m)
    else:
        try:
            a = np.asarray(counts)
        except Exception as err:  # pragma: no cover - exotic inputs
            raise DataError(f"counts could not be read as a matrix: {err}") from err
        if a.ndim != 2:
            raise DataError(f"counts must be a 2-D spots x genes matrix, got shape {a.shape}")
        if a.dtype == bool:
            a = a.astype(np.int8)
        if a.dtype.kind not in "iuf":
            raise DataError(f"counts have non-numeric dtype {a.dtype}")
        m = sp.csr_matrix(a)
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise DataError(f"counts are empty (shape {m.shape[0]} x {m.shape[1]})")
    v = m.data
    if v.dtype == bool:
        v = v.view(np.int8)
        m = type(m)((v, m.indices, m.indptr), shape=m.shape)
    if v.dtype.kind not in "iuf":
        raise DataError(f"counts have non-numeric dtype {v.dtype}")
    if m.format == "csc" and not m.has_sorted_indices:
        m = m.sorted_indices()  # each gene's spots in order: the sums then run in R's order
    _check_values(v)
    return m


def _as_coords(coords: Any, n_spots: int) -> np.ndarray:
    try:
        xy = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"coordinates must be numeric: {err}") from err
    if xy.ndim != 2 or xy.shape[1] < 1:
        raise DataError(f"coordinates must be a spots x d matrix (d = 2 for x, y), got shape {xy.shape}")
    if xy.shape[0] != n_spots:
        raise DataError(
            f"coordinates have {xy.shape[0]} rows but counts have {n_spots} spots (rows); coords must be "
            "spots x d in the same spot order"
        )
    bad = ~np.isfinite(xy)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"coordinates contain {int(bad.sum())} NaN or infinite values (spots {rows[:5].tolist()}"
            f"{'...' if rows.size > 5 else ''})"
        )
    return np.ascontiguousarray(xy)


# --------------------------------------------------------------------------------------------------
# kernels: coordinate transforms and the d x d quantities, replaying R's arithmetic


def _r_centre(z: np.ndarray) -> np.ndarray:
    """z - colMeans(z), the mean accumulated left to right in long double as R's ``colMeans`` does."""
    total = np.cumsum(z, dtype=np.longdouble)[-1]
    mean = np.float64(total / np.longdouble(z.shape[0]))
    return z - mean


def _r_quantile7(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's ``quantile(x, probs, type = 7)`` with R's interpolation expression (1 - h) * lo + h * hi."""
    xs = np.sort(x)
    n = xs.shape[0]
    out = np.empty(probs.shape[0])
    for k, p in enumerate(probs):
        index = 1.0 + (n - 1) * float(p)
        lo = math.floor(index)
        hi = math.ceil(index)
        q = float(xs[lo - 1])
        if index > lo and xs[hi - 1] != q:
            h = index - lo
            q = (1.0 - h) * q + h * float(xs[hi - 1])
        out[k] = q
    return out


#: R's ``seq(0.2, 1, by = 0.2)``: from + (0:4) * by, capped at 1.
_PROBS = np.minimum(0.2 + np.arange(5) * 0.2, 1.0)


@numba.njit(**_JIT)
def _gauss_cos(c, lg, lc, out_g, out_c):
    """exp(-c^2 / (2 l^2)) and cos(2 pi c / l), element by element with the C library's exp and cos."""
    twol2 = 2.0 * (lg * lg)
    twopi = 2.0 * math.pi
    for i in range(c.shape[0]):
        x = c[i]
        out_g[i] = math.exp(-(x * x) / twol2)
        out_c[i] = math.cos(twopi * x / lc)


def _crossprod_seq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^T b (p x q) with every entry summed left to right from 0 (reference BLAS dgemm/dsyrk order)."""
    out = np.empty((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            out[i, j] = 0.0 + np.cumsum(a[:, i] * b[:, j])[-1]  # cumsum is sequential; 0.0 + as the BLAS loop
    return out


def _matmul_small(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (n x d) times b (d x d) in reference dgemm order: c_ij = (0 + b_0j a_i0) + b_1j a_i1 + ..."""
    out = np.zeros((a.shape[0], b.shape[1]))
    for j in range(b.shape[1]):
        for l in range(a.shape[1]):
            out[:, j] = out[:, j] + b[l, j] * a[:, l]
    return out


def _r_solve(g: np.ndarray) -> np.ndarray:
    """R's ``solve(g)``: LAPACK dgesv (LU with partial pivoting, reciprocal pivot scaling) on the identity.

    Raises DataError where R's solve stops: an exactly singular matrix or reciprocal condition < eps.
    """
    d = g.shape[0]
    a = g.astype(np.float64).copy()
    perm = np.arange(d)
    for k in range(d):
        piv = k + int(np.argmax(np.abs(a[k:, k])))
        if a[piv, k] == 0.0:
            raise np.linalg.LinAlgError("exactly singular")
        if piv != k:
            a[[k, piv]] = a[[piv, k]]
            perm[[k, piv]] = perm[[piv, k]]
        if abs(a[k, k]) >= np.finfo(np.float64).tiny:
            a[k + 1 :, k] = a[k + 1 :, k] * (1.0 / a[k, k])
        else:  # pragma: no cover - denormal pivots
            a[k + 1 :, k] = a[k + 1 :, k] / a[k, k]
        for j in range(k + 1, d):
            t = -a[k, j]
            for i in range(k + 1, d):
                a[i, j] = a[i, j] + t * a[i, k]
    rcond = 1.0 / np.linalg.cond(g, 1)
    if not rcond >= np.finfo(np.float64).eps:
        raise np.linalg.LinAlgError(f"computationally singular: reciprocal condition number {rcond:.3g}")
    b = np.eye(d)[perm]
    for j in range(d):
        for k in range(d):  # L y = b (unit lower)
            if b[k, j] != 0.0:
                for i in range(k + 1, d):
                    b[i, j] = b[i, j] - b[k, j] * a[i, k]
        for k in range(d - 1, -1, -1):  # U x = y
            if b[k, j] != 0.0:
                b[k, j] = b[k, j] / a[k, k]
                for i in range(k):
                    b[i, j] = b[i, j] - b[k, j] * a[i, k]
    return b


def _dlae2(a: float, b: float, c: float) -> tuple[float, float]:
    """LAPACK dlae2: eigenvalues of the symmetric 2 x 2 matrix [[a, b], [b, c]] (larger |.| first)."""
    sm = a + c
    adf = abs(a - c)
    ab = abs(b + b)
    acmx, acmn = (a, c) if abs(a) > abs(c) else (c, a)
    if adf > ab:
        rt = adf * math.sqrt(1.0 + (ab / adf) ** 2)
    elif adf < ab:
        rt = ab * math.sqrt(1.0 + (adf / ab) ** 2)
    else:
        rt = ab * math.sqrt(2.0)
    if sm < 0.0:
        rt1 = 0.5 * (sm - rt)
    elif sm > 0.0:
        rt1 = 0.5 * (sm + rt)
    else:
        return 0.5 * rt, -0.5 * rt
    return rt1, (acmx / rt1) * acmn - (b / rt1) * b


def _r_is_symmetric(m: np.ndarray) -> bool:
    """R's ``isSymmetric`` for a small real matrix (all.equal with tolerance 100 eps)."""
    tol = 100 * np.finfo(np.float64).eps
    xy = np.mean(np.abs(m - m.T))
    xn = np.mean(np.abs(m))
    if np.isfinite(xn) and xn > tol:
        xy = xy / xn
    return bool(xy <= tol)


def _r_eigenvalues(m: np.ndarray) -> np.ndarray:
    """R's ``eigen(m, only.values = TRUE)$values`` (decreasing) for the small d x d matrix Zc^T Zc L.

    The matrix is symmetric up to rounding, so R takes LAPACK's symmetric path on the lower triangle
    (dsyevr, which for all eigenvalues without vectors calls dsterf); for d <= 2 that path is replayed
    exactly, otherwise LAPACK is called through numpy.
    """
    d = m.shape[0]
    if not _r_is_symmetric(m):
        return np.sort(np.linalg.eigvals(m).real)[::-1]
    if d == 1:
        return m[0].copy()
    if d == 2:
        d1, d2, e = float(m[0, 0]), float(m[1, 1]), float(m[1, 0])
        eps = np.finfo(np.float64).eps / 2  # LAPACK dlamch('E')
        if abs(e) <= (math.sqrt(abs(d1)) * math.sqrt(abs(d2))) * eps:
            vals = [d1, d2]
        else:
            e2 = e * e
            if abs(e2) <= (eps * eps) * abs(d1 * d2):
                vals = [d1, d2]
            else:
                vals = list(_dlae2(d1, math.sqrt(e2), d2))
        return np.array(sorted(vals, reverse=True))
    return np.linalg.eigvalsh(np.tril(m), UPLO="L")[::-1].copy()


def _kernel_coordinates(xy: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The 11 coordinate matrices (n x d each, uncentred) and the bandwidths (5 x d) of SPARK-X's kernels."""
    n, d = xy.shape
    c = np.column_stack([_r_centre(xy[:, a]) for a in range(d)])
    bw = np.column_stack([_r_quantile7(np.abs(c[:, a]), _PROBS) for a in range(d)])
    if np.any(bw <= 0):
        k, a = np.argwhere(bw <= 0)[0]
        raise DataError(
            f"SPARK-X kernel bandwidth is zero: the {int(_PROBS[k] * 100)}% quantile of |centred coordinate| "
            f"on axis {a} is 0 (more than {int(_PROBS[k] * 100)}% of spots share the mean coordinate)"
        )
    zs: list[np.ndarray] = [xy]
    gauss = [np.empty((n, d)) for _ in range(5)]
    cosine = [np.empty((n, d)) for _ in range(5)]
    for k in range(5):
        for a in range(d):
            ca = np.ascontiguousarray(c[:, a])
            g = np.empty(n)
            co = np.empty(n)
            _gauss_cos(ca, bw[k, a], bw[k, a], g, co)
            gauss[k][:, a] = g
            cosine[k][:, a] = co
    zs.extend(gauss)
    zs.extend(cosine)
    return zs, bw


def _kernel_terms(z: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred Zc, L = (Zc^T Zc)^{-1} and lambda_K for one kernel, as R computes them."""
    zc = np.column_stack([_r_centre(z[:, a]) for a in range(z.shape[1])])
    gram = _crossprod_seq(zc, zc)
    try:
        linv = _r_solve(gram)
    except np.linalg.LinAlgError as err:
        raise DataError(
            f"SPARK-X kernel '{name}': the centred (transformed) coordinates are linearly dependent ({err}); "
            "the spots must not all lie on a line"
        ) from None
    lam_k = _r_eigenvalues(_crossprod_seq(zc, _matmul_small(zc, linv)))
    return np.ascontiguousarray(zc), linv, lam_k


# --------------------------------------------------------------------------------------------------
# the pass over the counts: e = Zc^T y for all kernels, sum(y), sum(y^2) per gene


def _spot_totals(x: sp.csr_matrix | sp.csc_matrix) -> np.ndarray:
    """(spots,) total count of each spot (``x``: spots x genes, float64 values)."""
    return x @ np.ones(x.shape[1])


def _gene_sums(x: sp.csr_matrix | sp.csc_matrix, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per gene: e = Z^T y (genes x m, every column of ``z``: spots x m), sum(y) and sum(y^2) (genes,).

    ``x``: spots x genes, float64 values (squared in place here). scipy's sparse products add the spots' terms
    to each sum in spot order, starting from 0: R's sequential order (for CSC input the indices must be sorted).
    """
    zz = np.empty((z.shape[0], z.shape[1] + 1))
    zz[:, :-1] = z
    zz[:, -1] = 1.0
    ez = x.T @ zz
    np.multiply(x.data, x.data, out=x.data)
    s2 = x.T @ np.ones(x.shape[0])
    return ez[:, :-1], ez[:, -1].copy(), s2


# --------------------------------------------------------------------------------------------------
# statistics, ACAT, BY


def _stats_weights(
    e: np.ndarray, s1: np.ndarray, s2: np.ndarray, linv: np.ndarray, lam_k: np.ndarray, n: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per gene (e: genes x d): T = (e^T L e * n) / sum(y^2) (genes,) and the null weights lambda_y * lambda_K
    sorted decreasingly (genes x d), in R's order of operations."""
    d = linv.shape[0]
    quad = 0.0
    for j in range(d):
        w = 0.0  # w = e %*% L (dgemv 'T'), then quad = w %*% e (dgemv 'N')
        for i in range(d):
            w = w + linv[i, j] * e[:, i]
        quad = quad + e[:, j] * w
    stat = (quad * n) / s2
    ybar = s1 / n
    lam_y = 1.0 - (n * (ybar * ybar)) / s2
    weights = np.sort(lam_y[:, None] * lam_k[None, :], axis=1)[:, ::-1]
    return stat, np.ascontiguousarray(weights)


def _libm(fn: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """``fn`` (a C-library function from :mod:`math`) element by element: the rounding of R's C calls, which
    numpy's vectorised versions do not always have."""
    return np.fromiter(map(fn, x.ravel().tolist()), np.float64, x.size).reshape(x.shape)


def _acat_terms(p: np.ndarray, w: float) -> tuple[np.ndarray, np.ndarray]:
    """ACAT summands: w / p / pi for p < 1e-16, w tan((0.5 - p) pi) otherwise (0 in the other array)."""
    small = p < 1e-16
    with np.errstate(divide="ignore", over="ignore"):
        small_terms = np.where(small, (w / p) / _M_PI, 0.0)
    other_terms = np.where(small, 0.0, w * _libm(math.tan, (0.5 - p) * _M_PI))
    return small_terms, other_terms


def _cauchy_upper(t: float) -> float:
    """1/(T pi) above T = 1e15, else 1 - pcauchy(T) with R's lower-tail expression."""
    if t > 1e15:
        return (1.0 / t) / _M_PI
    if abs(t) > 1.0:
        y = math.atan(1.0 / t) / _M_PI
        lower = (0.5 - y + 0.5) if t > 0 else -y
    else:
        lower = 0.5 + math.atan(t) / _M_PI
    return 1.0 - lower


def _rsum_rows(terms: np.ndarray) -> np.ndarray:
    """Row sums as R's ``sum``: left to right in long double, rounded to double at the end."""
    acc = np.zeros(terms.shape[0], dtype=np.longdouble)
    for k in range(terms.shape[1]):
        acc += terms[:, k]
    return acc.astype(np.float64)


def acat(pvals: np.ndarray) -> np.ndarray:
    """SPARK-X's ACAT with equal weights, row by row of a (genes x kernels) array of p-values.

    As R's ``ACAT``: a row with a 0 gives 0, a row with a 1 gives 1; NaN, values outside [0, 1] and rows with
    both 0 and 1 are errors (``ValueError``, naming the rows).
    """
    p = np.atleast_2d(np.asarray(pvals, dtype=np.float64))
    g, k = p.shape
    if np.isnan(p).any():
        raise ValueError(f"ACAT: NaN p-values in rows {np.flatnonzero(np.isnan(p).any(axis=1))[:10].tolist()}")
    out_range = (p < 0) | (p > 1)
    if out_range.any():
        raise ValueError(f"ACAT: p-values outside [0, 1] in rows {np.flatnonzero(out_range.any(axis=1))[:10].tolist()}")
    is_zero = (p == 0).any(axis=1)
    is_one = (p == 1).any(axis=1)
    if (is_zero & is_one).any():
        raise ValueError(f"ACAT: rows with both a 0 and a 1 p-value: {np.flatnonzero(is_zero & is_one)[:10].tolist()}")
    w = 1.0 / k  # R's default weights rep(1/length(Pvals), ...), used without renormalising
    small, other = _acat_terms(p, w)
    stat = _rsum_rows(small) + _rsum_rows(other)
    out = np.array([_cauchy_upper(t) for t in stat.tolist()], dtype=np.float64).reshape(g)
    out[is_zero] = 0.0
    out[is_one] = 1.0
    return out


def p_adjust_by(p: np.ndarray) -> np.ndarray:
    """R's ``p.adjust(p, method = "BY")`` (no missing values)."""
    p = np.asarray(p, dtype=np.float64)
    n = p.shape[0]
    if n == 0:
        return p.copy()
    q = np.float64(np.cumsum(1.0 / np.arange(1, n + 1), dtype=np.longdouble)[-1])
    i = np.arange(n, 0, -1, dtype=np.float64)
    o = np.argsort(-p, kind="stable")
    adj = np.minimum.accumulate(((q * n) / i) * p[o])
    out = np.empty(n)
    out[o] = np.minimum(1.0, adj)
    return out


# --------------------------------------------------------------------------------------------------
# public API


def _gene_names(genes: Sequence[Any] | None, n_genes: int) -> list[Any]:
    if genes is None:
        return list(range(n_genes))
    names = list(genes)
    if len(names) != n_genes:
        raise DataError(f"{len(names)} gene names given for {n_genes} genes (columns of counts)")
    return ["NAgene" if x is None or (isinstance(x, float) and math.isnan(x)) else x for x in names]


def sparkx(counts: Any, coords: Any, genes: Sequence[Any] | None = None) -> pd.DataFrame:
    """Test every gene for spatially variable expression with SPARK-X (R ``sparkx(option = "mixture")``).

    ``counts``: spots x genes raw counts (scipy sparse, preferably CSR or CSC, or dense). ``coords``: spots x d
    spot coordinates (d = 2 usually), rows in the same order. ``genes``: names of the count columns (None:
    integer positions).

    Returns a DataFrame indexed by gene (only the genes that survive the all-zero filter, in input order)
    with ``combined_pval`` (ACAT over the 11 kernels), ``adjusted_pval`` (Benjamini-Yekutieli), then
    ``stat_<kernel>`` and ``pval_<kernel>`` for the kernels in :data:`KERNELS`. Gene names that are missing
    (None/NaN) become "NAgene", as in R. ``attrs`` holds ``n_spots`` (spots used), ``n_spots_dropped``,
    ``n_genes_dropped`` and ``bandwidths`` (the l_k of each axis).
    """
    import pandas as pd

    names, cols, attrs = sparkx_columns(counts, coords, genes)
    out = pd.DataFrame(cols, index=pd.Index(names, dtype=None if genes is None else object))
    out.attrs.update(attrs)
    return out


def sparkx_columns(counts: Any, coords: Any, genes: Sequence[Any] | None = None
                   ) -> tuple[list[Any], dict[str, np.ndarray], dict[str, Any]]:
    """:func:`sparkx` without pandas (a short pipeline job skips its import): the tested genes' names, the
    result's columns in order (each an array over those genes) and its ``attrs``."""
    m = _as_counts(counts)
    n_all, n_genes = m.shape
    index = _gene_names(genes, n_genes)
    xy_all = _as_coords(coords, n_all)

    x = type(m)((m.data.astype(np.float64), m.indices, m.indptr), shape=m.shape)
    spot_ok = _spot_totals(x) > 0  # counts are non-negative: a positive total is a non-zero count
    n = int(spot_ok.sum())
    if n < 2:
        raise DataError(f"SPARK-X needs at least 2 spots with non-zero counts, got {n} (of {n_all} spots)")
    xy = xy_all[spot_ok] if n < n_all else xy_all
    d = xy.shape[1]
    if n <= d:
        raise DataError(f"SPARK-X needs more spots with non-zero counts ({n}) than coordinate axes ({d})")
    const = [a for a in range(d) if np.all(xy[:, a] == xy[0, a])]
    if const:
        raise DataError(
            f"coordinates are constant along axis {const[0]} over the {n} spots with non-zero counts; SPARK-X "
            "needs spots spread in every coordinate"
        )

    zs, bw = _kernel_coordinates(xy)
    terms = [_kernel_terms(z, name) for z, name in zip(zs, KERNELS)]
    n_k = len(KERNELS)
    zall = np.zeros((n_all, n_k * d))
    for k, (zc, _, _) in enumerate(terms):
        zall[spot_ok, k * d : (k + 1) * d] = zc
    del zs

    e, s1, s2 = _gene_sums(x, zall)
    del x, zall
    keep = s1 != 0
    e, s1, s2 = e[keep], s1[keep], s2[keep]
    index = [index[i] for i in np.flatnonzero(keep)]
    g = int(keep.sum())
    if g == 0:
        raise DataError("all genes have zero counts")

    stats = np.empty((g, n_k))
    weights = np.empty((n_k, g, d))
    for k, (_, linv, lam_k) in enumerate(terms):
        stats[:, k], weights[k] = _stats_weights(e[:, k * d : (k + 1) * d], s1, s2, linv, lam_k, float(n))
    p, _ = _davies.sparkx_pvalue(stats.T.reshape(-1), weights.reshape(-1, d))
    pvals = p.reshape(n_k, g).T

    _check_pvalues(pvals, index)
    combined = acat(pvals)
    adjusted = p_adjust_by(combined)

    cols: dict[str, np.ndarray] = {"combined_pval": combined, "adjusted_pval": adjusted}
    for k, name in enumerate(KERNELS):
        cols[f"stat_{name}"] = stats[:, k]
    for k, name in enumerate(KERNELS):
        cols[f"pval_{name}"] = pvals[:, k]
    attrs = {"n_spots": n, "n_spots_dropped": int(n_all - n), "n_genes_dropped": int(n_genes - g),
             "bandwidths": {f"axis{a}": bw[:, a].tolist() for a in range(d)}}
    log.info(
        "SPARK-X: %d genes tested on %d spots (%d all-zero spots and %d all-zero genes dropped); %d with BY < 0.05",
        g, n, n_all - n, n_genes - g, int((adjusted < 0.05).sum()),
    )
    return index, cols, attrs


def _check_pvalues(pvals: np.ndarray, index: Sequence[Any]) -> None:
    """The conditions under which R's ACAT stops, reported with gene names."""

    def names(mask: np.ndarray) -> str:
        rows = np.flatnonzero(mask)
        shown = ", ".join(str(index[i]) for i in rows[:5])
        return f"{rows.size} genes ({shown}{', ...' if rows.size > 5 else ''})"

    nan = np.isnan(pvals).any(axis=1)
    if nan.any():
        raise DataError(
            f"SPARK-X p-values are undefined for {names(nan)}: a gene with the same count in every spot has no "
            "variance (R's sparkx stops here too); remove such genes first"
        )
    bad = ((pvals < 0) | (pvals > 1)).any(axis=1)
    if bad.any():
        raise DataError(f"Davies' method failed (p-value outside [0, 1]) for {names(bad)}; R's sparkx stops here too")
    both = (pvals == 0).any(axis=1) & (pvals == 1).any(axis=1)
    if both.any():
        raise DataError(
            f"p-values of exactly 0 and 1 in different kernels for {names(both)}; R's ACAT stops here too"
        )


def _pick(x: Any, layers: Any, obsm: Any, spatial_key: str, layer: str | None) -> tuple[Any, Any]:
    """The count matrix (``x`` or ``layers[layer]``) and ``obsm[spatial_key]``, from an AnnData's attributes or an
    .h5ad file's groups (both mappings); DataError where one is missing."""
    if spatial_key not in obsm:
        raise DataError(f"no spot coordinates: obsm['{spatial_key}'] is missing (obsm has {sorted(obsm.keys())})")
    if layer is not None:
        if layer not in layers:
            raise DataError(f"layer '{layer}' is missing (layers: {sorted(layers.keys())})")
        x = layers[layer]
    if x is None:
        raise DataError("the AnnData has no count matrix (X is None)")
    return x, obsm[spatial_key]


def _adata_parts(adata: Any, spatial_key: str, layer: str | None) -> tuple[Any, Any, list[str]]:
    """Counts, coordinates and gene names of an AnnData, as :func:`sparkx` takes them."""
    x, coords = _pick(adata.X, adata.layers, adata.obsm, spatial_key, layer)
    if hasattr(coords, "to_numpy"):  # a data frame
        coords = coords.to_numpy()
    return x, coords, list(adata.var_names)


def sparkx_adata(adata: Any, spatial_key: str = "spatial", layer: str | None = None) -> pd.DataFrame:
    """:func:`sparkx` on an AnnData (spots x genes): raw counts in ``X`` (or ``layers[layer]``), coordinates in
    ``obsm[spatial_key]``; genes named by ``var_names``."""
    return sparkx(*_adata_parts(adata, spatial_key, layer))


#: The sparse encodings of anndata's on-disk format that :func:`read_h5ad_counts` reads itself.
_SPARSE = {"csr_matrix": sp.csr_matrix, "csc_matrix": sp.csc_matrix}


def _h5_elem(elem: Any) -> Any:
    """An element of an .h5ad file as anndata reads it, for the plain encodings (CSR/CSC, dense array, string
    array); None for any other (or none)."""
    if elem is None:
        return None
    kind = elem.attrs.get("encoding-type")
    if kind in _SPARSE:
        shape = tuple(int(v) for v in elem.attrs["shape"])
        return _SPARSE[kind]((elem["data"][...], elem["indices"][...], elem["indptr"][...]), shape=shape)
    if kind == "array":
        return elem[...]
    if kind == "string-array":
        return elem.asstr()[...]
    return None


def _var_index(f: Any) -> Any:
    """The element holding the gene names (the index of ``var``); None unless ``var`` is a data frame group."""
    var = f.get("var")
    if var is None or var.attrs.get("encoding-type") != "dataframe":
        return None
    return var.get(var.attrs["_index"])


def read_h5ad_counts(path: Any, spatial_key: str = "spatial", layer: str | None = None) -> tuple[Any, Any, list[str]]:
    """Counts (``X`` or ``layers[layer]``), coordinates (``obsm[spatial_key]``) and gene names of an .h5ad file:
    the arguments of :func:`sparkx`, with the checks of :func:`sparkx_adata`, and nothing else read.

    Stored in anndata's plain encodings (CSR/CSC, dense array, string array) they are read with h5py alone: no
    AnnData is built and anndata is not imported (that import alone takes about 0.3 s of a short job). Any
    other encoding: the file is read with anndata.
    """
    import h5py

    with h5py.File(path, "r") as f:
        x, coords = _pick(f.get("X"), f.get("layers", {}), f.get("obsm", {}), spatial_key, layer)
        parts = [_h5_elem(e) for e in (x, coords, _var_index(f))]
    if any(p is None for p in parts):
        import anndata

        return _adata_parts(anndata.read_h5ad(path), spatial_key, layer)
    return parts[0], parts[1], parts[2].tolist()


def _ranking(adjusted: np.ndarray, combined: np.ndarray) -> np.ndarray:
    """Positions, most spatially variable first: by adjusted p, ties by combined p, then by position."""
    return np.lexsort((np.arange(len(adjusted)), combined, adjusted))


def rank_spatial_genes(result: pd.DataFrame, n: int | None = None) -> list[str]:
    """Gene names of a :func:`sparkx` result, most spatially variable first: by ``adjusted_pval``, ties broken
    by ``combined_pval``, then by the result's order; the first ``n`` (all if None)."""
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    order = _ranking(result["adjusted_pval"].to_numpy(), result["combined_pval"].to_numpy())
    if n is not None:
        order = order[:n]
    return [str(result.index[i]) for i in order]


def ranked_table(result: pd.DataFrame) -> pd.DataFrame:
    """A :func:`sparkx` result as the pipeline writes it: most spatially variable first (:func:`rank_spatial_genes`),
    with the columns ``gene`` and ``rank`` (1 = first) before the result's own."""
    table = result.loc[rank_spatial_genes(result)].rename_axis("gene").reset_index()
    table.insert(1, "rank", range(1, len(table) + 1))
    return table


def write_ranked(names: Sequence[Any], cols: Mapping[str, np.ndarray], path: Any) -> None:
    """:func:`ranked_table` of :func:`sparkx_columns`' output written as a TSV (atomically), without pandas: the
    same text as pandas writes (shortest round-trip float repr, an empty field for NaN)."""
    order = _ranking(cols["adjusted_pval"], cols["combined_pval"])
    text = []
    for values in cols.values():
        v = np.asarray(values, dtype=np.float64)[order]
        t = v.astype(str)
        t[np.isnan(v)] = ""
        text.append(t)
    header = "\t".join(["gene", "rank", *cols])
    rows = ("\t".join(row) for row in zip((str(names[i]) for i in order), map(str, range(1, len(order) + 1)),
                                           *text))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join([header, *rows]) + "\n")
