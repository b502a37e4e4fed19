"""Entry points: impute with one method, prepare the hold-out input, impute a dataset for use.

:func:`prepare` selects genes, draws the hold-out from its seed and builds the :class:`~.data.SpatialInput`
from the **masked** counts only; that -- never the AnnData -- is what every method gets. Scoring lives in
:mod:`genegraph.evaluate.imputation`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from ...errors import DataError
from . import baselines
from .data import SpatialInput, select_genes, spatial_input
from .holdout import HeldOut, hold_out
from .settings import ImputationSettings
from .train import Fitted, fit, predict

log = logging.getLogger(__name__)

METHODS = ("spaformer", "spaformer_mlp", "raw", "knn_smooth")


@dataclass(frozen=True)
class Imputation:
    """``expression`` (n, g) float32 log-normalised prediction; ``latent`` (n, latent) or None; ``info``
    (epochs, best_epoch, validation, val_rmse, seconds, n_parameters for the SpaFormer methods); ``fitted``
    the trained model and its per-epoch history (SpaFormer methods)."""

    method: str
    expression: np.ndarray
    latent: np.ndarray | None
    info: dict
    fitted: Fitted | None = None


def method_settings(settings: ImputationSettings, method: str) -> ImputationSettings:
    """The settings ``method`` runs with: ``spaformer_mlp`` is ``spaformer`` with ``model.encoder = "mlp"``."""
    if method == "spaformer_mlp":
        return dataclasses.replace(settings, model=dataclasses.replace(settings.model, encoder="mlp"))
    return settings


def impute(inp: SpatialInput, method: str, settings: ImputationSettings, seed: int,
           device: torch.device | None = None) -> Imputation:
    """Run ``method`` (one of :data:`METHODS`) on the masked input."""
    if method not in METHODS:
        raise DataError(f"unknown imputation method {method!r} (known: {', '.join(METHODS)})")
    if method == "raw":
        return Imputation(method, baselines.raw(inp), None, {})
    if method == "knn_smooth":
        return Imputation(method, baselines.knn_smooth(inp, settings.knn_smooth), None, {})
    fitted = fit(inp, method_settings(settings, method), seed, device or torch.device("cpu"))
    expression, latent = predict(fitted, inp.shape)
    best = fitted.history[fitted.best_epoch] if fitted.best_epoch >= 0 else fitted.history[-1]
    info = {"epochs": len(fitted.history), "best_epoch": fitted.best_epoch, "validation": fitted.validation,
            "val_rmse": best.get("val_rmse", float("nan")), "seconds": fitted.seconds,
            "n_parameters": fitted.n_parameters}
    return Imputation(method, expression, latent, info, fitted)


def check_counts(adata: ad.AnnData) -> sp.csr_matrix:
    """``adata.X`` as CSR; DataError unless it holds finite, non-negative counts."""
    x = sp.csr_matrix(adata.X)
    if x.data.size and (not np.all(np.isfinite(x.data)) or x.data.min() < 0):
        raise DataError("X must hold raw counts (finite, non-negative)")
    return x


def prepare(adata: ad.AnnData, settings: ImputationSettings, seed: int
            ) -> tuple[ad.AnnData, SpatialInput, HeldOut]:
    """(the gene-selected dataset, the masked input every method gets, the held-out ground truth)."""
    data = select_genes(adata, settings.genes)
    masked, heldout = hold_out(check_counts(data), settings.mask.fraction, seed, settings.normalise.scale)
    return data, spatial_input(data, masked, settings.normalise.scale, settings.spatial), heldout


def impute_adata(adata: ad.AnnData, settings: ImputationSettings, method: str = "spaformer", seed: int = 0,
                 device: torch.device | None = None) -> ad.AnnData:
    """Impute the whole dataset (no hold-out): cells x selected genes with ``X`` the imputed log-normalised
    expression (float32), ``obsm['X_<method>']`` the latent (SpaFormer methods), ``obsm['spatial']`` and
    ``uns['imputation']`` (method, seed, training record)."""
    data = select_genes(adata, settings.genes)
    inp = spatial_input(data, check_counts(data), settings.normalise.scale, settings.spatial)
    result = impute(inp, method, settings, seed, device)
    out = ad.AnnData(result.expression, obs=data.obs.copy(), var=data.var.copy())
    out.obsm["spatial"] = np.asarray(data.obsm["spatial"])
    if result.latent is not None:
        out.obsm[f"X_{method}"] = result.latent
    out.uns["imputation"] = {"method": method, "seed": seed, **result.info}
    return out
