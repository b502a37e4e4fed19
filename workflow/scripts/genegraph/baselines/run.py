"""One entry point for every baseline: :func:`run_baseline` reads the gene graphs, trains (or computes) the
method with a seed and returns the embeddings AnnData in the train stage's layout."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import torch

from ..clustering import config_from_dict
from ..errors import DataError
from .autoencoders import train_mae, train_wsmae
from .data import binary_adjacency, config_json, embeddings_adata, graph_tensors, read_graphs
from .gnn import train_gae
from .pca import pca_embeddings
from .skipgram import train_skipgram

log = logging.getLogger(__name__)

METHODS = ("pca", "gae", "vgae", "mae", "wsmae", "gene2vec")


def _check(section: str, epochs: int, **positive: float) -> None:
    """DataError unless ``epochs`` >= 0 and every value of ``positive`` > 0."""
    if not epochs >= 0:
        raise DataError(f"baselines.{section}.epochs = {epochs!r}: must be >= 0")
    for key, value in positive.items():
        if not value > 0:
            raise DataError(f"baselines.{section}.{key} = {value!r}: must be > 0")


@dataclass(frozen=True)
class GAEConfig:
    """GAE (``baselines.gae``): epochs (paper 2000) and Adam learning rate of all layers (1e-4)."""

    epochs: int = 2000
    lr: float = 1e-4

    def validate(self) -> None:
        _check("gae", self.epochs, lr=self.lr)


@dataclass(frozen=True)
class VGAEConfig:
    """VGAE (``baselines.vgae``): epochs (paper 3000) and Adam learning rate (1e-3)."""

    epochs: int = 3000
    lr: float = 1e-3

    def validate(self) -> None:
        _check("vgae", self.epochs, lr=self.lr)


@dataclass(frozen=True)
class MAEConfig:
    """MAE / WSMAE (``baselines.mae``, ``baselines.wsmae``): epochs, encoder and decoder learning rates,
    share of feature entries masked at each step. Defaults: MAE's (1000 epochs, 5e-4, 5e-4; the authors'
    decoder rate is moot since they never stepped it)."""

    epochs: int = 1000
    lr_enc: float = 5e-4
    lr_dec: float = 5e-4
    mask_frac: float = 0.25

    def validate(self) -> None:
        _check("mae/wsmae", self.epochs, lr_enc=self.lr_enc, lr_dec=self.lr_dec)
        if not 0 <= self.mask_frac < 1:
            raise DataError(f"baselines mask_frac = {self.mask_frac}: must lie in [0, 1)")


@dataclass(frozen=True)
class SkipGramConfig:
    """Gene2vec (``baselines.gene2vec``): epochs (gensim's 5 + 10), negatives per pair, exponent of the
    negative-sampling distribution, Adam learning rate, pairs per batch."""

    epochs: int = 15
    negative: int = 5
    ns_exponent: float = 0.75
    lr: float = 0.01
    batch_size: int = 1024

    def validate(self) -> None:
        _check("gene2vec", self.epochs, negative=self.negative, lr=self.lr, batch_size=self.batch_size)


@dataclass(frozen=True)
class BaselineConfig:
    """Baseline settings (config ``baselines.*``); dim and adjacency apply to every method."""

    dim: int = 32
    adjacency: str = "coexpr"
    gae: GAEConfig = field(default_factory=GAEConfig)
    vgae: VGAEConfig = field(default_factory=VGAEConfig)
    mae: MAEConfig = field(default_factory=MAEConfig)
    wsmae: MAEConfig = field(default_factory=lambda: MAEConfig(epochs=2000, lr_enc=1e-4, lr_dec=5e-4))
    gene2vec: SkipGramConfig = field(default_factory=SkipGramConfig)

    def validate(self) -> None:
        if self.dim < 1:
            raise DataError(f"baselines.dim = {self.dim}: must be >= 1")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> BaselineConfig:
        return config_from_dict(cls, values, "baselines")


def dataset_seed(seed: int, index: int) -> int:
    """A seed for dataset ``index`` of a run with ``seed`` (independent streams per dataset)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {str(device)!r} requested but CUDA is not available")
    return dev


def run_baseline(method: str, graph_paths: Sequence[str | Path | ad.AnnData], seed: int,
                 cfg: BaselineConfig | dict | None = None, device: str | torch.device = "cpu") -> ad.AnnData:
    """Embeddings of ``method`` (one of :data:`METHODS`) for the graphs (paths or AnnData, in this order):
    X (Σ N_i, dim) and the obs of :func:`~genegraph.baselines.data.embeddings_adata`; uns ``method``,
    ``seed``, ``config`` (JSON), ``losses`` (per-epoch mean loss; per dataset for gene2vec, (T, epochs))
    and ``train_time_s``."""
    if method not in METHODS:
        raise DataError(f"unknown baseline {method!r}; known: {', '.join(METHODS)}")
    cfg = cfg if isinstance(cfg, BaselineConfig) else BaselineConfig.from_dict(cfg)
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
    return embeddings_adata(graphs, z, method, seed, {
        "config": config_json(cfg), "losses": np.asarray(losses, dtype=np.float64), "train_time_s": elapsed})
