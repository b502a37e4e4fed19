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
from genegraph.graphs.io import adjacency as edge_type
from genegraph.graphs.io import genes
from genegraph.models.baselines.autoencoders import train_mae, train_wsmae
from genegraph.models.baselines.data import binary_adjacency, graph_tensors, read_graphs
from genegraph.models.baselines.gnn import train_gae
from genegraph.models.baselines.pca import pca_embeddings
from genegraph.models.baselines.skipgram import gene2vec, giant
from genegraph.models.embeddings import embedding_rows, embeddings_adata

log = logging.getLogger(__name__)

METHODS = ("pca", "gae", "vgae", "mae", "wsmae", "gene2vec", "giant")


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
    embed: str


@dataclass(frozen=True)
class Gene2vecSettings:
    """``baselines.gene2vec``: gensim's epochs in the constructor, the notebook's extra epochs, negatives."""

    epochs: int
    extra_epochs: int
    negative: int


@dataclass(frozen=True)
class GiantSettings:
    """``baselines.giant``: the functional network (with STRING edges or not) and node2vec's walks and
    skip-gram."""

    use_string: bool
    walks_per_gene: int
    walk_length: int
    window: int
    epochs: int
    negative: int


@dataclass(frozen=True)
class BaselineSettings:
    """The config section ``baselines`` without its run-level keys (device, threads); ``dim`` and ``adjacency``
    apply to every method. Types, defaults (the paper's epochs) and meanings: the config schema."""

    dim: int
    adjacency: str
    budget: str
    gae: GAESettings
    vgae: GAESettings
    mae: MAESettings
    wsmae: MAESettings
    gene2vec: Gene2vecSettings
    giant: GiantSettings


#: Keys of the config section ``baselines`` that :class:`BaselineSettings` does not carry.
RUN_KEYS = ("device", "threads")


def baseline_settings(values: dict[str, Any] | None = None) -> BaselineSettings:
    """:class:`BaselineSettings` from (part of) the config section ``baselines``, over the schema's defaults."""
    return settings(BaselineSettings, "baselines", values, omit=RUN_KEYS)


def with_budget(cfg: BaselineSettings, equal_epochs: int | None) -> BaselineSettings:
    """``cfg`` under its budget rule: ``equal`` gives GAE, VGAE, MAE and WSMAE the ``equal_epochs`` of MuSe-GNN
    (one full-batch step per graph per epoch, as MuSe-GNN takes), ``paper`` keeps each method's own epochs."""
    if cfg.budget != "equal" or equal_epochs is None:
        return cfg
    same = {m: dataclasses.replace(getattr(cfg, m), epochs=int(equal_epochs)) for m in ("gae", "vgae", "mae", "wsmae")}
    return dataclasses.replace(cfg, **same)


def epochs_of(method: str, cfg: BaselineSettings) -> int:
    """The training budget of ``method`` in epochs (gensim methods: their Word2Vec epochs; PCA: 0)."""
    if method in ("gae", "vgae", "mae", "wsmae"):
        return int(getattr(cfg, method).epochs)
    if method == "gene2vec":
        return cfg.gene2vec.epochs + cfg.gene2vec.extra_epochs
    return cfg.giant.epochs if method == "giant" else 0


def dataset_seed(seed: int, index: int) -> int:
    """A seed for dataset ``index`` of a run with ``seed`` (independent streams per dataset)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def run_baseline(method: str, graph_paths: Sequence[str | Path | ad.AnnData], seed: int,
                 cfg: BaselineSettings | dict | None = None, device: str | torch.device = "cpu",
                 group: str = "all", equal_epochs: int | None = None) -> ad.AnnData:
    """Embeddings of ``method`` (one of :data:`METHODS`) for the graphs (paths or AnnData, in this order):
    the embeddings file of :mod:`genegraph.models.embeddings` (share keys ``modality_tissue``); uns ``method``,
    ``seed``, ``config`` (JSON), ``losses`` (per-epoch mean loss; per dataset for gene2vec, (T, epochs))
    and ``train_time_s``."""
    if method not in METHODS:
        raise DataError(f"unknown baseline {method!r}; known: {', '.join(METHODS)}")
    cfg = cfg if isinstance(cfg, BaselineSettings) else baseline_settings(cfg)
    cfg = with_budget(cfg, equal_epochs)
    graphs = read_graphs(graph_paths, cfg.adjacency)
    dev = resolve_device(device)
    start = time.perf_counter()
    dim = cfg.dim
    if method == "pca":
        z, losses, n_parameters = pca_embeddings(graphs, dim), [], 0
    elif method == "gene2vec":
        g2v = cfg.gene2vec
        z = [gene2vec(binary_adjacency(g, cfg.adjacency), genes(g), dataset_seed(seed, i), dim, g2v.epochs,
                      g2v.extra_epochs, g2v.negative) for i, g in enumerate(graphs)]
        losses, n_parameters = [], 2 * dim * sum(g.n_vars for g in graphs)  # input and output vectors
    elif method == "giant":
        gi = cfg.giant
        strings = [edge_type(g, "string") for g in graphs] if gi.use_string else None
        z = giant([binary_adjacency(g, cfg.adjacency) for g in graphs], [genes(g) for g in graphs], seed, dim,
                  strings, gi.walks_per_gene, gi.walk_length, gi.window, gi.epochs, gi.negative)
        losses = []
        n_parameters = 2 * dim * len(set(np.concatenate([genes(g) for g in graphs])))
    else:
        tensors = [graph_tensors(g, cfg.adjacency, dev) for g in graphs]
        if method in ("gae", "vgae"):
            c = cfg.gae if method == "gae" else cfg.vgae
            z, losses, n_parameters = train_gae(tensors, seed, c.epochs, c.lr, dim, variational=method == "vgae")
        else:
            c = cfg.mae if method == "mae" else cfg.wsmae
            train = train_mae if method == "mae" else train_wsmae
            z, losses, n_parameters = train(tensors, seed, c.epochs, c.lr_enc, c.lr_dec, c.mask_frac, dim, c.embed)
    elapsed = time.perf_counter() - start
    log.info("%s (seed %d) on %d graphs: %.1f s", method, seed, len(graphs), elapsed)
    metas = [dict(g.uns["dataset"]) for g in graphs]
    rows = embedding_rows(metas, [genes(g) for g in graphs], [f"{m['modality']}_{m['tissue']}" for m in metas], group)
    return embeddings_adata(rows, np.concatenate(z), {
        "method": method, "seed": int(seed), "config": json.dumps(dataclasses.asdict(cfg), sort_keys=True),
        "losses": np.asarray(losses, dtype=np.float64), "train_time_s": elapsed,
        "epochs": epochs_of(method, cfg), "n_parameters": int(n_parameters)})
