"""Node features: Seurat ``SCTransform(vst.flavor = "v2", variable.features.n = 1000)`` residuals.

MuSe-GNN's node features are the 1000 SCT variable genes and their ``scale.data`` rows: regularised
negative-binomial Pearson residuals, clipped to +-sqrt(n/30) and centred per gene. This module computes
them in Python, following Seurat 4.3 / sctransform 0.3.5 / glmGamPoi step by step (the reference README
``../shared/reference/sctransform_README.md`` lists the steps and the tolerances met):

1. cell attributes: umi_c = library size, log10 umi_c; the model offset is ln umi_c;
2. genes detected (count >= 0.01) in >= 5 cells are modelled; per gene log10 geometric mean
   lg = log10(exp(mean ln(x + 1)) - 1), mean and sample variance;
3. step-1 cells: all, or a random 5000 above 5000 cells;
4. step-1 genes: modelled genes with variance > mean (detected in >= 5 step-1 cells), 2000 drawn
   without replacement with probability 1 / (KDE(lg) + eps) -- or an ordered list given by the caller;
5. step-1 fit in bins of 500 genes (:mod:`genegraph.stats.sctransform.fit`);
6. regularisation against lg (:mod:`genegraph.stats.sctransform.regularise`); Poisson genes (variance <= mean or
   mean < 1e-3) get theta = inf and beta0 = ln(mean) - ln(mean cell sum over modelled genes);
7. Pearson residuals r = (x - mu) / sqrt(max(mu + mu^2 / theta, min_var)), mu = exp(beta0 + beta1 log10 umi),
   min_var = (median non-zero count / 5)^2, clipped to +-sqrt(n); residual variance ranks the genes;
8. Seurat's post-processing: the top genes' r clipped to +-sqrt(n/30), then centred per gene.

Library size. Seurat's umi is the column sum of the matrix it is given. The pipeline's QC removes MT
genes and rare genes before this step, but Seurat (and MuSe-GNN) ran SCTransform on the matrix with
those genes, so the library size should count them. :func:`sctransform` therefore takes the library
size from ``adata.obs[depth_key]`` when asked (the QC stage stores the total over all input genes,
taken before any gene filter, as ``total_counts``); without ``depth_key`` it is the row sum of ``adata.X``,
exactly Seurat's umi for that matrix. Either way the Poisson genes' mean cell sum runs over the modelled
genes of ``adata.X``, as in sctransform.

Where this differs from R:
- the random draws (step-1 cells above 5000 cells, step-1 genes) use numpy's generator, so with the
  same seed the sample differs from R's; this moves about as many variable genes at the cutoff as
  changing R's seed does. Pass ``step1_genes`` to reproduce a given sample exactly;
- the sampling KDE is evaluated exactly on R's 512-point grid (R bins the data for an FFT first);
- above 5000 cells the step-1 fit uses the 5000 drawn cells while lg, the variance > mean test, the
  regularisation and the residuals use all cells (as the reference README describes; the reference
  datasets are smaller, so this path is not compared with R);
- a step-1 bin with fewer genes than the trend window uses the widest centred window that fits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from genegraph.data.counts import to_integer_csr
from genegraph.errors import DataError
from genegraph.stats.sctransform.fit import fit_step1
from genegraph.stats.sctransform.regularise import regularise
from genegraph.stats.sctransform.rstats import DOUBLE_EPS, bw_nrd, kde_on_data

log = logging.getLogger(__name__)

#: Seurat's SCTransform seed (``seed.use``).
DEFAULT_SEED = 1448145
#: sctransform vst defaults used by Seurat's v2 call.
N_STEP1_GENES = 2000
N_STEP1_CELLS = 5000
MIN_CELLS = 5
BIN_SIZE = 500
#: Counts at or above this value count as a detection (sctransform's test on the sparse values).
DETECTION_THRESHOLD = 0.01
#: Genes with a mean below this are Poisson genes (besides those with variance <= mean).
POISSON_MIN_MEAN = 1e-3
#: Seurat's feature clip is +-sqrt(n / FEATURE_CLIP_DIVISOR); the ranking clip is +-sqrt(n).
FEATURE_CLIP_DIVISOR = 30.0
#: Dense residual blocks hold at most this many float64 values (~32 MB).
_BLOCK_VALUES = 1 << 22


@dataclass(frozen=True)
class SCTModel:
    """A fitted SCTransform model.

    ``genes``: one row per input gene (index = gene names, input order) with ``in_model``,
    ``n_cells_detected``, ``log10_gmean``, ``amean``, ``variance``, ``step1`` (draw position, -1 if not
    drawn), ``step1_theta``, ``step1_beta0``, ``step1_outlier``, ``poisson_gene``, ``theta``, ``beta0``,
    ``beta1``, ``residual_mean``, ``residual_variance`` (NaN / False for genes not modelled).
    ``run``: run-level values (counts of genes and cells, ``min_var``, clips, bandwidth, ...).
    ``umi``: library size per cell; ``cells_step1``: indices of the step-1 cells.
    """

    genes: pd.DataFrame
    run: dict
    umi: np.ndarray
    cells_step1: np.ndarray


def gene_attributes(counts: sp.csc_matrix) -> pd.DataFrame:
    """Per-gene detection count, log10 geometric mean (pseudocount 1), mean and sample variance.

    ``counts``: cells x genes CSC, non-negative. Means divide the sum by the number of cells; the
    variance is two-pass (mean first), so exact ties such as variance == mean stay exact.
    """
    n_cells, n_genes = counts.shape
    per_col = np.diff(counts.indptr)
    col = np.repeat(np.arange(n_genes), per_col)
    data = counts.data.astype(np.float64)
    total = np.bincount(col, weights=data, minlength=n_genes)
    amean = total / n_cells
    sq_dev = np.bincount(col, weights=(data - amean[col]) ** 2, minlength=n_genes)
    sq_dev += (n_cells - per_col) * amean ** 2
    log_sum = np.bincount(col, weights=np.log1p(data), minlength=n_genes)
    with np.errstate(divide="ignore"):
        lg = np.log10(np.exp(log_sum / n_cells) - 1.0)
    return pd.DataFrame({
        "n_cells_detected": np.bincount(col, weights=data >= DETECTION_THRESHOLD,
                                        minlength=n_genes).astype(np.int64),
        "log10_gmean": lg,
        "amean": amean,
        "variance": sq_dev / (n_cells - 1),
    })


def draw_step1_genes(lg: np.ndarray, n_genes: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (into ``lg``) of ``n_genes`` genes drawn without replacement, in draw order.

    Each draw picks a remaining gene with probability proportional to 1 / (KDE(lg) + eps), the KDE
    with R's "nrd" bandwidth, so that sparse abundance ranges are well represented. With at most
    ``n_genes`` candidates all are returned in their order.
    """
    if len(lg) <= n_genes:
        return np.arange(len(lg))
    prob = 1.0 / (kde_on_data(lg, bw_nrd(lg)) + DOUBLE_EPS)
    return rng.choice(len(lg), size=n_genes, replace=False, p=prob / prob.sum())


