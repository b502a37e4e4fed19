"""Scores of an imputed expression matrix against held-out ground truth (spec §4.3).

* ``rmse``, ``pearson``, ``cosine``: over the pooled held-out entries -- all genes and cells together, not
  per gene -- in log-normalised space (the truth normalised with the unmasked library size). A constant
  prediction (the ``raw`` baseline predicts 0 everywhere it was masked) has no Pearson correlation and a
  zero prediction no cosine: both are NaN then.
* ``gene_pearson_median``: the Pearson correlation over the held-out entries of each gene, median over the
  genes where it is defined (at least 3 entries, non-constant prediction and truth).
* the clustering check: the imputed matrix -> PCA-10 -> kNN (correlation distance) -> Leiden sweep to the
  number of labels -> NMI, ARI (:func:`genegraph.evaluate.cell_embedding.sweep_clustering_scores`).
* :func:`summarise`: mean and sample standard deviation over seeds.

The held-out entries are given by any object with ``rows``, ``cols`` (m,) int and ``truth`` (m,) float
attributes (:class:`genegraph.models.spaformer.holdout.HeldOut`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anndata as ad
import numpy as np
import pandas as pd
import torch

from ..config import settings
from ..errors import DataError
from ..models.spaformer import HeldOut, Imputation, ImputationSettings, impute, prepare
from .cell_embedding import LeidenSweep, sweep_clustering_scores
from .seeds import over_seeds

log = logging.getLogger(__name__)

METRICS = ("rmse", "pearson", "cosine", "gene_pearson_median")


@dataclass(frozen=True)
class ImputationEvaluationSettings:
    """``imputation.evaluation``: the methods run on the hold-out, the training seeds, the label column of the
    clustering check and its Leiden sweep (types, defaults and meanings: the config schema)."""

    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    label_key: str
    clustering: LeidenSweep


def evaluation_settings(values: Mapping[str, Any] | None = None) -> ImputationEvaluationSettings:
    """:class:`ImputationEvaluationSettings` from (part of) ``imputation.evaluation``, over the defaults."""
    return settings(ImputationEvaluationSettings, "imputation.evaluation", values)


class HeldOutEntries(Protocol):
    rows: np.ndarray
    cols: np.ndarray
    truth: np.ndarray


def heldout_values(pred: np.ndarray, heldout: HeldOutEntries) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, truth) float64 at the held-out entries of ``pred`` (cells x genes)."""
    rows, cols = np.asarray(heldout.rows), np.asarray(heldout.cols)
    outside = pred.ndim != 2 or rows.size and (rows.max() >= pred.shape[0] or cols.max() >= pred.shape[1])
    if outside:
        raise DataError(f"the prediction of shape {pred.shape} does not cover the held-out entries")
    p = np.asarray(pred[rows, cols], dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise DataError("the prediction has NaN or infinite values at held-out entries")
    return p, np.asarray(heldout.truth, dtype=np.float64)


def _pearson(p: np.ndarray, t: np.ndarray) -> float:
    pc, tc = p - p.mean(), t - t.mean()
    denom = np.sqrt(np.sum(pc * pc) * np.sum(tc * tc))
    return float(np.sum(pc * tc) / denom) if denom > 0 else float("nan")


def per_gene_pearson(p: np.ndarray, t: np.ndarray, cols: np.ndarray, n_genes: int) -> np.ndarray:
    """(n_genes,) Pearson correlation of prediction p and truth t over each gene's entries (NaN when
    undefined: fewer than 3 entries or a constant side)."""
    n = np.bincount(cols, minlength=n_genes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mp = np.bincount(cols, p, n_genes) / n
        mt = np.bincount(cols, t, n_genes) / n
        dp, dt = p - mp[cols], t - mt[cols]
        spp = np.bincount(cols, dp * dp, n_genes)
        stt = np.bincount(cols, dt * dt, n_genes)
        spt = np.bincount(cols, dp * dt, n_genes)
        r = spt / np.sqrt(spp * stt)
    r[(n < 3) | ~(spp > 0) | ~(stt > 0)] = np.nan
    return r


def imputation_scores(pred: np.ndarray, heldout: HeldOutEntries) -> dict[str, float]:
    """{rmse, pearson, cosine, gene_pearson_median} of ``pred`` (cells x genes, log-normalised)."""
    p, t = heldout_values(pred, heldout)
    if p.size == 0:
        raise DataError("no held-out entries to score")
    norm = np.sqrt(np.sum(p * p) * np.sum(t * t))
    genes = per_gene_pearson(p, t, heldout.cols, pred.shape[1])
    return {
        "rmse": float(np.sqrt(np.mean((p - t) ** 2))),
        "pearson": _pearson(p, t),
        "cosine": float(np.sum(p * t) / norm) if norm > 0 else float("nan"),
        "gene_pearson_median": float(np.median(genes[np.isfinite(genes)])) if np.isfinite(genes).any()
        else float("nan"),
    }


def clustering_check(pred: np.ndarray, labels, sweep: LeidenSweep) -> dict[str, float]:
    """{nmi, ari, n_clusters, resolution} of the imputed matrix against the labels."""
    return sweep_clustering_scores(pred, labels, sweep)


@dataclass(frozen=True)
class BenchmarkRun:
    """One seed of the benchmark: the hold-out, each method's imputation and a score table (one row per
    method: seed, method, rmse, pearson, cosine, gene_pearson_median[, nmi, ari, n_clusters], seconds)."""

    seed: int
    heldout: HeldOut
    imputations: dict[str, Imputation]
    scores: pd.DataFrame


def benchmark_seed(adata: ad.AnnData, settings: ImputationSettings, evaluation: ImputationEvaluationSettings,
                   seed: int, device: torch.device | None = None,
                   methods: tuple[str, ...] | None = None) -> BenchmarkRun:
    """Hold out (with ``seed``), impute with each method (trained with ``seed``), score: the whole protocol in
    one process, for interactive use; the pipeline runs the same steps as separate jobs."""
    data, inp, heldout = prepare(adata, settings, seed)
    key = evaluation.label_key
    labels = data.obs[key].to_numpy() if key in data.obs else None
    rows, imputations = [], {}
    for method in methods or evaluation.methods:
        result = impute(inp, method, settings, seed, device)
        imputations[method] = result
        row = {"seed": seed, "method": method, **imputation_scores(result.expression, heldout)}
        if labels is not None:
            row.update(clustering_check(result.expression, labels, evaluation.clustering))
        row.update({k: v for k, v in result.info.items() if k in ("epochs", "best_epoch", "seconds")})
        rows.append(row)
        log.info("seed %d %s: rmse %.4f pearson %.4f", seed, method, row["rmse"], row["pearson"])
    return BenchmarkRun(seed, heldout, imputations, pd.DataFrame(rows))


def benchmark(adata: ad.AnnData, settings: ImputationSettings, evaluation: ImputationEvaluationSettings,
              device: torch.device | None = None, methods: tuple[str, ...] | None = None,
              seeds: tuple[int, ...] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores: one row per seed x method, summary: mean and sd over seeds per method)."""
    runs = [benchmark_seed(adata, settings, evaluation, s, device, methods).scores
            for s in (seeds if seeds is not None else evaluation.seeds)]
    scores = pd.concat(runs, ignore_index=True)
    metrics = [c for c in scores.columns if c not in ("seed", "method", "best_epoch", "resolution")]
    return scores, over_seeds(scores, ("method",), metrics)
