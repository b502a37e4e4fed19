"""Training MuSe-GNN over a set of gene-graph files, resumable, with per-epoch losses, the final gene
embeddings and run metadata (spec §2.5-2.7, §6).

Entry point: :func:`train_musegnn` (called by the ``train`` rule). The schema's defaults of
:class:`TrainSettings` reproduce the authors' code (faithful mode); every improved-mode option is a switch
that defaults off.

Loop (spec §2.6): each epoch visits the graphs in file order; for graph i one optimiser step on
L = BCE_i + L_Sim(i, j) + λ_c · InfoNCE(i, j) with a partner j ≠ i drawn per step. All random draws come
from one numpy generator seeded with ``seed`` (and per-pair generators seeded with (seed, i, j)); its
state is checkpointed with the model and the optimiser, so a resumed run gives exactly the embeddings of an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from genegraph.config import settings
from genegraph.device import resolve_device
from genegraph.errors import DataError
from genegraph.graphs.io import adjacency, gene_features, read_graph
from genegraph.io import atomic_path, write_h5ad, write_json, write_tsv
from genegraph.models.embeddings import embedding_rows, embeddings_adata
from genegraph.models.musegnn.losses import bce_dense, bce_weighted, info_nce, sample_bce_pairs, similarity_loss
from genegraph.models.musegnn.model import GraphInput, MuSeGNN, cell_sketch, graph_input, musegnn_parameter_count
from genegraph.models.musegnn.pairs import (
    GeneVocabulary,
    PairIndex,
    build_vocabulary,
    pair_index,
    sample_contrast,
    self_loop_offsets,
)

log = logging.getLogger(__name__)

LOSS_COLUMNS = ("bce", "sim", "infonce", "total")


# ---------------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class ModelSettings:
    """``train.model``: sizes, block sharing, attention implementation, decoder, improved options."""

    dim: int
    heads: tuple[int, int, int]
    share_key: str
    attn_impl: str
    decoder: str
    decoder_hidden: int
    cell_sketch: int | None
    edge_types: tuple[str, ...]


@dataclass(frozen=True)
class LossSettings:
    """``train.loss``: the BCE, similarity and InfoNCE terms (spec §2.5, §6.3)."""

    lambda_c: float
    tau: float
    n_diff: int
    sim_reduction: str
    replace: bool
    resample_pos: bool
    bce: str
    bce_include_diag: bool
    neg_ratio: float
    max_pos: int | None
    disjoint_pairs: str


@dataclass(frozen=True)
class OptimSettings:
    """``train.optim``: Adam learning rates; no weight decay, no scheduler (as the code)."""

    lr_enc: float
    lr_dec: float


@dataclass(frozen=True)
class TrainSettings:
    """The config section ``train`` without its run-level keys (seeds, device, threads), which the rule passes
    apart. Types, defaults (the authors' code: faithful mode; every improved option off) and meanings: the
    config schema (config/README.md)."""

    epochs: int
    partner: str
    same_key_frac: float
    amp: str
    checkpoint_every: int
    adjacency: str
    model: ModelSettings
    loss: LossSettings
    optim: OptimSettings

    def validate(self) -> None:
        if self.adjacency in self.model.edge_types:
            raise DataError(f"train.model.edge_types = {list(self.model.edge_types)}: holds the adjacency "
                            f"'{self.adjacency}' itself")


#: Keys of the config section ``train`` that are not :class:`TrainSettings` (the rule passes them apart).
RUN_KEYS = ("seeds", "device", "threads", "group_by")


def train_settings(values: dict[str, Any] | None = None) -> TrainSettings:
    """:class:`TrainSettings` from (part of) the config section ``train``, over the schema's defaults."""
    return settings(TrainSettings, "train", values, omit=RUN_KEYS)


# ---------------------------------------------------------------------------------------------------------
# graphs


@dataclass
class GraphData:
    """One dataset's graph on the training device.

    x: (N, C) features (C = cells, or K with a cell sketch; float32, bfloat16 with amp); adj: (N, N) bool
    CSR co-expression adjacency (BCE target, neighbour sets); inputs: message-passing structure; target:
    dense (N, N) bool adjacency (dense BCE) or None; pos_keys: sorted keys row·N + col of adj's entries
    (sampled BCE) or None; self_offsets: position of each row's self-loop in adj (InfoNCE re-draws);
    digest: content hash.
    """

    dataset: str
    modality: str
    tissue: str
    species: str
    share_key: str
    genes: np.ndarray
    n_cells: int
    adj: sp.csr_matrix
    x: torch.Tensor
    inputs: GraphInput
    target: torch.Tensor | None
    pos_keys: np.ndarray | None
    self_offsets: np.ndarray
    digest: str

    @property
    def n_genes(self) -> int:
        return len(self.genes)


def share_key(kind: str, dataset: str, modality: str, tissue: str) -> str:
    """The share key of a dataset under ``kind`` (see :class:`ModelSettings`)."""
    return {"technique_tissue": f"{modality}_{tissue}", "technique": modality, "global": "global",
            "none": dataset}[kind]


def make_graph(
    dataset: str, modality: str, tissue: str, species: str, genes: Sequence[str], x: np.ndarray,
    adj: sp.spmatrix, priors: dict[str, sp.spmatrix], cfg: TrainSettings, device: torch.device,
) -> GraphData:
    """Put one graph on ``device``: x (N, C) float32 features, adj (N, N) 0/1 adjacency, priors {edge
    type: (N, N) weights} for ``cfg.model.edge_types``. With ``amp="bf16"`` the features are kept in
    bfloat16 (the first layer runs in bfloat16 anyway; this halves their memory and saves a cast per step)."""
    genes = np.asarray(genes, dtype=str)
    n = len(genes)
    x = np.ascontiguousarray(x, dtype=np.float32)
    shapes = {"X": x.shape[:1], "adjacency": adj.shape, **{t: priors[t].shape for t in cfg.model.edge_types}}
    for what, shape in shapes.items():
        if shape != (n,) * len(shape):
            raise DataError(f"dataset '{dataset}': {what} has shape {shape}, expected {n} genes")
    adj = sp.csr_matrix(adj, dtype=bool)
    adj.eliminate_zeros()
    adj.sort_indices()
    digest = hashlib.sha256()
    for part in (genes.astype("U").tobytes(), memoryview(x), adj.indptr.tobytes(), adj.indices.tobytes()):
        digest.update(part)
    mp_adj, attrs = adj, []
    if cfg.model.edge_types:
        weights = [sp.csr_matrix(priors[t], dtype=np.float32) for t in cfg.model.edge_types]
        for w in weights:
            digest.update(w.indptr.tobytes() + w.indices.tobytes() + w.data.tobytes())
        mp = adj.astype(np.float32)
        for w in weights:
            mp = mp + abs(w)
        mp_adj = sp.csr_matrix(mp != 0)
        attrs = [adj.astype(np.float32), *weights]
    xt = torch.from_numpy(x).to(device)
    if cfg.model.cell_sketch is not None:
        xt = cell_sketch(xt, cfg.model.cell_sketch)
    if cfg.amp == "bf16":
        xt = xt.to(torch.bfloat16)
    target = pos_keys = None
    if cfg.loss.bce == "dense":
        target = torch.from_numpy(adj.toarray()).to(device)
    else:
        coo = adj.tocoo()
        pos_keys = np.sort(coo.row.astype(np.int64) * n + coo.col)
    return GraphData(
        dataset=dataset, modality=modality, tissue=tissue, species=species,
        share_key=share_key(cfg.model.share_key, dataset, modality, tissue), genes=genes,
        n_cells=int(x.shape[1]), adj=adj, x=xt, inputs=graph_input(mp_adj, attrs, cfg.model.attn_impl, device),
        target=target, pos_keys=pos_keys, self_offsets=self_loop_offsets(adj), digest=digest.hexdigest(),
    )


def load_graph(path: str | Path, cfg: TrainSettings, device: torch.device) -> GraphData:
    """Read a gene-graph file (:mod:`genegraph.graphs.io`: ``varp[cfg.adjacency]``, the residual features,
    ``uns['dataset']``) onto ``device``."""
    path = Path(path)
    a = read_graph(path, (cfg.adjacency, *cfg.model.edge_types))
    meta = dict(a.uns["dataset"])
    x = gene_features(a)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: the residual features hold NaN or infinite values")
    priors = {t: adjacency(a, t) for t in cfg.model.edge_types}
    return make_graph(str(meta["id"]), str(meta["modality"]), str(meta["tissue"]), str(meta.get("species", "")),
                      a.var_names, x, adjacency(a, cfg.adjacency), priors, cfg, device)


# ---------------------------------------------------------------------------------------------------------
# training


@dataclass
class PairTensors:
    """A :class:`PairIndex` with its similarity-loss arrays on the device."""

    index: PairIndex
    common_i: torch.Tensor
    common_j: torch.Tensor
    jaccard: torch.Tensor


@dataclass
class TrainState:
    """Everything a training step reads or changes."""

    graphs: list[GraphData]
    cfg: TrainSettings
    seed: int
    model: MuSeGNN
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    vocab: GeneVocabulary
    device: torch.device
    amp: torch.dtype | None
    pairs: dict[tuple[int, int], PairTensors] = field(default_factory=dict)


def build_model(graphs: Sequence[GraphData], cfg: TrainSettings) -> MuSeGNN:
    m = cfg.model
    return MuSeGNN(
        in_dims=[g.x.shape[1] for g in graphs], n_genes=[g.n_genes for g in graphs],
        share_keys=[g.share_key for g in graphs], dim=m.dim, heads=m.heads, decoder=m.decoder,
        decoder_hidden=m.decoder_hidden, edge_dim=1 + len(m.edge_types) if m.edge_types else None,
    )


def init_state(graphs: list[GraphData], cfg: TrainSettings, seed: int, device: torch.device) -> TrainState:
    """Seeded model, Adam (three groups; fused on CUDA) and random generator."""
    torch.manual_seed(seed)
    model = build_model(graphs, cfg).to(device)
    opt = torch.optim.Adam(model.param_groups(cfg.optim.lr_enc, cfg.optim.lr_dec), fused=device.type == "cuda")
    amp = torch.bfloat16 if cfg.amp == "bf16" else None
    if amp is not None and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return TrainState(graphs, cfg, seed, model, opt, np.random.default_rng(seed),
                      build_vocabulary([g.genes for g in graphs]), device, amp)


def choose_partner(state: TrainState, i: int) -> int:
    """Partner j ≠ i: uniform (faithful) or stratified by share key."""
    n = len(state.graphs)
    if state.cfg.partner == "stratified":
        keys = np.array([g.share_key for g in state.graphs])
        others = np.arange(n) != i
        same = np.flatnonzero(others & (keys == keys[i]))
        diff = np.flatnonzero(others & (keys != keys[i]))
        if len(same) and len(diff):
            pool = same if state.rng.random() < state.cfg.same_key_frac else diff
            return int(pool[state.rng.integers(len(pool))])
    j = int(state.rng.integers(n - 1))
    return j + (j >= i)


def pair_tensors(state: TrainState, i: int, j: int) -> PairTensors:
    """The (cached) pair tables of (i, j)."""
    if (i, j) not in state.pairs:
        idx = pair_index(state.vocab, [g.adj for g in state.graphs], i, j, state.seed)
        dev = state.device
        state.pairs[(i, j)] = PairTensors(idx, torch.from_numpy(idx.common_i).to(dev),
                                          torch.from_numpy(idx.common_j).to(dev),
                                          torch.from_numpy(idx.jaccard).to(dev))
    return state.pairs[(i, j)]


def _to(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(arr).to(device, non_blocking=True)


def bce_loss(state: TrainState, i: int, z: torch.Tensor) -> torch.Tensor:
    """The BCE term of graph i (dense or sampled)."""
    g, lo = state.graphs[i], state.cfg.loss
    if lo.bce == "dense":
        return bce_dense(state.model.decode(i, z, state.amp), g.target, lo.bce_include_diag)
    rows, cols, target, weight = sample_bce_pairs(g.pos_keys, g.n_genes, state.rng, lo.neg_ratio, lo.max_pos,
                                                  lo.bce_include_diag)
    dev = state.device
    logits = state.model.decode_pairs(i, z, _to(rows, dev), _to(cols, dev), state.amp)
    return bce_weighted(logits, _to(target, dev), _to(weight, dev))


def train_step(state: TrainState, i: int) -> torch.Tensor:
    """One optimiser step for graph i. Returns the detached (bce, sim, infonce, total) as a (4,) tensor."""
    cfg, model, graphs, dev = state.cfg, state.model, state.graphs, state.device
    state.optimizer.zero_grad(set_to_none=True)
    g = graphs[i]
    z = model.encode(i, g.x, g.inputs, state.amp)
    bce = bce_loss(state, i, z)
    sim = nce = torch.zeros((), device=dev)
    if len(graphs) > 1:
        j = choose_partner(state, i)
        h = graphs[j]
        zj = model.encode(j, h.x, h.inputs, state.amp)
        p = pair_tensors(state, i, j)
        if p.common_i.numel() or cfg.loss.disjoint_pairs == "contrast":
            sim = similarity_loss(z, zj, p.common_i, p.common_j, p.jaccard, cfg.loss.sim_reduction)
            ai, pi, aj, pj = sample_contrast(p.index, g.adj, h.adj, cfg.loss.n_diff, cfg.loss.replace,
                                             cfg.loss.resample_pos, state.rng, g.self_offsets, h.self_offsets)
            queries = torch.cat([z[_to(ai, dev)], zj[_to(aj, dev)]])
            keys = torch.cat([z[_to(pi, dev)], zj[_to(pj, dev)]])
            nce = info_nce(queries, keys, cfg.loss.tau)
    total = bce + sim + cfg.loss.lambda_c * nce
    total.backward()
    state.optimizer.step()
    return torch.stack([bce, sim, nce, total]).detach()


def run_epoch(state: TrainState) -> np.ndarray:
    """One pass over the graphs in order; returns the mean (bce, sim, infonce, total) over its steps."""
    state.model.train()
    losses = torch.stack([train_step(state, i) for i in range(len(state.graphs))])
    return losses.mean(dim=0).cpu().numpy().astype(np.float64)


@torch.no_grad()
def embed(state: TrainState) -> list[np.ndarray]:
    """(N_i, dim) float32 embeddings of every graph."""
    state.model.eval()
    out = [state.model.encode(i, g.x, g.inputs, state.amp).float().cpu().numpy()
           for i, g in enumerate(state.graphs)]
    state.model.train()
    return out


# ---------------------------------------------------------------------------------------------------------
# checkpoints and outputs


def run_fingerprint(graphs: Sequence[GraphData], cfg: TrainSettings, seed: int) -> str:
    """Hash of what the training trajectory depends on: the seed, the settings (without ``epochs`` and
    ``checkpoint_every``, so a run can be extended) and each graph's content, in order."""
    conf = {**dataclasses.asdict(cfg), "seed": seed}
    conf.pop("epochs")
    conf.pop("checkpoint_every")
    text = json.dumps({"config": conf, "graphs": [(g.dataset, g.digest) for g in graphs]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def save_checkpoint(path: Path, state: TrainState, epoch: int, history: list[list[float]],
                    fingerprint: str, elapsed: float) -> None:
    """Model, optimiser and generator state after ``epoch``, written atomically."""
    payload = {"epoch": epoch, "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
               "rng": state.rng.bit_generator.state, "history": history, "fingerprint": fingerprint,
               "elapsed": elapsed}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    log.info("checkpoint after epoch %d -> %s", epoch, path)


def load_checkpoint(path: Path, state: TrainState, fingerprint: str, epochs: int) -> tuple[int, list, float]:
    """Restore ``state`` from ``path`` when it belongs to this run; returns (epoch, history, elapsed),
    (0, [], 0.0) when there is nothing to resume."""
    if not path.exists():
        return 0, [], 0.0
    try:
        ck = torch.load(path, map_location=state.device, weights_only=True)
    except Exception as err:  # a truncated or foreign file: start afresh rather than fail
        log.warning("ignoring unreadable checkpoint %s (%s)", path, err)
        return 0, [], 0.0
    if ck.get("fingerprint") != fingerprint:
        log.warning("ignoring checkpoint %s: written for other graphs or another configuration", path)
        return 0, [], 0.0
    if ck["epoch"] > epochs:
        log.warning("ignoring checkpoint %s: it is at epoch %d, past the %d epochs asked", path, ck["epoch"], epochs)
        return 0, [], 0.0
    state.model.load_state_dict(ck["model"])
    state.optimizer.load_state_dict(ck["optimizer"])
    state.rng.bit_generator.state = ck["rng"]
    log.info("resuming from %s at epoch %d", path, ck["epoch"])
    return int(ck["epoch"]), [list(r) for r in ck["history"]], float(ck["elapsed"])


def musegnn_embeddings(state: TrainState, z: list[np.ndarray], group: str = "all") -> ad.AnnData:
    """The embeddings file (:mod:`genegraph.models.embeddings`) of a trained state; share keys as trained."""
    graphs = state.graphs
    metas = [{"id": g.dataset, "modality": g.modality, "tissue": g.tissue, "species": g.species} for g in graphs]
    rows = embedding_rows(metas, [g.genes for g in graphs], [g.share_key for g in graphs], group)
    uns = {"method": "musegnn", "seed": state.seed, "config": json.dumps(dataclasses.asdict(state.cfg)),
           "epochs": int(state.cfg.epochs), "n_parameters": int(sum(p.numel() for p in state.model.parameters()))}
    return embeddings_adata(rows, np.concatenate(z), uns)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("genegraph", "torch", "torch_geometric", "numpy", "scipy", "pandas", "anndata"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def train_musegnn(
    graph_paths: Sequence[str | Path], cfg: TrainSettings | dict | None, out_dir: str | Path, seed: int = 0,
    device: str | torch.device = "auto", checkpoint_dir: str | Path | None = None, threads: int | None = None,
    group: str = "all",
) -> dict[str, Any]:
    """Train MuSe-GNN on ``graph_paths`` (in this order) and write, under ``out_dir``:
    ``embeddings.h5ad`` (see :func:`musegnn_embeddings`), ``losses.tsv`` (epoch, bce, sim, infonce, total,
    seconds) and ``run.json`` (seed, versions, device, wall time, sizes, final losses, config).

    A checkpoint ``checkpoint.pt`` in ``checkpoint_dir`` (default ``out_dir/checkpoint``) is written every
    ``cfg.checkpoint_every`` epochs; a later call with the same graphs and config resumes from it and
    ends with the same embeddings as an uninterrupted run. ``cfg``: settings, or a (partial) ``train`` config
    mapping; ``seed`` seeds the model and every draw; ``device``: ``auto`` (CUDA when available), ``cpu`` or
    ``cuda[:k]``; ``group`` names the training group in the embeddings. Returns the output paths and a summary.
    """
    cfg = cfg if isinstance(cfg, TrainSettings) else train_settings(cfg)
    if not graph_paths:
        raise DataError("no graph files to train on")
    dev = resolve_device(device)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(list(graph_paths), cfg, seed, Path(out_dir), dev, checkpoint_dir, group)
    finally:
        torch.set_num_threads(previous_threads)


def _train(graph_paths: list, cfg: TrainSettings, seed: int, out_dir: Path, dev: torch.device,
           checkpoint_dir: str | Path | None, group: str) -> dict[str, Any]:
    start_time = time.perf_counter()
    ckpt = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir else out_dir / "checkpoint" / "checkpoint.pt"
    graphs = [load_graph(p, cfg, dev) for p in graph_paths]
    ids = [g.dataset for g in graphs]
    if len(set(ids)) != len(ids):
        raise DataError(f"dataset ids repeat among the graph files: {ids}")
    for g in graphs:
        log.info("graph %s: %d genes x %d cells, %d edges (density %.3f), share key %s", g.dataset, g.n_genes,
                 g.n_cells, g.adj.nnz, g.adj.nnz / g.n_genes**2, g.share_key)
    state = init_state(graphs, cfg, seed, dev)
    log.info("%d graphs, %d share keys, %d parameters, device %s", len(graphs), len(state.model.keys),
             sum(p.numel() for p in state.model.parameters()), _device_name(dev))
    fingerprint = run_fingerprint(graphs, cfg, seed)
    done, history, elapsed = load_checkpoint(ckpt, state, fingerprint, cfg.epochs)
    every = max(1, cfg.epochs // 20)
    t_train = time.perf_counter()
    for epoch in range(done + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        losses = run_epoch(state)
        history.append([epoch, *losses.tolist(), time.perf_counter() - t0])
        if epoch == 1 or epoch % every == 0 or epoch == cfg.epochs:
            log.info("epoch %d/%d: bce %.5f sim %.5f infonce %.5f total %.5f (%.2f s)", epoch, cfg.epochs,
                     *losses, history[-1][-1])
        if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
            save_checkpoint(ckpt, state, epoch, history, fingerprint, elapsed + time.perf_counter() - t_train)
    train_s = elapsed + time.perf_counter() - t_train
    run = {"resumed_from_epoch": done, "train_time_s": train_s, "started": start_time, "checkpoint": str(ckpt),
           "group": group}
    return write_outputs(state, history, graph_paths, out_dir, run)


def write_outputs(state: TrainState, history: list[list[float]], graph_paths: Sequence, out_dir: Path,
                  run: dict[str, Any]) -> dict[str, Any]:
    """Write ``embeddings.h5ad``, ``losses.tsv`` and ``run.json``; return paths and summary."""
    cfg, graphs, dev = state.cfg, state.graphs, state.device
    paths = {"embeddings": out_dir / "embeddings.h5ad", "losses": out_dir / "losses.tsv", "run": out_dir / "run.json"}
    table = pd.DataFrame(history, columns=["epoch", *LOSS_COLUMNS, "seconds"])
    table["epoch"] = table["epoch"].astype(int)
    write_tsv(table, paths["losses"])
    write_h5ad(musegnn_embeddings(state, embed(state), run["group"]), paths["embeddings"])
    final = dict(zip(LOSS_COLUMNS, history[-1][1:5])) if history else {}
    n_params = sum(p.numel() for p in state.model.parameters())
    m = cfg.model
    formula = musegnn_parameter_count(
        [g.x.shape[1] for g in graphs], [g.n_genes for g in graphs], len(state.model.keys), m.dim, m.heads,
        m.decoder, m.decoder_hidden, 1 + len(m.edge_types) if m.edge_types else None)
    meta = {
        "seed": state.seed, "group": run["group"], "epochs": cfg.epochs,
        "resumed_from_epoch": run["resumed_from_epoch"],
        "device": str(dev), "device_name": _device_name(dev), "threads": torch.get_num_threads(),
        "versions": _versions(), "host": platform.node(), "pid": os.getpid(),
        "wall_time_s": time.perf_counter() - run["started"], "train_time_s": run["train_time_s"],
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,  # Linux: KiB
        "cuda_max_allocated_gb": torch.cuda.max_memory_allocated(dev) / 1e9 if dev.type == "cuda" else None,
        "n_parameters": n_params, "n_parameters_formula": formula, "share_keys": state.model.keys,
        "final_losses": final, "config": dataclasses.asdict(cfg), "checkpoint": run["checkpoint"],
        "graphs": [{"dataset": g.dataset, "path": str(p), "n_genes": g.n_genes, "n_cells": g.n_cells,
                    "n_features": int(g.x.shape[1]), "n_edges": int(g.adj.nnz),
                    "density": g.adj.nnz / g.n_genes**2, "share_key": g.share_key, "digest": g.digest}
                   for g, p in zip(graphs, graph_paths)],
    }
    write_json(meta, paths["run"])
    log.info("trained %d epochs in %.1f s (this call: epochs %d-%d); final %s", cfg.epochs, run["train_time_s"],
             run["resumed_from_epoch"] + 1, cfg.epochs, {k: round(v, 5) for k, v in final.items()})
    return {**{k: str(v) for k, v in paths.items()}, "checkpoint": run["checkpoint"], "final_losses": final,
            "epochs": cfg.epochs, "resumed_from_epoch": run["resumed_from_epoch"],
            "train_time_s": run["train_time_s"], "wall_time_s": meta["wall_time_s"], "n_parameters": n_params}