def _step1_positions(names: pd.Index, in_model: np.ndarray, step1_genes: Sequence[str]) -> np.ndarray:
    """Input positions of a caller's ordered step-1 list; DataError for unknown/duplicate/unmodelled."""
    wanted = pd.Index([str(g) for g in step1_genes])
    if wanted.has_duplicates:
        raise DataError(f"step1_genes repeats genes: {list(wanted[wanted.duplicated()][:5])}")
    pos = names.get_indexer(wanted)
    if (pos < 0).any():
        missing = list(wanted[pos < 0][:5])
        raise DataError(f"step1_genes names {int((pos < 0).sum())} genes not in the data, e.g. {missing}")
    not_modelled = ~in_model[pos]
    if not_modelled.any():
        raise DataError(f"step1_genes has {int(not_modelled.sum())} genes detected in fewer than "
                        f"{MIN_CELLS} cells, which are not modelled, e.g. {list(wanted[not_modelled][:5])}")
    if len(pos) < 3:
        raise DataError(f"step1_genes has {len(pos)} genes; the regularisation needs at least 3")
    return pos


def residual_block(y: np.ndarray, log10_umi: np.ndarray, theta: np.ndarray, beta0: np.ndarray,
                   beta1: np.ndarray, min_var: float, clip: float) -> np.ndarray:
    """Clipped Pearson residuals, genes x cells, for counts ``y`` (genes x cells, float64).

    mu = exp(beta0 + beta1 * log10 umi), v = max(mu + mu^2 / theta, min_var), r = (y - mu) / sqrt(v),
    clipped to [-clip, clip]. theta = inf gives Poisson variance.
    """
    mu = np.exp(beta0[:, None] + beta1[:, None] * log10_umi[None, :])
    var = mu + mu * mu / theta[:, None]
    np.maximum(var, min_var, out=var)
    r = (y - mu) / np.sqrt(var)
    return np.clip(r, -clip, clip, out=r)


