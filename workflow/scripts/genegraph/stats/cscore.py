"""CS-CORE co-expression estimation (Su et al., Nat Commun 2023), a native torch port.

Counts are modelled as Poisson given a latent expression level, x_ij | z_ij ~ Poisson(s_i z_ij), and the
mean, variance and covariance of z are estimated by moment regressions through the origin, fitted by
(iteratively re)weighted least squares. The algorithm follows the R package CS-CORE 1.1.0
(``CSCORE_IRLS_cpp``, called the way ``CSCORE()`` calls it without covariates: ``n_iter = 10``,
``eps = 0.05``, ``conv = "max"``, ``post_process = TRUE``); every rule below is from
``shared/specs/cscore_sparkx.md`` §1:

* **depth**: ``seq_depth`` is the per-cell total over *all* genes, not only the ones analysed;
* **IRLS** (mean and variance per gene): unweighted start, then passes while ``delta > eps`` and
  ``passes <= n_iter``, so at most ``n_iter + 1`` (11) passes. Each pass uses the median of the positive,
  non-NaN gene shapes theta_j = mu_j^2 / sigma_jj of the previous pass (two middle values averaged); mean weights
  w = s mu + s^2 mu^2 / theta_med with non-finite or non-positive entries set to 1; variance weights
  h = (M^2 / theta_med + M)^2 with non-positive entries set to 1; delta = max |log(theta / theta_prev)| over genes
  whose theta is positive in both passes. Non-convergence is only logged;
* **covariance**: one WLS per gene pair with weights 1/(w_ij w_ij') (w recomputed from the final mu and theta),
  done for all pairs at once as matrix products;
* **test**: T = sum s^2 r r' / (Sigma Sigma') / sqrt(sum s^4 / (Sigma Sigma')) with Sigma = s mu + s^2 sigma_jj
  using the *raw* (possibly negative) sigma_jj; p = 2 Phi(-|T|), evaluated in the upper tail
  (``scipy.special.ndtr``), so p-values stay accurate down to about 1e-300 and underflow to 0 only beyond;
* **correlation**: negative sigma_jj are set to 0, est = covar / (sd_j sd_j'); genes whose diagonal estimate
  is Inf or NaN get their row and column set to 0, then the diagonal is set to 1 and off-diagonal values
  are clipped to [-1, 1]. Test statistics and p-values are not changed. Genes with all-zero counts give NaN
  statistics and p-values (the R behaviour is kept).

Computation: the gene-pair sums are four products (b x n)(n x b) per pair of gene blocks, of which only the
blocks on or above the diagonal are computed (the results are symmetric). The n x p working arrays are
processed in gene blocks sized from ``memory_limit``: the four pair factors of as many blocks as fit (a
"panel", usually all genes) are held at once, later blocks are recomputed once per panel, so no array has
more than one p-sized factor besides the three p x p outputs; ``counts`` may be sparse and is densified one
gene block at a time. One code path serves CPU and CUDA (``device="cpu" | "cuda" | "auto"``). Measured on a
2-core x86 (MKL, 2 threads, ``bench/cscore.py``): 5,000 cells x 1,000 genes 0.55 s and 20,000 x 500 0.96 s
(R Rcpp: 27.6 s and 32.6 s); 20,000 x 5,000 peaks at 2.8 GB RSS. On a machine shared with other jobs pass
``num_threads`` (one thread ran 3-5x faster than two on an oversubscribed 2-core machine).

Precision: the IRLS (O(n p) work) always runs in float64; ``dtype`` sets the precision of the pair products
(the O(n p^2) part), which are accumulated in that dtype and divided in float64.

* float64 is the exact path. Against the R reference ``cscore_mic100`` (3,641 cells x 100 genes, measured):
  max |Δest| 8.7e-15; test statistic relative 5.1e-12 (absolute 2.9e-13); p-value relative 7.6e-12
  (8.3e-13 where p > 1e-10) with the same 101 exact zeros and no NaN; mu relative 3.3e-13, sigma2 1.6e-14;
  3 IRLS passes as in R. Gene blocking, sparse or dense input change the results by rounding only (~1e-15).
* float32 is approximate (faster on GPUs; on the CPU it gains little). Against the float64 result on the same
  reference data (CPU, measured): max |Δest| 1.9e-7; max |Δstat| 1.5e-5, i.e. 9.6e-7 relative to max(|T|, 1);
  p-value relative error 1.3e-5 where p > 1e-10 and up to 2.1e-4 in the far tail (it grows with |T|); the same
  exact zeros (the diagonal underflows either way) and the identical p < 0.005 edge set. On the benchmark's
  simulated NB data (5,000 x 1,000 and 20,000 x 500): |Δest| <= 1.2e-6, |Δstat| / max(|T|, 1) <= 1.6e-6, p
  relative <= 6.7e-6 where p > 1e-10, identical edge sets. The test suite enforces est 1e-5 absolute, stat 1e-5
  relative to max(|T|, 1), p 1e-4 relative where p > 1e-10 (1e-2 below). With TF32 matmuls enabled globally
  on a GPU (``torch.backends.cuda.matmul.allow_tf32``) float32 is much less accurate. Use float64 whenever
  results are compared with R.

Input checks raise :class:`genegraph.errors.DataError`: non-integer, negative, NaN or infinite counts; a depth
vector of the wrong length or with zero, negative or non-finite entries; fewer than 2 cells or genes. Values
within :data:`genegraph.data.counts.INTEGER_TOLERANCE` of an integer are accepted and rounded (R's own check is
stricter, sqrt(machine eps), but the R code would otherwise use the unrounded values).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.special
import torch

from genegraph.data.counts import validate_counts
from genegraph.device import resolve_device
from genegraph.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["CSCoreResult", "cscore", "cscore_adata", "resolve_dtype"]

#: IRLS settings of the R wrapper ``CSCORE()`` without covariates.
N_ITER = 10
EPS = 0.05

#: Default cap on the bytes of the n x (gene block) working arrays (not counting the input and the p x p outputs).
DEFAULT_MEMORY_LIMIT = 2 * 1024**3

#: Largest gene block (rows of one pair product); beyond this, bigger products gain nothing.
MAX_BLOCK = 4096

#: Target gene block on the CPU (measured fastest with MKL on 2 cores for 5k x 1k and 20k x 500).
CPU_BLOCK = 256

#: Elements per IRLS block on the CPU, so that one working array (2 MB) stays in cache.
CPU_IRLS_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class CSCoreResult:
    """CS-CORE output for p genes.

    ``est``: p x p co-expression estimates after post-processing (diagonal 1, values in [-1, 1], rows and
    columns of genes with a non-positive variance set to 0). ``p_value`` and ``test_stat``: p x p, the test of
    independence for every pair (the diagonal is computed but meaningless: its p-values are ~0). ``mu`` and
    ``sigma2``: the IRLS mean and the **raw** variance of the latent expression per gene (sigma2 may be
    negative; such genes are the ones zeroed in ``est``). ``n_passes``: IRLS passes run (at most n_iter + 1);
    ``converged``: whether the stopping rule was met. ``genes``: the gene names when known (from
    :func:`cscore_adata`), else None. ``clipped_frac``: share of off-diagonal estimates clipped to [-1, 1] by
    the post-processing. All arrays are float64 numpy arrays.
    """

    est: np.ndarray
    p_value: np.ndarray
    test_stat: np.ndarray
    mu: np.ndarray
    sigma2: np.ndarray
    n_passes: int
    converged: bool
    genes: tuple[str, ...] | None = None
    clipped_frac: float = 0.0

    def edges(self, alpha: float = 0.005) -> np.ndarray:
        """Boolean p x p adjacency of pairs with p-value < ``alpha`` (diagonal False, NaN p is no edge)."""
        with np.errstate(invalid="ignore"):
            adj = self.p_value < alpha
        np.fill_diagonal(adj, False)
        return adj


# ----------------------------------------------------------------------------------------------------------
# argument handling


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``torch.float64`` / ``"float64"`` (exact path) or ``torch.float32`` / ``"float32"`` (approximate)."""
    names = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32, "float": torch.float32}
    if isinstance(dtype, str):
        if dtype not in names:
            raise ValueError(f"unsupported dtype {dtype!r}: use 'float64' or 'float32'")
        return names[dtype]
    if dtype in (torch.float64, torch.float32):
        return dtype
    raise ValueError(f"unsupported dtype {dtype!r}: use torch.float64 or torch.float32")


