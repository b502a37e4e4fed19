"""Training and prediction of scMoGNN on a :class:`~genegraph.models.protein_task.ProteinTask` (spec §2.5).

Full batch: every epoch is one forward pass over the whole graph, MSE on the 'train' cells, one AdamW step,
then the validation RMSE (predictions ReLU'd, as the reference's ``score``) on the 'val' cells. The
reference's schedule: lr × ``lr_decay`` on epochs divisible by ``lr_decay_every`` once the epoch exceeds
``lr_decay_after``; stop once the epoch exceeds ``early_stopping_after`` when the best validation RMSE of the
last ``patience`` epochs is worse than the best so far. With ``restore_best`` the weights of the best
validation epoch predict the test cells (the model the reference reports).

Modes: ``transductive`` (default): one graph with every cell; the test cells' RNA is in it, their proteins are
never read (the method sees :meth:`ProteinTask.masked_y`). ``inductive``: training runs on the graph of the
non-test cells; the test cells are predicted on the graph of all cells. Pathway weights come from the
non-test cells in both modes; batch statistics from all cells of the batch.

Determinism: the global torch generator is forked and seeded with ``seed`` for the run (initialisation,
dropout, edge dropout), so the same seed gives the same predictions on CPU.

Deviations from DANCE: pathway edges are on by default (DANCE's ``-npw`` flag enables them and its GEX->ADT
command omits it); the pathway is built fresh every run (no stale pickle cache); normalised values are never
cast to int; results come back as arrays/DataFrames (no ``DataFrame.append``).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ...errors import DataError
from ..protein_task import ProteinTask
from .graph import batch_statistics, build_graph, pathway_edges, svd_cell_init
from .model import ScMoGNN, ScMoGNNSettings

log = logging.getLogger(__name__)


@dataclass
class ScMoGNNResult:
    """``predictions`` (n_test_cells, n_proteins) float32 in the order of ``task.index('test')``;
    ``history``: one row per epoch (epoch, train_rmse, val_rmse, lr, seconds); ``best_epoch``;
    ``n_pathway_edges``; ``model``: the trained network (best weights when ``restore_best``)."""

    predictions: np.ndarray
    history: pd.DataFrame
    best_epoch: int
    n_pathway_edges: int
    model: ScMoGNN


def _rng_devices(device: torch.device) -> list[int]:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def train_predict(
    task: ProteinTask, seed: int, settings: ScMoGNNSettings,
    gene_sets: Mapping[str, Sequence[str]] | None = None, device: torch.device | str = "cpu",
) -> ScMoGNNResult:
    """Fit scMoGNN on the task's train cells (validation on 'val') and predict its test cells.

    ``gene_sets``: hallmark sets, name -> gene symbols (needed when ``settings.pathway``)."""
    device = torch.device(device)
    train, val, test = task.index("train"), task.index("val"), task.index("test")
    if len(train) == 0 or len(val) == 0 or len(test) == 0:
        raise DataError(f"scMoGNN needs train, val and test cells (got {len(train)}, {len(val)}, {len(test)})")
    if settings.pathway and gene_sets is None:
        raise DataError("scmognn.pathway is on but no gene sets were given (or set pathway: false)")
    fit = np.sort(np.concatenate([train, val]))
    y = task.masked_y()
    edges = None
    if settings.pathway:
        edges = pathway_edges(task.x[fit], task.genes, gene_sets, settings.pathway_weight,
                              settings.pathway_threshold)
    stats = batch_statistics(task.x, task.batch)
    init = svd_cell_init(task.x, fit, seed) if settings.cell_init == "svd" else None
    full = build_graph(task.x, stats, edges, init, device)
    if settings.mode == "transductive":
        graph, pos = full, np.arange(task.x.shape[0])
    elif settings.mode == "inductive":
        graph = build_graph(task.x[fit], stats[fit], edges, None if init is None else init[fit], device)
        pos = np.full(task.x.shape[0], -1)
        pos[fit] = np.arange(len(fit))
    else:
        raise DataError(f"scmognn.mode must be 'transductive' or 'inductive', not {settings.mode!r}")
    n_edges = 0 if full.pathway is None else len(edges[0])
    log.info("scMoGNN graph: %d cells x %d features, %d cell-feature edges, %d pathway edges (%s)",
             full.n_cells, full.n_features, full.feature2cell.nnz, n_edges, settings.mode)
    tr_pos = torch.as_tensor(pos[train], device=device)
    va_pos = torch.as_tensor(pos[val], device=device)
    y_train = torch.as_tensor(y[train], dtype=torch.float32, device=device)
    y_val = torch.as_tensor(y[val], dtype=torch.float32, device=device)
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = ScMoGNN(full.n_features, y.shape[1], settings, pathway=full.pathway is not None,
                        cell_init_dim=None if init is None else init.shape[1]).to(device)
        history, best_epoch, best_state = _fit(model, graph, tr_pos, va_pos, y_train, y_val, settings)
    if settings.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        pred = model(full)[torch.as_tensor(test, device=device)]
    return ScMoGNNResult(predictions=pred.cpu().numpy().astype(np.float32), history=history,
                         best_epoch=best_epoch, n_pathway_edges=n_edges, model=model)


def _fit(model: ScMoGNN, graph, tr_pos, va_pos, y_train, y_val, s: ScMoGNNSettings):
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    rows, vals = [], []
    best, best_epoch, best_state = float("inf"), -1, None
    start = time.perf_counter()
    for epoch in range(s.epochs):
        model.train()
        loss = F.mse_loss(model(graph)[tr_pos], y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            val_rmse = float(torch.sqrt(F.mse_loss(F.relu(model(graph)[va_pos]), y_val)))
        vals.append(val_rmse)
        lr = opt.param_groups[0]["lr"]
        rows.append((epoch, float(loss.detach().sqrt()), val_rmse, lr, time.perf_counter() - start))
        if val_rmse < best:
            best, best_epoch = val_rmse, epoch
            if s.restore_best:
                best_state = copy.deepcopy(model.state_dict())
        if epoch % s.log_every == 0 or epoch == s.epochs - 1:
            log.info("epoch %d: train RMSE %.4f, val RMSE %.4f (best %.4f at %d), lr %.2e, %.1f s",
                     epoch, rows[-1][1], val_rmse, best, best_epoch, lr, rows[-1][4])
        if epoch > s.early_stopping_after and s.patience > 0 and min(vals[-s.patience:]) > best:
            log.info("early stop at epoch %d (best val RMSE %.4f at epoch %d)", epoch, best, best_epoch)
            break
        if epoch > s.lr_decay_after and epoch % s.lr_decay_every == 0:
            for group in opt.param_groups:
                group["lr"] *= s.lr_decay
    history = pd.DataFrame(rows, columns=["epoch", "train_rmse", "val_rmse", "lr", "seconds"])
    return history, best_epoch, best_state