def min_variance(counts: sp.spmatrix) -> float:
    """sctransform's ``min_variance = "umi_median"``: (median of the non-zero counts / 5)^2.

    ``counts``: the modelled genes' counts (cells x genes, no explicit zeros).
    """
    return (float(np.median(counts.data)) / 5.0) ** 2


def _gene_blocks(n_genes: int, n_cells: int) -> list[slice]:
    step = max(1, _BLOCK_VALUES // max(n_cells, 1))
    return [slice(s, min(s + step, n_genes)) for s in range(0, n_genes, step)]


def residual_moments(counts: sp.csc_matrix, log10_umi: np.ndarray, theta: np.ndarray, beta0: np.ndarray,
                     beta1: np.ndarray, min_var: float, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample variance over cells of each gene's clipped residuals (genes = columns of counts).

    Computed in gene blocks so that memory stays bounded. Returns (mean, variance), one value per gene.
    """
    n_cells, n_genes = counts.shape
    mean = np.empty(n_genes)
    var = np.empty(n_genes)
    for blk in _gene_blocks(n_genes, n_cells):
        y = counts[:, blk].toarray().T.astype(np.float64)
        r = residual_block(y, log10_umi, theta[blk], beta0[blk], beta1[blk], min_var, clip)
        mean[blk] = r.mean(axis=1)
        var[blk] = r.var(axis=1, ddof=1)
    return mean, var


def rank_by_residual_variance(residual_variance: np.ndarray) -> np.ndarray:
    """Positions sorted by decreasing residual variance (ties keep input order, as R's sort)."""
    return np.argsort(-residual_variance, kind="stable")


def scale_features(residuals: np.ndarray, clip: float) -> np.ndarray:
    """Seurat's scale.data from residuals (genes x cells): clip to [-clip, clip], then centre each gene."""
    r = np.clip(residuals, -clip, clip)
    return r - r.mean(axis=1, keepdims=True)


def regularised_model(attrs: pd.DataFrame, step1_pos: np.ndarray, step1_theta: np.ndarray,
                      step1_beta0: np.ndarray, mean_cell_sum: float) -> tuple[pd.DataFrame, dict]:
    """Regularise step-1 estimates into theta, beta0, beta1 for every modelled gene.

    ``attrs``: :func:`gene_attributes` rows of the modelled genes; ``step1_pos``: positions (into attrs)
    of the step-1 genes, in sample order, with their ``step1_theta`` and ``step1_beta0``;
    ``mean_cell_sum``: mean over cells of the counts summed over the modelled genes. Returns a frame
    (rows as attrs) with theta, beta0, beta1, poisson_gene, step1, step1_theta, step1_beta0,
    step1_outlier, and the run values of the regularisation.
    """
    lg = attrs["log10_gmean"].to_numpy()
    amean = attrs["amean"].to_numpy()
    poisson = (attrs["variance"].to_numpy() - amean <= 0) | (amean < POISSON_MIN_MEAN)
    reg = regularise(lg[step1_pos], step1_theta, step1_beta0, lg, poisson[step1_pos])
    theta, beta0 = reg.theta.copy(), reg.beta0.copy()
    theta[poisson] = np.inf
    with np.errstate(divide="ignore"):
        beta0[poisson] = np.log(amean[poisson]) - math.log(mean_cell_sum)
    n = len(attrs)
    step1_order = np.full(n, -1, dtype=np.int64)
    step1_order[step1_pos] = np.arange(len(step1_pos))
    s1_theta = np.full(n, np.nan)
    s1_theta[step1_pos] = step1_theta
    s1_beta0 = np.full(n, np.nan)
    s1_beta0[step1_pos] = step1_beta0
    s1_outlier = np.zeros(n, dtype=bool)
    s1_outlier[step1_pos] = reg.outlier
    frame = pd.DataFrame({
        "step1": step1_order, "step1_theta": s1_theta, "step1_beta0": s1_beta0,
        "step1_outlier": s1_outlier, "poisson_gene": poisson,
        "theta": theta, "beta0": beta0, "beta1": reg.beta1,
    }, index=attrs.index)
    run = {
        "n_step1_genes": len(step1_pos),
        "n_step1_theta_inf": int(np.isinf(step1_theta).sum()),
        "n_step1_outliers": int(reg.outlier.sum()),
        "n_regularisation_genes": int((~reg.outlier & ~poisson[step1_pos]).sum()),
        "n_poisson_genes": int(poisson.sum()),
        "bw_regularisation": reg.bandwidth,
        "log10_gmean_clamp_lo": reg.lg_clamp[0],
        "log10_gmean_clamp_hi": reg.lg_clamp[1],
        "mean_cell_sum_modelled": mean_cell_sum,
    }
    return frame, run


def fit_model(counts: sp.spmatrix | sp.sparray | np.ndarray, gene_names: Sequence[str], *,
              umi: np.ndarray | None = None, step1_genes: Sequence[str] | None = None,
              seed: int = DEFAULT_SEED, n_step1_genes: int = N_STEP1_GENES,
              n_step1_cells: int = N_STEP1_CELLS) -> SCTModel:
    """Fit the SCTransform v2 model (steps 1-7 of the module docstring) to raw counts.

    ``counts``: cells x genes raw integer counts (any scipy sparse or dense); ``gene_names``: unique,
    one per column; ``umi``: library size per cell, at least its counts here (default: the row sums
    of ``counts``, Seurat's umi for this matrix); ``step1_genes``: ordered step-1 gene list replacing
    the random draw; ``seed`` seeds numpy's generator for the cell subsample and the gene draw;
    ``n_step1_genes``, ``n_step1_cells``: sample sizes (sctransform's n_genes and Seurat's ncells).
    Raises :class:`DataError` for bad input.
    """
    x = _counts_csc(counts)
    n_cells, n_genes = x.shape
    names = pd.Index([str(g) for g in gene_names])
    if len(names) != n_genes:
        raise DataError(f"{len(names)} gene names for {n_genes} genes")
    if names.has_duplicates:
        raise DataError(f"gene names are not unique, e.g. {list(names[names.duplicated()][:5])}")
    if n_cells < 2:
        raise DataError(f"SCTransform needs at least 2 cells, got {n_cells}")
    row_sums = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    umi = row_sums if umi is None else np.asarray(umi, dtype=np.float64)
    _check_umi(umi, row_sums)

    attrs = gene_attributes(x)
    attrs.index = names
    in_model = attrs["n_cells_detected"].to_numpy() >= MIN_CELLS
    n_model = int(in_model.sum())
    if n_model < 2:
        raise DataError(f"only {n_model} genes are detected in >= {MIN_CELLS} cells; SCTransform "
                        "needs at least 2")
    model_idx = np.flatnonzero(in_model)
    xm = x[:, model_idx]
    model_attrs = attrs.iloc[model_idx]

    rng = np.random.default_rng(seed)
    if n_cells > n_step1_cells:
        cells_step1 = np.sort(rng.choice(n_cells, size=n_step1_cells, replace=False))
    else:
        cells_step1 = np.arange(n_cells)
    if step1_genes is None:
        detected_step1 = np.diff(xm[cells_step1].tocsc().indptr) >= MIN_CELLS
        overdispersed = (model_attrs["variance"].to_numpy() > model_attrs["amean"].to_numpy())
        candidates = np.flatnonzero(detected_step1 & overdispersed)
        if len(candidates) < 3:
            raise DataError(f"only {len(candidates)} genes are over-dispersed (variance > mean); "
                            "the step-1 fit needs at least 3")
        lg = model_attrs["log10_gmean"].to_numpy()
        step1_pos = candidates[draw_step1_genes(lg[candidates], n_step1_genes, rng)]
    else:
        model_pos = np.full(n_genes, -1)
        model_pos[model_idx] = np.arange(n_model)
        step1_pos = model_pos[_step1_positions(names, in_model, step1_genes)]
    y1 = xm[cells_step1][:, step1_pos].tocsc()
    empty = np.diff(y1.indptr) == 0
    if empty.any():
        raise DataError(f"{int(empty.sum())} step-1 genes have no counts in the step-1 cells, "
                        f"e.g. {list(model_attrs.index[step1_pos[empty]][:5])}")
    step1 = fit_step1(y1, umi[cells_step1], bin_size=BIN_SIZE)

    mean_cell_sum = float(np.asarray(xm.sum(axis=1)).mean())
    params, run = regularised_model(model_attrs, step1_pos, step1.theta, step1.beta0, mean_cell_sum)
    min_var = min_variance(xm)
    clip_vst = math.sqrt(n_cells)
    log10_umi = np.log10(umi)
    res_mean, res_var = residual_moments(xm, log10_umi, params["theta"].to_numpy(),
                                         params["beta0"].to_numpy(), params["beta1"].to_numpy(),
                                         min_var, clip_vst)
    params["residual_mean"] = res_mean
    params["residual_variance"] = res_var
    genes = attrs.assign(in_model=in_model).join(params)
    genes["step1"] = genes["step1"].fillna(-1).astype(np.int64)
    genes["step1_outlier"] = genes["step1_outlier"].astype("boolean").fillna(False).astype(bool)
    genes["poisson_gene"] = genes["poisson_gene"].astype("boolean").fillna(False).astype(bool)
    run = {
        "n_cells": n_cells, "n_genes_input": n_genes, "n_genes_model": n_model,
        "n_cells_step1": len(cells_step1), **run, "min_var": min_var, "clip_vst": clip_vst,
        "clip_sct": math.sqrt(n_cells / FEATURE_CLIP_DIVISOR), "seed": seed,
    }
    log.info("SCTransform model: %d cells, %d genes in, %d modelled, %d Poisson, %d step-1 genes "
             "(%d outliers), bandwidth %.4g, min_var %.4g",
             n_cells, n_genes, n_model, run["n_poisson_genes"], run["n_step1_genes"],
             run["n_step1_outliers"], run["bw_regularisation"], min_var)
    return SCTModel(genes=genes, run=run, umi=umi, cells_step1=cells_step1)


def _counts_csc(x: sp.spmatrix | sp.sparray | np.ndarray) -> sp.csc_matrix:
    """Validated integer counts (cells x genes) as CSC without explicit zeros."""
    return to_integer_csr(x, "count matrix").tocsc()


def _check_umi(umi: np.ndarray, row_sums: np.ndarray) -> None:
    """DataError unless umi is finite, positive and at least the counts it should include."""
    if umi.shape != row_sums.shape:
        raise DataError(f"library sizes have shape {umi.shape}, expected ({len(row_sums)},)")
    if not np.isfinite(umi).all():
        raise DataError("library sizes contain NaN or infinite values")
    if (umi <= 0).any():
        raise DataError(f"{int((umi <= 0).sum())} cells have library size 0; remove empty cells first")
    short = umi < row_sums * (1.0 - 1e-9)
    if short.any():
        raise DataError(f"{int(short.sum())} cells have a library size below their counts over the "
                        "given genes; the depth must cover all input genes (taken before gene filters)")


def _library_sizes(adata: ad.AnnData, depth_key: str | None) -> np.ndarray | None:
    """``adata.obs[depth_key]`` as float64 (None without a key); DataError if the column is missing."""
    if depth_key is None:
        return None
    if depth_key not in adata.obs:
        raise DataError(f"obs has no column '{depth_key}' with library sizes")
    return pd.to_numeric(adata.obs[depth_key], errors="coerce").to_numpy(dtype=np.float64)


def sctransform(adata: ad.AnnData, n_genes: int = 1000, *, step1_genes: Sequence[str] | None = None,
                residual_features: Sequence[str] | None = None, seed: int = DEFAULT_SEED,
                depth_key: str | None = None) -> ad.AnnData:
    """Seurat ``SCTransform(vst.flavor = "v2", variable.features.n = n_genes)`` features of ``adata``.

    ``adata``: cells x genes, raw integer counts in X (CSR preferred), unique var_names.
    ``n_genes``: number of variable genes (all modelled genes if there are fewer).
    ``step1_genes``: ordered step-1 gene list used instead of the random draw (bins follow its order).
    ``residual_features``: ordered genes whose residuals are returned instead of the variable genes
    (Seurat's ``residual.features``), see :func:`model_features`.
    ``seed``: seeds the step-1 cell subsample and gene draw (same seed, same result).
    ``depth_key``: obs column with each cell's library size over all input genes (see the module
    docstring); default: the row sums of X, which is Seurat's umi for this matrix.

    Returns :func:`model_features`' AnnData; ``uns["sctransform"]["library_size"]`` says which library
    size was used. Raises :class:`DataError` for bad input.
    """
    model = fit_model(adata.X, adata.var_names, umi=_library_sizes(adata, depth_key),
                      step1_genes=step1_genes, seed=seed)
    out = model_features(adata, model, n_genes=n_genes, residual_features=residual_features)
    out.uns["sctransform"]["library_size"] = (f"obs['{depth_key}']" if depth_key is not None
                                              else "row sums of X")
    return out


def select_features(model: SCTModel, n_genes: int = 1000,
                    residual_features: Sequence[str] | None = None) -> tuple[pd.Index, list[str]]:
    """The genes whose residuals become features, and the residual_features dropped for lack of a model.

    Without ``residual_features``: the ``n_genes`` modelled genes of highest residual variance, in
    decreasing order (all modelled genes if fewer). With it: those genes in the given order; unknown
    or repeated genes raise :class:`DataError`, genes detected in fewer than 5 cells (no model, so no
    residuals, as in sctransform) are dropped with a warning.
    """
    if n_genes < 1:
        raise DataError(f"n_genes must be >= 1, got {n_genes}")
    genes = model.genes
    modelled = genes.index[genes["in_model"].to_numpy()]
    if residual_features is None:
        rv = genes.loc[modelled, "residual_variance"].to_numpy()
        return modelled[rank_by_residual_variance(rv)[:n_genes]], []
    wanted = pd.Index([str(g) for g in residual_features])
    if wanted.has_duplicates:
        raise DataError(f"residual_features repeats genes: {list(wanted[wanted.duplicated()][:5])}")
    unknown = ~wanted.isin(genes.index)
    if unknown.any():
        raise DataError(f"residual_features names {int(unknown.sum())} genes not in the data, "
                        f"e.g. {list(wanted[unknown][:5])}")
    no_model = ~wanted.isin(modelled)
    dropped = list(wanted[no_model])
    if dropped:
        log.warning("residual_features: %d genes are detected in fewer than %d cells and have no model; "
                    "dropped, e.g. %s", len(dropped), MIN_CELLS, dropped[:5])
    if no_model.all():
        raise DataError(f"none of the residual_features is detected in >= {MIN_CELLS} cells")
    return wanted[~no_model], dropped


def model_features(adata: ad.AnnData, model: SCTModel, n_genes: int = 1000,
                   residual_features: Sequence[str] | None = None) -> ad.AnnData:
    """Seurat's scale.data for a fitted ``model`` of ``adata`` (the same cells and genes), as AnnData.

    Genes are chosen by :func:`select_features`. X: cells x genes float32 (computed in float64):
    residuals clipped to +-sqrt(n/30), then centred per gene. ``var``: the model per gene (theta,
    beta0, beta1, residual_mean, residual_variance, log10_gmean, amean, variance, n_cells_detected,
    poisson_gene, step1 draw position, ...) and ``variable_rank`` (1 = highest residual variance among
    the modelled genes). ``obs``: the input obs plus ``sct_umi`` (library size used). ``uns["sctransform"]``:
    the run values, the step-1 genes in draw order and the dropped residual_features.
    """
    selected, dropped = select_features(model, n_genes, residual_features)
    genes, run = model.genes, model.run
    modelled = genes[genes["in_model"]]
    ranking = modelled.index[rank_by_residual_variance(modelled["residual_variance"].to_numpy())]
    variable_rank = pd.Series(np.arange(1, len(ranking) + 1), index=ranking)
    sel = genes.loc[selected]
    theta, beta0, beta1 = (sel[c].to_numpy() for c in ("theta", "beta0", "beta1"))
    counts = _counts_csc(adata[:, selected].X)
    log10_umi = np.log10(model.umi)
    features = np.empty((adata.n_obs, len(selected)), dtype=np.float32)
    for blk in _gene_blocks(len(selected), adata.n_obs):
        y = counts[:, blk].toarray().T.astype(np.float64)
        r = residual_block(y, log10_umi, theta[blk], beta0[blk], beta1[blk], run["min_var"], run["clip_vst"])
        features[:, blk] = scale_features(r, run["clip_sct"]).T
    var = sel.drop(columns=["in_model"]).assign(variable_rank=variable_rank.loc[selected].to_numpy())
    obs = adata.obs.copy()
    obs["sct_umi"] = model.umi
    step1_draw = genes["step1"][genes["step1"] >= 0].sort_values()
    uns = {**run, "n_features": len(selected),
           "selection": "variable_genes" if residual_features is None else "residual_features",
           "step1_genes": np.asarray(step1_draw.index, dtype=str),
           "residual_features_dropped": np.asarray(dropped, dtype=str)}
    log.info("SCTransform features: %d cells x %d genes (%s), clipped to +-%.4g and centred",
             adata.n_obs, len(selected), uns["selection"], run["clip_sct"])
    return ad.AnnData(X=features, obs=obs, var=var, uns={"sctransform": uns})


def feature_file(qc: ad.AnnData, sct: ad.AnnData) -> ad.AnnData:
    """The ``features`` stage's file: the QC'd dataset (cells x all its genes) with the selection flagged.

    ``qc``: the QC'd dataset (cells x genes, raw counts in ``X``); ``sct``: :func:`sctransform`'s output for it
    (cells x selected genes). Returns a copy of ``qc`` (``X`` = counts, CSR) with, in scanpy's convention,
    ``var['highly_variable']`` (the selected genes: SCTransform's variable genes, or the given
    ``residual_features`` such as SPARK-X genes) and ``var['highly_variable_rank']`` (1..N in selection order,
    NaN for the others); the SCT model of the selected genes in ``var`` (theta, beta0, beta1, residual
    variance, ... ; NaN for the others); ``layers['residuals']``: float32 CSR holding the selected genes'
    Seurat ``scale.data`` (clipped, centred residuals) in their columns and nothing elsewhere;
    ``obs['sct_umi']`` (the library size used) and ``uns['sctransform']`` (the run values).
    """
    out = qc.copy()
    selected = sct.var_names
    pos = out.var_names.get_indexer(selected)
    if (pos < 0).any():
        raise DataError(f"{int((pos < 0).sum())} selected genes are not genes of the QC'd dataset")
    model = sct.var.drop(columns=[c for c in sct.var.columns if c in out.var.columns])
    for col in model.columns:  # unselected genes get missing values: nullable booleans and integers
        kind = model[col].dtype.kind
        values = model[col].astype("boolean" if kind == "b" else "Int64" if kind in "iu" else model[col].dtype)
        out.var[col] = values.reindex(out.var_names)
    flag = np.zeros(out.n_vars, dtype=bool)
    flag[pos] = True
    rank = np.full(out.n_vars, np.nan)
    rank[pos] = np.arange(1, len(pos) + 1)
    out.var["highly_variable"] = flag
    out.var["highly_variable_rank"] = rank
    values = np.asarray(sct.X, dtype=np.float32)
    rows = np.repeat(np.arange(out.n_obs), len(pos))
    cols = np.tile(pos, out.n_obs)
    out.layers["residuals"] = sp.csr_matrix((values.ravel(), (rows, cols)), shape=out.shape, dtype=np.float32)
    out.obs["sct_umi"] = sct.obs["sct_umi"].to_numpy()
    out.uns["sctransform"] = dict(sct.uns["sctransform"])
    return out


def selected_genes(features: ad.AnnData) -> ad.AnnData:
    """The selected genes of a :func:`feature_file` (cells x N genes, in selection order), with their
    residuals as a dense float32 ``layers['residuals']``: the gene-graph file's starting point."""
    if "highly_variable" not in features.var or "residuals" not in features.layers:
        raise DataError("not a feature file: var['highly_variable'] or layers['residuals'] is missing")
    hv = features.var.index[features.var["highly_variable"].to_numpy(dtype=bool)]
    order = hv[np.argsort(features.var.loc[hv, "highly_variable_rank"].to_numpy())]
    out = features[:, order].copy()
    out.layers["residuals"] = np.asarray(out.layers["residuals"].toarray(), dtype=np.float32)
    return out