def _check_depth(seq_depth: Any, n_cells: int) -> np.ndarray:
    try:
        s = np.asarray(seq_depth, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"sequencing depth is not numeric: {err}") from err
    if s.ndim == 2 and 1 in s.shape:
        s = s.ravel()
    if s.ndim != 1:
        raise DataError(f"sequencing depth must be a vector (one value per cell), got shape {s.shape}")
    if s.shape[0] != n_cells:
        raise DataError(
            f"sequencing depth has {s.shape[0]} values but the count matrix has {n_cells} cells (rows); "
            "counts must be cells x genes and the depth one value per cell"
        )
    bad = ~np.isfinite(s)
    if bad.any():
        raise DataError(
            f"sequencing depth has {int(bad.sum())} NaN or infinite values (first at cell {int(np.argmax(bad))})"
        )
    nonpos = s <= 0
    if nonpos.any():
        raise DataError(
            f"sequencing depth must be positive: {int(nonpos.sum())} cells have depth <= 0 "
            f"(first at cell {int(np.argmax(nonpos))}, value {s[np.argmax(nonpos)]:g}); remove empty cells first"
        )
    return s


def _prepare_counts(counts: Any) -> np.ndarray | sp.csr_matrix:
    """Validate ``counts`` (cells x genes) and return it gene-major: dense float64 p x n, or CSR p x n."""
    if sp.issparse(counts):
        m = counts
    else:
        m = np.asarray(counts)
        if m.dtype == object:
            raise DataError("count matrix has dtype object; pass a numeric array or a scipy sparse matrix")
    if m.ndim != 2:
        raise DataError(f"count matrix must be 2-dimensional (cells x genes), got shape {m.shape}")
    n, p = m.shape
    if n < 2:
        raise DataError(f"CS-CORE needs at least 2 cells, got {n} (counts must be cells x genes)")
    if p < 2:
        raise DataError(f"CS-CORE needs at least 2 genes, got {p} (counts must be cells x genes)")
    validate_counts(m, "count matrix")
    if sp.issparse(m):
        t = sp.csr_matrix(m.T, dtype=np.float64)  # genes x cells, rows are genes
        if t.data.size:
            np.rint(t.data, out=t.data)
        return t
    xt = np.array(m.T, dtype=np.float64, order="C")  # always a fresh gene-major copy
    np.rint(xt, out=xt)
    return xt


