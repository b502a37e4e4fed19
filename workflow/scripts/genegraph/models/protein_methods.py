"""One entry point for every protein-prediction method of the pipeline: scMoGNN and its variants, scMoFormer and
its ablations, and the baselines, all on the same :class:`~genegraph.models.protein_task.ProteinTask` (same
cells, same split, same seed).

:func:`predict` returns the predictions of the task's test cells and what the method records about its run.
Budget rule (documented in the protein schema): the graph models stop early on their validation cells within
their own epoch limits; the baselines fit on the train and validation cells together and have no epochs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import DataError
from .protein_baselines import BASELINES, BaselineSettings
from .protein_task import ProteinTask, load_settings
from .scmoformer import METHODS as SCMOFORMER_METHODS
from .scmoformer import load_settings as scmoformer_settings
from .scmoformer import train_scmoformer
from .scmognn import ScMoGNNSettings, train_predict

log = logging.getLogger(__name__)

SCMOGNN_METHODS = ("scmognn", "scmognn_no_hallmark", "scmognn_inductive")
METHODS = (*SCMOGNN_METHODS, *SCMOFORMER_METHODS, *BASELINES)
#: Methods that train a network (and need a GPU at full scale); the others are the baselines.
TRAINED = (*SCMOGNN_METHODS, *SCMOFORMER_METHODS)


@dataclass
class Prediction:
    """``values`` (n_test, n_proteins) float32 in ``task.index('test')`` order; ``history`` per-epoch table
    (None for baselines); ``model`` the trained network (None for baselines); ``info`` JSON-able facts."""

    values: np.ndarray
    history: pd.DataFrame | None
    model: torch.nn.Module | None
    info: dict[str, Any]


def scmognn_settings(method: str, cfg: Mapping[str, Any]) -> ScMoGNNSettings:
    """The scMoGNN settings of ``method`` from the ``protein`` config: the ablation drops the hallmark edges,
    the inductive variant trains on the training cells' graph only."""
    s = load_settings(ScMoGNNSettings, "scmognn", cfg.get("scmognn"))
    if method == "scmognn_no_hallmark":
        s = dataclasses.replace(s, pathway=False)
    elif method == "scmognn_inductive":
        s = dataclasses.replace(s, mode="inductive")
    s.validate()
    return s


def predict(task: ProteinTask, method: str, seed: int, cfg: Mapping[str, Any],
            gene_sets: Mapping[str, Sequence[str]] | None = None, string_edges: pd.DataFrame | None = None,
            device: torch.device | str = "cpu") -> Prediction:
    """Predict the test cells of ``task`` with ``method`` (one of :data:`METHODS`) and ``seed``.

    ``cfg``: the ``protein`` config section (schema defaults fill what is missing); ``gene_sets``: hallmark
    sets (scMoGNN with hallmark edges); ``string_edges``: STRING links by gene symbol (``gene_a, gene_b,
    combined_score``; scMoFormer with priors)."""
    if method not in METHODS:
        raise DataError(f"unknown protein method {method!r}; known: {', '.join(METHODS)}")
    test = task.index("test")
    start = time.perf_counter()
    if method in BASELINES:
        fit = np.flatnonzero(task.split != "test")
        settings = load_settings(BaselineSettings, "baselines", cfg.get("baselines"))
        values = BASELINES[method](task.x[fit], task.y[fit], task.x[test], seed, settings)
        return Prediction(values, None, None, {"seconds": time.perf_counter() - start, "epochs": 0,
                                               "n_parameters": 0})
    if method in SCMOGNN_METHODS:
        s = scmognn_settings(method, cfg)
        res = train_predict(task, seed, s, gene_sets if s.pathway else None, device)
        n_parameters = sum(p.numel() for p in res.model.parameters())
        info = {"best_epoch": int(res.best_epoch), "epochs": int(len(res.history)),
                "n_pathway_edges": int(res.n_pathway_edges), "n_parameters": int(n_parameters)}
        values, history, model = res.predictions, res.history, res.model
    else:
        s = scmoformer_settings({**dict(cfg.get("scmoformer") or {}), "method": method})
        res = train_scmoformer(task, s, seed=seed, edges=string_edges if s.uses_prior else None, device=device)
        info = {"best_epoch": int(res.best_epoch), "epochs": int(len(res.history)),
                "n_parameters": int(res.n_parameters)}
        values, history, model = res.prediction[test], res.history, res.model
    info["seconds"] = time.perf_counter() - start
    log.info("%s (seed %d): %d test cells x %d proteins in %.1f s (%s)", method, seed, len(test),
             len(task.proteins), info["seconds"], info)
    return Prediction(np.asarray(values, dtype=np.float32), history, model, info)
