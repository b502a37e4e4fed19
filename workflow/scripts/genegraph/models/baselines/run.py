"""One entry point for every baseline: :func:`run_baseline` reads the gene graphs, trains (or computes) the
method with a seed and returns the embeddings AnnData in the train stage's layout."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import torch

from genegraph.config import settings
from genegraph.device import resolve_device
from genegraph.errors import DataError
from genegraph.graphs.io import genes
from genegraph.models.baselines.autoencoders import train_mae, train_wsmae
from genegraph.models.baselines.data import binary_adjacency, graph_tensors, read_graphs
from genegraph.models.baselines.gnn import train_gae
from genegraph.models.baselines.pca import pca_embeddings
from genegraph.models.baselines.skipgram import train_skipgram
from genegraph.models.embeddings import embedding_rows, embeddings_adata

log = logging.getLogger(__name__)

METHODS = ("pca", "gae", "vgae", "mae", "wsmae", "gene2vec")


@dataclass(frozen=True)
class GAESettings:
    """``baselines.gae`` / ``baselines.vgae``: epochs and the Adam learning rate of all layers."""

    epochs: int
    lr: float


@dataclass(frozen=True)
class MAESettings:
    """``baselines.mae`` / ``baselines.wsmae``: epochs, encoder and decoder learning rates, share of feature
    entries masked at each step."""

    epochs: int
    lr_enc: float
    lr_dec: float
    mask_frac: float


@dataclass(frozen=True)
class SkipGramSettings:
    """``baselines.gene2vec``: epochs, negatives per pair, exponent of the negative-sampling distribution, Adam
    learning rate, pairs per batch."""

    epochs: int
    negative: int
    ns_exponent: float
    lr: float
    batch_size: int


@dataclass(frozen=True)
class BaselineSettings:
    """The config section ``baselines`` without its run-level keys (device, threads); ``dim`` and ``adjacency``
    apply to every method. Types, defaults (the paper's epochs) and meanings: the config schema."""

    dim: int
    adjacency: str
    gae: GAESettings
    vgae: GAESettings
    mae: MAESettings
    wsmae: MAESettings
    gene2vec: SkipGramSettings


#: Keys of the config section ``baselines`` that :class:`BaselineSettings` does not carry.
RUN_KEYS = ("device", "threads")


def baseline_settings(values: dict[str, Any] | None = None) -> BaselineSettings:
    """:class:`BaselineSettings` from (part of) the config section ``baselines``, over the schema's defaults."""
    return settings(BaselineSettings, "baselines", values, omit=RUN_KEYS)


def dataset_seed(seed: int, index: int) -> int:
    """A seed for dataset ``index`` of a run with ``seed`` (independent streams per dataset)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def run_baseline(method: str, graph_paths: Sequence[str | Path | ad.AnnData], seed: int,
                 cfg: BaselineSettings | dict | None = None, device: str | torch.device = "cpu") -> ad.AnnData:
    """Embeddings of ``method`` (one of :data:`METHODS`) for the graphs (paths or AnnData, in this order):
    the embeddings file of :mod:`genegraph.models.embeddings` (share keys ``modality_tissue``); uns ``method``,
    ``seed``, ``config`` (JSON), ``losses`` (per-epoch mean loss; per dataset for gene2vec, (T, epochs))
    and ``train_time_s``."""
    if method not in METHODS:
        raise DataError(f"unknown baseline {method!r}; known: {', '.join(METHODS)}")
    cfg = cfg if isinstance(cfg, BaselineSettings) else baseline_settings(cfg)
    graphs = read_graphs(graph_paths, cfg.adjacency)
    dev = resolve_device(device)
    start = time.perf_counter()
    dim = cfg.dim
    if method == "pca":
        z, losses = pca_embeddings(graphs, dim), []
    elif method == "gene2vec":
        g2v = cfg.gene2vec
        runs = [train_skipgram(binary_adjacency(g, cfg.adjacency), dataset_seed(seed, i), g2v.epochs, dim,
                               g2v.negative, g2v.ns_exponent, g2v.lr, g2v.batch_size,
                               f"Gene2vec[{g.uns['dataset']['id']}]")
                for i, g in enumerate(graphs)]
        z, losses = [r[0] for r in runs], [r[1] for r in runs]
    else:
        tensors = [graph_tensors(g, cfg.adjacency, dev) for g in graphs]
        if method in ("gae", "vgae"):
            c = cfg.gae if method == "gae" else cfg.vgae
            z, losses = train_gae(tensors, seed, c.epochs, c.lr, dim, variational=method == "vgae")
        else:
            c = cfg.mae if method == "mae" else cfg.wsmae
            train = train_mae if method == "mae" else train_wsmae
            z, losses = train(tensors, seed, c.epochs, c.lr_enc, c.lr_dec, c.mask_frac, dim)
    elapsed = time.perf_counter() - start
    log.info("%s (seed %d) on %d graphs: %.1f s", method, seed, len(graphs), elapsed)
    metas = [dict(g.uns["dataset"]) for g in graphs]
    rows = embedding_rows(metas, [genes(g) for g in graphs], [f"{m['modality']}_{m['tissue']}" for m in metas])
    return embeddings_adata(rows, np.concatenate(z), {
        "method": method, "seed": int(seed), "config": json.dumps(dataclasses.asdict(cfg), sort_keys=True),
        "losses": np.asarray(losses, dtype=np.float64), "train_time_s": elapsed})
