"""SCTransform v2 step 2: regularise the step-1 parameters against gene abundance (sctransform's
``theta_regularization = "od_factor"``).

For the step-1 genes with x = log10 geometric mean (lg):

1. ``disp = log10(1 + 10^lg / theta)`` (0 for theta = inf).
2. Outliers: a gene is an outlier when its theta is infinite, or when ``disp`` or ``beta0`` scores
   min(|z1|, |z2|) > 10, z = robust z-score within bins of lg of width (max - min) * bw.SJ(lg) / 2
   (right-closed bins; the second binning shifted by half a bin).
3. The remaining genes (also leaving out Poisson genes) give the bandwidth 3 * bw.SJ(lg).
4. Every gene's lg is clamped to the remaining genes' lg range; ``disp`` and ``beta0`` are kernel-smoothed
   there (R ``ksmooth``, normal kernel); theta = 10^lg / (10^disp_fit - 1) with the unclamped lg;
   the slope is ln 10 (v2's fixed offset).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from genegraph.errors import DataError
from genegraph.stats.sctransform.rstats import DOUBLE_EPS, bw_sj, ksmooth_normal, robust_z

log = logging.getLogger(__name__)

#: |robust z| above this (in both binnings) flags an outlier.
OUTLIER_Z = 10.0
#: The regularisation bandwidth is this multiple of bw.SJ (sctransform's bw_adjust).
BW_ADJUST = 3.0
#: First break sits this far below the minimum, so the minimum falls in the first right-closed bin.
_BREAK_OFFSET = 10 * DOUBLE_EPS


@dataclass(frozen=True)
class Regularised:
    """Regularised model for every gene asked for, and what the regularisation used.

    ``theta``, ``beta0``, ``beta1``: per gene (input order of ``lg_all``). ``outlier``: per step-1 gene.
    ``bandwidth``: 3 * bw.SJ; ``lg_clamp``: (min, max) of the step-1 lg used.
    """

    theta: np.ndarray
    beta0: np.ndarray
    beta1: np.ndarray
    outlier: np.ndarray
    bandwidth: float
    lg_clamp: tuple[float, float]


def _binned_robust_z(y: np.ndarray, x: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    """Robust z-score of y within the right-closed bins (breaks[k], breaks[k+1]] of x."""
    bins = np.searchsorted(breaks, x, side="left") - 1
    z = np.zeros(len(y))
    for b in np.unique(bins):
        members = bins == b
        z[members] = robust_z(y[members])
    return z


def _seq_by(start: float, stop: float, by: float) -> np.ndarray:
    """R ``seq(start, stop, by)`` for by > 0: start + k * by up to stop (with R's 1e-10 slack)."""
    n = int((stop - start) / by + 1e-10)
    return np.minimum(start + np.arange(n + 1) * by, stop)


def flag_outliers(y: np.ndarray, x: np.ndarray, threshold: float = OUTLIER_Z) -> np.ndarray:
    """Genes whose ``y`` is far from the bin median along ``x`` in two shifted binnings (bool array)."""
    width = (x.max() - x.min()) * bw_sj(x) / 2.0
    start = x.min() - _BREAK_OFFSET
    breaks1 = _seq_by(start, x.max() + width, width)
    breaks2 = _seq_by(start - width / 2.0, x.max() + width, width)
    z1 = _binned_robust_z(y, x, breaks1)
    z2 = _binned_robust_z(y, x, breaks2)
    return np.minimum(np.abs(z1), np.abs(z2)) > threshold


def regularise(lg_step1: np.ndarray, theta_step1: np.ndarray, beta0_step1: np.ndarray,
               lg_all: np.ndarray, poisson_step1: np.ndarray | None = None) -> Regularised:
    """Regularise step-1 (theta, beta0) into a model for every gene with log10 gmean ``lg_all``.

    ``lg_step1``, ``theta_step1``, ``beta0_step1``: per step-1 gene; ``poisson_step1``: step-1 genes
    to leave out as Poisson genes (var <= mean or mean < 1e-3). Raises DataError when fewer than 3
    genes remain, as no bandwidth can be chosen then.
    """
    with np.errstate(divide="ignore"):
        disp = np.log10(1.0 + 10.0 ** lg_step1 / theta_step1)
    try:
        outlier = flag_outliers(disp, lg_step1) | flag_outliers(beta0_step1, lg_step1)
    except ValueError as err:
        raise DataError(f"cannot flag step-1 outliers: {err}") from err
    outlier |= np.isinf(theta_step1)
    keep = ~outlier
    if poisson_step1 is not None:
        keep &= ~poisson_step1
    if keep.sum() < 3:
        raise DataError(f"only {int(keep.sum())} step-1 genes remain for the regularisation; need >= 3")
    x = lg_step1[keep]
    try:
        bandwidth = BW_ADJUST * bw_sj(x)
    except ValueError as err:
        raise DataError(f"cannot choose the regularisation bandwidth: {err}") from err
    lo, hi = float(x.min()), float(x.max())
    x_points = np.clip(lg_all, lo, hi)
    disp_fit = ksmooth_normal(x, disp[keep], x_points, bandwidth)
    beta0 = ksmooth_normal(x, beta0_step1[keep], x_points, bandwidth)
    with np.errstate(divide="ignore"):
        theta = 10.0 ** lg_all / (10.0 ** disp_fit - 1.0)
    log.info("regularised %d genes on %d of %d step-1 genes (%d outliers), bandwidth %.4g",
             len(lg_all), int(keep.sum()), len(lg_step1), int(outlier.sum()), bandwidth)
    return Regularised(theta=theta, beta0=beta0, beta1=np.full(len(lg_all), math.log(10.0)),
                       outlier=outlier, bandwidth=bandwidth, lg_clamp=(lo, hi))
