"""CellPLM's four downstream tasks as benchmarks: on one held-out dataset and seed, the pre-trained model, the
same architecture from scratch (tasks that fine-tune) and the baselines, on one split, scored by the task
modules of this package. Each function returns tidy rows: ``method`` plus the task's metrics.

Budget rule: the pre-trained and the from-scratch arms fine-tune with the same settings (epochs, early stopping
on the same validation entries or cells); the baselines have no training budget.
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import torch

from genegraph.errors import DataError
from genegraph.evaluate.annotation import annotation_metrics
from genegraph.evaluate.cell_embedding import embedding_scores
from genegraph.evaluate.denoising import denoising_metrics
from genegraph.evaluate.imputation import imputation_scores
from genegraph.models.cellplm import (
    CellPLM,
    CellPLMSettings,
    annotate_cellplm,
    annotation_split,
    denoise_cellplm,
    denoising_split,
    embed_cells,
    fresh_model,
    impute_spatial_input,
    restrict_to_vocabulary,
)
from genegraph.models.cellplm import baselines as bl
from genegraph.models.cellplm.vocab import count_matrix
from genegraph.models.spaformer import read_heldout, spatial_input

Row = dict[str, Any]


def _batch_key(adata: ad.AnnData) -> str | None:
    return "batch" if "batch" in adata.obs and adata.obs["batch"].nunique() > 1 else None


def embedding_task(model: CellPLM, adata: ad.AnnData, seed: int, label_key: str,
                   device: torch.device) -> tuple[list[Row], dict[str, np.ndarray]]:
    """Zero-shot embeddings of CellPLM, of the untrained model and PCA; scored against ``obs[label_key]`` when
    the dataset has labels (else only the embeddings are returned)."""
    batch = _batch_key(adata)
    z = {"cellplm": embed_cells(model, adata, batch_key=batch, device=device),
         "cellplm_untrained": embed_cells(fresh_model(model.settings, model.vocab, seed), adata, batch_key=batch,
                                          device=device),
         "pca": bl.pca_embedding(count_matrix(adata), 50, 2000, seed)}
    rows: list[Row] = []
    if label_key in adata.obs and adata.obs[label_key].nunique() > 1:
        labels = adata.obs[label_key].astype(str).to_numpy()
        groups = adata.obs["batch"].astype(str).to_numpy() if batch else None
        rows = [{"method": m, **embedding_scores(x, labels, groups, seed=seed)} for m, x in z.items()]
    return rows, z


def denoising_task(model: CellPLM, adata: ad.AnnData, s: CellPLMSettings, seed: int,
                   device: torch.device) -> list[Row]:
    """DeepImpute hold-out of ``adata``'s counts (vocabulary genes): CellPLM fine-tuned, zero-shot and from
    scratch, the masked input itself (raw) and kNN smoothing; RMSE / MAE on the log-normalised held-out
    entries."""
    d = s.denoising
    data = restrict_to_vocabulary(adata, model.vocab)
    split = denoising_split(count_matrix(data), d, seed)
    truth = split.truth(split.test, d.target_sum)
    batch = _batch_key(data)
    arms = {"cellplm": (model, True), "cellplm_zero_shot": (model, False),
            "cellplm_scratch": (fresh_model(model.settings, model.vocab, seed), True)}
    rows = []
    for name, (m, tune) in arms.items():
        pred = denoise_cellplm(m, data, split, d, fine_tune_model=tune, device=device, seed=seed, batch_key=batch)
        rows.append({"method": name, **denoising_metrics(truth, pred.test),
                     "epochs": 0 if pred.history is None else len(pred.history)})
    rows_, cols = split.test.rows, split.test.cols
    rows.append({"method": "raw", **denoising_metrics(truth, bl.raw_prediction(split.observed, rows_, cols,
                                                                                 d.target_sum))})
    knn = bl.knn_smooth(split.observed, rows_, cols, d.target_sum, d.knn_neighbors, d.knn_pcs, seed)
    rows.append({"method": "knn_smooth", **denoising_metrics(truth, knn)})
    return rows


def annotation_task(model: CellPLM, adata: ad.AnnData, s: CellPLMSettings, seed: int, label_key: str,
                    device: torch.device) -> list[Row]:
    """Stratified split of the labelled cells: CellPLM fine-tuned with a classification head, the same from
    scratch, PCA + logistic regression and a CellTypist-style classifier; macro F1 etc. on the test cells. No
    rows when ``obs[label_key]`` has fewer than two labels."""
    a = s.annotation
    if label_key not in adata.obs or adata.obs[label_key].nunique() < 2:
        return []  # nothing to annotate against
    known = adata.obs[label_key].notna().to_numpy()
    data = adata[known].copy()
    labels = data.obs[label_key].astype(str).to_numpy()
    sp_ = annotation_split(labels, a.test_fraction, a.val_fraction, seed)
    batch = _batch_key(data)
    counts = count_matrix(data)
    fit = np.sort(np.concatenate([sp_.train, sp_.val]))
    preds = {
        "cellplm": annotate_cellplm(model, data, labels, sp_, a, device, seed, batch_key=batch).labels,
        "cellplm_scratch": annotate_cellplm(fresh_model(model.settings, model.vocab, seed), data, labels, sp_, a,
                                            device, seed, batch_key=batch).labels,
        "pca_logistic": bl.pca_logistic(counts, labels, fit, a.n_top_genes, a.pca_components, a.logistic_c, seed),
        "celltypist_style": bl.celltypist_style(counts, labels, fit, a.n_top_genes, a.logistic_c, seed),
    }
    return [{"method": m, **annotation_metrics(labels[sp_.test], p[sp_.test])} for m, p in preds.items()]


def imputation_task(model: CellPLM, mask: ad.AnnData, s: CellPLMSettings, spatial_settings, seed: int,
                    device: torch.device) -> list[Row]:
    """CellPLM (pre-trained and from scratch) fine-tuned on the imputation stage's masked counts of a spatial
    dataset, scored on its held-out entries like SpaFormer. ``spatial_settings``: the imputation stage's
    spatial-graph settings (they define the sections)."""
    scale = float(mask.uns["mask"]["scale"])
    if scale != s.imputation.target_sum:
        raise DataError(f"the imputation hold-out is scored at scale {scale:g}, CellPLM predicts at "
                        f"cellplm.imputation.target_sum = {s.imputation.target_sum:g}: make them equal")
    inp = spatial_input(mask, mask.X, scale, spatial_settings)
    genes = [str(g).upper() for g in mask.var_names]
    heldout = read_heldout(mask)
    rows = []
    for name, m in (("cellplm", model), ("cellplm_scratch", fresh_model(model.settings, model.vocab, seed))):
        pred = impute_spatial_input(m, inp, genes, s.imputation, True, device, seed)
        rows.append({"method": name, **imputation_scores(pred.values, heldout),
                     "epochs": 0 if pred.history is None else len(pred.history)})
    return rows