# ----------------------------------------------------------------------------------------------------------
# the algorithm


class _Genes:
    """Gene-major counts, handed out in gene blocks as float64 tensors on the device.

    With ``cache``, the whole dense p x n matrix is built on the device once (filled block by block, so a
    sparse input is never densified whole on the host) and blocks are views of it. Without, each request
    densifies and transfers its block (dense CPU input is always used in place, without a copy).
    """

    def __init__(self, xt: np.ndarray | sp.csr_matrix, device: torch.device, cache: bool, fill_block: int) -> None:
        self.xt = xt
        self.device = device
        self.dense: torch.Tensor | None = None
        if not sp.issparse(xt) and device.type == "cpu":
            self.dense = torch.from_numpy(xt)
        elif cache:
            p, n = xt.shape
            self.dense = torch.empty((p, n), dtype=torch.float64, device=device)
            for lo, hi in _blocks(p, fill_block):
                self.dense[lo:hi] = self._load(lo, hi)

    def _load(self, lo: int, hi: int) -> torch.Tensor:
        part = self.xt[lo:hi].toarray() if sp.issparse(self.xt) else self.xt[lo:hi]
        return torch.from_numpy(part).to(self.device)

    def block(self, lo: int, hi: int) -> torch.Tensor:
        if self.dense is not None:
            return self.dense[lo:hi]
        return self._load(lo, hi)


def _blocks(p: int, b: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + b, p)) for lo in range(0, p, b)]


def _median_positive(theta: np.ndarray) -> float:
    """Median of the positive entries (NaN excluded by the comparison); NaN when there are none."""
    pos = theta[theta > 0]
    return float(np.median(pos)) if pos.size else math.nan


def _fix_weights(w: torch.Tensor) -> torch.Tensor:
    """Mean/covariance weights: non-finite or non-positive entries become 1 (in place)."""
    w.nan_to_num_(nan=1.0, posinf=1.0, neginf=1.0)
    return w.masked_fill_(w <= 0, 1.0)


def _irls(
    genes: _Genes, p: int, s: torch.Tensor, s2: torch.Tensor, n_iter: int, eps: float, irls_block: int
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Mean and variance per gene (§1.3). Returns mu, raw sigma2, passes run and whether it converged."""
    blocks = _blocks(p, irls_block)
    dev = s.device
    mu = torch.empty(p, dtype=torch.float64, device=dev)
    sigma2 = torch.empty(p, dtype=torch.float64, device=dev)
    sum_s2 = s2.sum()
    sum_s4 = (s2 * s2).sum()
    for lo, hi in blocks:  # unweighted start
        x = genes.block(lo, hi)
        m_ = (x @ s) / sum_s2
        mm = m_[:, None] * s  # M, genes x cells
        r = x - mm
        sigma2[lo:hi] = ((r * r - mm) @ s2) / sum_s4
        mu[lo:hi] = m_
    theta = (mu * mu / sigma2).cpu().numpy()
    if not (theta > 0).any():
        log.warning("CS-CORE: no gene has a positive initial variance estimate; the weights fall back to 1")

    passes = 0
    delta = math.inf
    while delta > eps and passes <= n_iter:
        theta_prev = theta
        med = _median_positive(theta_prev)
        mu_sq_over_theta = mu * mu / med
        new_mu = torch.empty_like(mu)
        for lo, hi in blocks:
            x = genes.block(lo, hi)
            mm = mu[lo:hi, None] * s  # M from the previous pass
            w = _fix_weights(mm + mu_sq_over_theta[lo:hi, None] * s2)
            inv_w = w.reciprocal_()
            m_ = ((x * inv_w) @ s) / (inv_w @ s2)
            new_mu[lo:hi] = m_
            mm = m_[:, None] * s  # updated M
            r = x - mm
            h = mm * mm / med + mm
            h = h.mul_(h)
            h.masked_fill_(h <= 0, 1.0)
            inv_h = h.reciprocal_()
            num = ((r.mul_(r).sub_(mm)).mul_(inv_h)) @ s2
            den = inv_h @ (s2 * s2)
            sigma2[lo:hi] = num / den
        mu = new_mu
        theta = (mu * mu / sigma2).cpu().numpy()
        passes += 1
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = (theta > 0) & (theta_prev > 0)
            ratio = np.abs(np.log(theta[ok] / theta_prev[ok]))
        ratio = ratio[~np.isnan(ratio)]
        delta = float(ratio.max()) if ratio.size else -math.inf
        log.debug("CS-CORE IRLS pass %d: theta median %.6g, delta %.6g", passes, med, delta)
    converged = not (delta > eps)
    if converged:
        log.info("CS-CORE IRLS converged after %d passes", passes)
    else:
        log.warning(
            "CS-CORE IRLS did not converge after %d passes (delta %.3g > eps %g); the last estimates are used",
            passes, delta, eps,
        )
    return mu.cpu().numpy(), sigma2.cpu().numpy(), passes, converged


def _pair_factors(
    x: torch.Tensor, mu: torch.Tensor, sigma2: torch.Tensor, mu_sq_over_theta: torch.Tensor,
    s: torch.Tensor, s2: torch.Tensor, dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one gene block (genes x cells): A = s r / w, B = s^2 / w, V = s r / Sigma, U = s^2 / Sigma.

    Then A_I A_J^T / B_I B_J^T is the WLS covariance and V_I V_J^T / sqrt(U_I U_J^T) the test statistic.
    """
    mm = mu[:, None] * s
    r = x - mm
    inv_w = _fix_weights(mm + mu_sq_over_theta[:, None] * s2).reciprocal_()
    sigma = mm.add_(sigma2[:, None] * s2)  # Sigma = M + s^2 sigma2 (raw sigma2), reuses M's storage
    inv_sigma = sigma.reciprocal_()
    sr = r.mul_(s)
    a = (sr * inv_w).to(dtype)
    v = sr.mul_(inv_sigma).to(dtype)
    b = inv_w.mul_(s2).to(dtype)
    u = inv_sigma.mul_(s2).to(dtype)
    return a, b, v, u


def _symmetrize_diag_block(t: torch.Tensor) -> torch.Tensor:
    """Make a diagonal block exactly symmetric by mirroring its upper triangle."""
    up = torch.triu(t)
    return up + torch.triu(t, 1).T


def _pairs(
    genes: _Genes, p: int, mu_np: np.ndarray, sigma2_np: np.ndarray, s: torch.Tensor, s2: torch.Tensor,
    dtype: torch.dtype, block: int, panel: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw est (before post-processing) and test statistic, p x p float64 numpy.

    Genes are cut into blocks of ``block``; the factors of ``panel`` consecutive blocks are held at once. For
    each panel: all block pairs inside it, then every later block once against the whole panel. With one
    panel (the usual case) every factor is computed once; otherwise later blocks are recomputed once per panel.
    Only pairs of blocks on or above the diagonal are multiplied; the rest is mirrored.
    """
    dev = s.device
    mu = torch.from_numpy(mu_np).to(dev)
    sigma2 = torch.from_numpy(sigma2_np).to(dev)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = mu_np * mu_np / sigma2_np
    med = _median_positive(theta)
    mu_sq_over_theta = mu * mu / med
    sd = torch.sqrt(torch.clamp(sigma2, min=0.0))

    est = np.empty((p, p), dtype=np.float64)
    stat = np.empty((p, p), dtype=np.float64)
    blocks = _blocks(p, block)

    def factors(k: int) -> tuple[torch.Tensor, ...]:
        lo, hi = blocks[k]
        return _pair_factors(genes.block(lo, hi), mu[lo:hi], sigma2[lo:hi], mu_sq_over_theta[lo:hi], s, s2, dtype)

    def pair(i: int, j: int, fi: tuple[torch.Tensor, ...], fj: tuple[torch.Tensor, ...]) -> None:
        (ilo, ihi), (jlo, jhi) = blocks[i], blocks[j]
        a_i, b_i, v_i, u_i = fi
        a_j, b_j, v_j, u_j = fj
        covar = (a_i @ a_j.T).to(torch.float64).div_((b_i @ b_j.T).to(torch.float64))
        e = covar.div_(sd[ilo:ihi, None] * sd[None, jlo:jhi])
        t = (v_i @ v_j.T).to(torch.float64).div_((u_i @ u_j.T).to(torch.float64).sqrt_())
        if i == j:
            e = _symmetrize_diag_block(e)
            t = _symmetrize_diag_block(t)
        e_np = e.cpu().numpy()
        t_np = t.cpu().numpy()
        est[ilo:ihi, jlo:jhi] = e_np
        stat[ilo:ihi, jlo:jhi] = t_np
        if i != j:
            est[jlo:jhi, ilo:ihi] = e_np.T
            stat[jlo:jhi, ilo:ihi] = t_np.T

    k = len(blocks)
    for start in range(0, k, panel):
        stop = min(k, start + panel)
        held = {i: factors(i) for i in range(start, stop)}
        for i in range(start, stop):
            for j in range(i, stop):
                pair(i, j, held[i], held[j])
        for j in range(stop, k):
            fj = factors(j)
            for i in range(start, stop):
                pair(i, j, held[i], fj)
            del fj
        del held
    return est, stat


def _post_process(est: np.ndarray) -> float:
    """In place: zero genes with Inf/NaN diagonal, set the diagonal to 1, clip to [-1, 1] (§1.6). Returns the
    share of off-diagonal estimates that were clipped."""
    p = est.shape[0]
    bad = ~np.isfinite(np.diagonal(est))
    if bad.any():
        log.info("CS-CORE: %d among %d genes have invalid (non-positive) variance estimates; "
                 "their co-expressions with other genes were set to 0", int(bad.sum()), p)
        est[bad, :] = 0.0
        est[:, bad] = 0.0
    np.fill_diagonal(est, 1.0)
    iu = np.triu_indices(p, 1)
    upper = est[iu]
    n_pairs = max(upper.size, 1)
    log.info("CS-CORE: %.4f%% of co-expression estimates were > 1 and set to 1, %.4f%% were < -1 and set to -1",
             100.0 * np.count_nonzero(upper > 1) / n_pairs, 100.0 * np.count_nonzero(upper < -1) / n_pairs)
    np.clip(est, -1.0, 1.0, out=est)  # NaN stays NaN, as in R
    return float(np.count_nonzero(np.abs(upper) > 1) / n_pairs)


def _two_sided_p(stat: np.ndarray, rows: int = 1024) -> np.ndarray:
    """p = 2 Phi(-|T|) in the upper tail, row chunks to bound temporaries."""
    p = np.empty_like(stat)
    for lo in range(0, stat.shape[0], rows):
        out = p[lo:lo + rows]
        np.abs(stat[lo:lo + rows], out=out)
        np.negative(out, out=out)
        scipy.special.ndtr(out, out=out)
        out *= 2.0
    return p


def _plan(n: int, p: int, dev: torch.device, dtype: torch.dtype, memory_limit: int, sparse: bool,
          block_size: int | None) -> tuple[int, int, int, bool]:
    """Gene block size, blocks per panel (pair phase), IRLS block size, and whether to cache dense counts.

    Memory (bytes, per gene): dense float64 counts 8n, pair factors A, B, V, U 4n x itemsize, float64
    temporaries while building factors or in an IRLS block about 8 x 8n.
    """
    item = torch.finfo(dtype).bits // 8
    factor_bytes = 4 * n * item
    x_bytes = 8 * n
    temp_bytes = 8 * 8 * n
    # dense counts on the CPU are used in place; sparse or device-side counts are cached when they fit
    cache_x = (sparse or dev.type != "cpu") and p * x_bytes <= memory_limit // 4
    budget = memory_limit - (p * x_bytes if cache_x else 0)
    if block_size is None:
        # one block's temporaries and factors may take a quarter of the budget
        b = int(max(1, min(p, MAX_BLOCK, (budget // 4) // (temp_bytes + factor_bytes))))
        if dev.type == "cpu" and b > CPU_BLOCK:
            # on the CPU blocks of ~256 genes are faster than one big product: only blocks on or above the
            # diagonal are multiplied and the operands stay in cache; split p evenly
            n_blocks = -(-p // CPU_BLOCK)
            b = -(-p // n_blocks)
    elif block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    else:
        b = min(int(block_size), p)
    n_blocks = -(-p // b)
    # the panel's factors take what is left after one block's temporaries and one extra block of factors
    left = budget - b * (temp_bytes + factor_bytes)
    panel = int(max(1, min(n_blocks, left // max(1, b * factor_bytes))))
    irls_block = max(1, min(b, CPU_IRLS_ELEMENTS // n)) if dev.type == "cpu" else b
    return b, panel, irls_block, cache_x


def cscore(
    counts: np.ndarray | sp.spmatrix | sp.sparray,
    seq_depth: Sequence[float] | np.ndarray,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float64,
    n_iter: int = N_ITER,
    eps: float = EPS,
    post_process: bool = True,
    memory_limit: int | None = None,
    block_size: int | None = None,
    genes: Sequence[str] | None = None,
    num_threads: int | None = None,
) -> CSCoreResult:
    """Run CS-CORE on raw counts.

    ``counts``: cells x genes raw UMI counts (dense or scipy sparse) of the genes to analyse.
    ``seq_depth``: per-cell sequencing depth over **all** genes of the dataset (e.g. ``obs['total_counts']``),
    not the row sums of ``counts`` when ``counts`` holds a gene subset.
    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``. ``dtype``: float64 (exact, default) or float32 for the
    pair products (see the module docstring for its measured accuracy).
    ``n_iter``, ``eps``: IRLS cap and tolerance (R defaults 10 and 0.05; up to ``n_iter + 1`` passes run).
    ``post_process``: apply the zeroing / diagonal / clipping rules to ``est`` (R default True); if False,
    ``est`` is the raw covariance / (sd sd') with Inf/NaN where a variance is not positive.
    ``memory_limit``: approximate bytes for the n x (gene block) working arrays (default 2 GiB on the CPU, half
    the free GPU memory on CUDA; the input and the three p x p outputs are not counted). ``block_size``: genes
    per block, overriding the automatic choice.
    ``genes``: optional names stored in the result.
    ``num_threads``: torch CPU threads for this call (restored afterwards); default: torch's current setting,
    which is all cores. Pass the cores actually reserved for the job (e.g. a Snakemake rule's ``threads``):
    on an oversubscribed machine two threads ran 3-5x *slower* than one in our measurements.
    """
    dev = resolve_device(device)
    cdt = resolve_dtype(dtype)
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    xt = _prepare_counts(counts)
    p, n = xt.shape
    s_np = _check_depth(seq_depth, n)
    if genes is not None:
        genes = tuple(str(g) for g in genes)
        if len(genes) != p:
            raise DataError(f"{len(genes)} gene names given for {p} genes")
    if memory_limit is not None:
        limit = int(memory_limit)
    elif dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        limit = free // 2
    else:
        limit = DEFAULT_MEMORY_LIMIT
    block, panel, irls_block, cache_x = _plan(n, p, dev, cdt, limit, sp.issparse(xt), block_size)
    log.info("CS-CORE: %d cells x %d genes on %s (%s pair products), gene blocks of %d, %d per panel",
             n, p, dev, str(cdt).replace("torch.", ""), block, panel)

    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        gene_blocks = _Genes(xt, dev, cache_x, block)
        s = torch.from_numpy(s_np).to(dev)
        s2 = s * s
        with torch.no_grad():
            mu, sigma2, passes, converged = _irls(gene_blocks, p, s, s2, n_iter, eps, irls_block)
            est, stat = _pairs(gene_blocks, p, mu, sigma2, s, s2, cdt, block, panel)
        del gene_blocks
    finally:
        if num_threads is not None:
            torch.set_num_threads(old_threads)
    clipped = _post_process(est) if post_process else 0.0
    pval = _two_sided_p(stat)
    return CSCoreResult(est=est, p_value=pval, test_stat=stat, mu=mu, sigma2=sigma2, n_passes=passes,
                        converged=converged, genes=genes, clipped_frac=clipped)


def cscore_adata(
    adata: Any,
    genes: Sequence[str] | None = None,
    *,
    depth_key: str | None = "total_counts",
    layer: str | None = None,
    **kwargs: Any,
) -> CSCoreResult:
    """Run :func:`cscore` on an AnnData (cells x genes, raw counts in ``X`` or ``layers[layer]``).

    ``genes``: the var names to analyse, in the order wanted in the output (default: all genes).
    ``depth_key``: the ``obs`` column holding each cell's depth over **all** genes (default ``"total_counts"``).
    ``depth_key=None`` takes the row sums of the whole matrix (all genes of ``adata``), which is only right when
    ``adata`` has not been subset to fewer genes than the depth should count.
    Other keyword arguments go to :func:`cscore`. The result carries the gene names.
    """
    if layer is None:
        mat = adata.X
        where = "X"
    else:
        if layer not in adata.layers:
            raise DataError(f"AnnData has no layer {layer!r} (layers: {sorted(adata.layers.keys())})")
        mat = adata.layers[layer]
        where = f"layers[{layer!r}]"
    if mat is None:
        raise DataError("AnnData has no X matrix; name the layer with raw counts")
    var_names = [str(v) for v in adata.var_names]
    if genes is None:
        idx = np.arange(len(var_names))
        names = var_names
    else:
        names = [str(g) for g in genes]
        if len(set(names)) != len(names):
            dup = sorted({g for g in names if names.count(g) > 1})
            raise DataError(f"gene list has duplicates: {dup[:10]}")
        if len(set(var_names)) != len(var_names):
            raise DataError("AnnData var_names are not unique; call var_names_make_unique() first")
        pos = {g: i for i, g in enumerate(var_names)}
        missing = [g for g in names if g not in pos]
        if missing:
            raise DataError(f"{len(missing)} of {len(names)} genes are not in the AnnData, e.g. {missing[:10]}")
        idx = np.array([pos[g] for g in names], dtype=np.int64)

    if depth_key is None:
        validate_counts(mat, f"AnnData {where}")
        depth = np.asarray(mat.sum(axis=1)).ravel().astype(np.float64)
    else:
        if depth_key not in adata.obs.columns:
            raise DataError(f"AnnData obs has no column {depth_key!r} with the sequencing depth over all genes")
        col = adata.obs[depth_key]
        if not pd.api.types.is_numeric_dtype(col):
            raise DataError(f"AnnData obs[{depth_key!r}] is not numeric (dtype {col.dtype})")
        depth = col.to_numpy(dtype=np.float64, na_value=np.nan)

    sub = mat[:, idx]
    return cscore(sub, depth, genes=names, **kwargs)
