"""Training and prediction of scMoFormer on a protein task (spec §3.4).

:func:`prepare_graph` builds everything that does not depend on the training seed (relations, SVD cell
features, gene features, positional encodings); :func:`train_scmoformer` trains one seed on it and returns the
predictions of every cell from the epoch of best validation MSE.

Training: mini-batches of training cells (a seeded permutation each epoch); each batch is the node-induced
subgraph of its cells plus every gene and protein. AdamW; ReduceLROnPlateau on the validation MSE; early
stopping. Each epoch ends with a forward pass over all cells (train, val and test together, as the reference:
one Performer sequence) that gives the validation MSE; the test targets are never read.

Deviations:
- The caller's split is used as is for every seed (the reference re-splits an already shrunken training set
  inside its seed loop, so each later seed trained on fewer cells).
- Test metrics are not computed during training (the reference logs them every epoch).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ...config import SCHEMA_DIR, from_schema
from ...errors import DataError
from ..layers.sparse import SparseAdjacency
from ..protein_task import ProteinTask
from .encodings import gene_features, positional_encoding, svd_cell_features
from .model import GraphTensors, ModelSettings, ScMoFormer
from .proteins import protein_genes, read_adt_table
from .relations import Relations, build_relations

log = logging.getLogger(__name__)

#: The schema fragment with every scMoFormer setting.
SCHEMA = SCHEMA_DIR / "config" / "scmoformer.schema.yaml"
METHODS = ("scmoformer", "scmoformer_no_prior", "scmoformer_no_pe")


@dataclass(frozen=True)
class EncodingSettings:
    """Initial features and positional encodings (config ``scmoformer.encodings``)."""

    svd_components: int
    svd_seed: int
    gene_init: str
    pe: str
    pe_dim: int


@dataclass(frozen=True)
class PriorSettings:
    """STRING and ADT-table use (config ``scmoformer.priors``)."""

    min_score: int | None
    protein_kinds: tuple[str, ...]


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation (config ``scmoformer.train``)."""

    lr: float
    weight_decay: float
    batch_size: int
    eval_batch_size: int | None
    max_epochs: int
    patience: int
    lr_patience: int
    lr_factor: float
    log_every: int


@dataclass(frozen=True)
class ScMoFormerSettings:
    """All scMoFormer settings (config ``scmoformer``)."""

    method: str
    model: ModelSettings
    encodings: EncodingSettings
    priors: PriorSettings
    train: TrainSettings

    @property
    def uses_prior(self) -> bool:
        return self.method != "scmoformer_no_prior"

    @property
    def pe(self) -> str:
        """The positional encoding in effect: none for the two ablations that drop it."""
        return self.encodings.pe if self.method == "scmoformer" else "none"


def load_settings(values: Mapping[str, Any] | None = None, schema: str | Path = SCHEMA) -> ScMoFormerSettings:
    """Settings from ``values`` (the ``scmoformer`` config section, or test overrides) over the schema defaults."""
    return from_schema(ScMoFormerSettings, schema, values, where="scmoformer")


@dataclass(frozen=True)
class PreparedGraph:
    """The seed-independent inputs of one task, on CPU.

    ``relations``: the graph; ``cell_features`` (n_cells, s) and ``gene_features`` (n_genes, s) float32;
    ``gene_pe`` (n_genes, k) / ``protein_pe`` (n_proteins, k) float32 or None."""

    relations: Relations
    cell_features: np.ndarray
    gene_features: np.ndarray
    gene_pe: np.ndarray | None
    protein_pe: np.ndarray | None

    def tensors(self, device: torch.device) -> GraphTensors:
        """The batch-independent graph on ``device``."""
        rel = self.relations
        n_genes = rel.cell_gene.shape[1]
        gene_gene = rel.gene_gene if rel.gene_gene is not None else sp.csr_matrix((n_genes, n_genes))

        def tensor(a: np.ndarray | None) -> torch.Tensor | None:
            return None if a is None else torch.from_numpy(a).to(device)

        protein_gene = None if rel.gene_protein is None else SparseAdjacency.from_scipy(rel.gene_protein.T, device)
        protein_protein = None if rel.protein_protein is None else SparseAdjacency.from_scipy(rel.protein_protein,
                                                                                              device)
        return GraphTensors(
            gene_features=tensor(self.gene_features), gene_pe=tensor(self.gene_pe),
            protein_pe=tensor(self.protein_pe) if protein_gene is not None else None,
            gene_gene=SparseAdjacency.from_scipy(gene_gene, device), protein_protein=protein_protein,
            protein_gene=protein_gene,
        )


def prepare_graph(
    x: sp.spmatrix, genes: Any, proteins: Any, settings: ScMoFormerSettings, *,
    edges: pd.DataFrame | None, adt_table: pd.DataFrame | None = None, device: torch.device | str = "cpu",
) -> PreparedGraph:
    """Relations, cell and gene features and PEs of ``x`` (n_cells, n_genes) normalised RNA of every cell of the
    graph (train, val and test), gene names ``genes`` and the panel ``proteins``.

    ``edges``: STRING links mapped to gene symbols (``gene_a, gene_b, combined_score``), needed unless the
    method is ``scmoformer_no_prior``; ``adt_table``: the ADT → gene table (default: the project's); ``device``:
    where the random-walk PE is computed (the costly step on a full STRING gene graph)."""
    genes, proteins = [str(g) for g in genes], [str(p) for p in proteins]
    if settings.uses_prior:
        if edges is None:
            raise DataError(f"{settings.method} needs the STRING edge table (gene_a, gene_b, combined_score)")
        table = read_adt_table() if adt_table is None else adt_table
        mapping = protein_genes(proteins, table, settings.priors.protein_kinds)
        relations = build_relations(x, genes, proteins, edges=edges, protein_genes=mapping,
                                    min_score=settings.priors.min_score)
    else:
        relations = build_relations(x, genes, proteins, edges=None, protein_genes=None)
    enc = settings.encodings
    cells = svd_cell_features(relations.cell_gene, enc.svd_components, enc.svd_seed)
    return PreparedGraph(
        relations=relations, cell_features=cells,
        gene_features=gene_features(relations.cell_gene, cells, enc.gene_init),
        gene_pe=positional_encoding(relations.gene_gene, settings.pe, enc.pe_dim, enc.svd_seed, device),
        protein_pe=positional_encoding(relations.protein_protein, settings.pe, enc.pe_dim, enc.svd_seed, device),
    )


@dataclass
class ScMoFormerResult:
    """``prediction`` (n_cells, n_proteins) float32 for every cell of the task (row order of the task);
    ``history`` one row per epoch (epoch, train_mse, val_mse, lr, seconds); ``best_epoch`` the epoch whose
    weights made ``prediction``; ``n_parameters``; ``model`` the network with those weights."""

    prediction: np.ndarray
    history: pd.DataFrame
    best_epoch: int
    n_parameters: int
    model: ScMoFormer


def _predict(model: ScMoFormer, graph: GraphTensors, x: sp.csr_matrix, cells: torch.Tensor,
             batch_size: int | None, full: SparseAdjacency | None, device: torch.device) -> torch.Tensor:
    """Predictions (n_cells, n_proteins) for every cell in eval mode; ``full`` is the adjacency of all cells."""
    model.eval()
    with torch.no_grad():
        if batch_size is None:
            return model(graph, full, cells)
        parts = []
        for start in range(0, x.shape[0], batch_size):
            stop = min(start + batch_size, x.shape[0])
            adj = SparseAdjacency.from_scipy(x[start:stop], device)
            parts.append(model(graph, adj, cells[start:stop]))
        return torch.cat(parts, 0)


def train_scmoformer(
    task: ProteinTask, settings: ScMoFormerSettings, *, seed: int, edges: pd.DataFrame | None = None,
    adt_table: pd.DataFrame | None = None, prepared: PreparedGraph | None = None,
    device: torch.device | str = "cpu",
) -> ScMoFormerResult:
    """Train scMoFormer on ``task`` (fit on its 'train' cells, select on 'val') with ``seed`` and predict every
    cell. Pass ``prepared`` (from :func:`prepare_graph` on ``task.x``) to share the graph between seeds;
    otherwise it is built from ``edges`` and ``adt_table``. Same seed → same result on CPU."""
    device = torch.device(device)
    if prepared is None:
        prepared = prepare_graph(task.x, task.genes, task.proteins, settings, edges=edges, adt_table=adt_table,
                                 device=device)
    x = prepared.relations.cell_gene
    if x.shape[0] != len(task.split):
        raise DataError(f"the prepared graph has {x.shape[0]} cells, the task {len(task.split)}")
    train_idx, val_idx = task.index("train"), task.index("val")
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError(f"scMoFormer needs training and validation cells (got {len(train_idx)} train, "
                        f"{len(val_idx)} val)")
    y_seen = task.masked_y()
    if not np.isfinite(y_seen[np.concatenate([train_idx, val_idx])]).all():
        raise DataError("the protein targets of training or validation cells contain NaN or infinite values")
    ts = settings.train
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        graph = prepared.tensors(device)
        pe_dim = settings.encodings.pe_dim if prepared.gene_pe is not None else None
        model = ScMoFormer(settings.model, prepared.cell_features.shape[1], len(task.proteins), pe_dim,
                           graph.has_proteins, seed).to(device)
        n_parameters = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.AdamW(model.parameters(), lr=ts.lr, weight_decay=ts.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=ts.lr_factor,
                                                               patience=ts.lr_patience)
        cells = torch.from_numpy(prepared.cell_features).to(device)
        y = torch.from_numpy(np.nan_to_num(y_seen, nan=0.0).astype(np.float32)).to(device)
        val_t = torch.from_numpy(val_idx).to(device)
        full = SparseAdjacency.from_scipy(x, device) if ts.eval_batch_size is None else None
        best, best_epoch, best_state, waited = float("inf"), 0, None, 0
        rows, start = [], time.perf_counter()
        log.info("scMoFormer (%s): %d cells (%d train, %d val), %d genes, %d proteins, %d parameters, device %s",
                 settings.method, x.shape[0], len(train_idx), len(val_idx), x.shape[1], len(task.proteins),
                 n_parameters, device)
        for epoch in range(1, ts.max_epochs + 1):
            model.train()
            order = rng.permutation(train_idx)
            total = 0.0
            for lo in range(0, len(order), ts.batch_size):
                batch = np.sort(order[lo:lo + ts.batch_size])
                adj = SparseAdjacency.from_scipy(x[batch], device)
                idx = torch.from_numpy(batch).to(device)
                loss = F.mse_loss(model(graph, adj, cells[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            pred = _predict(model, graph, x, cells, ts.eval_batch_size, full, device)
            val = float(F.mse_loss(pred[val_t], y[val_t]))
            scheduler.step(val)
            rows.append((epoch, total / len(order), val, optimizer.param_groups[0]["lr"],
                         time.perf_counter() - start))
            if val < best:
                best, best_epoch, waited = val, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
            if epoch % ts.log_every == 0 or epoch == 1:
                log.info("epoch %d: train MSE %.5f, val MSE %.5f (best %.5f at %d), lr %.2e, %.1f s", epoch,
                         rows[-1][1], val, best, best_epoch, rows[-1][3], rows[-1][4])
            if waited >= ts.patience:
                log.info("early stop at epoch %d: no better validation MSE for %d epochs", epoch, ts.patience)
                break
        model.load_state_dict(best_state)
        prediction = _predict(model, graph, x, cells, ts.eval_batch_size, full, device)
    history = pd.DataFrame(rows, columns=["epoch", "train_mse", "val_mse", "lr", "seconds"])
    return ScMoFormerResult(prediction.cpu().numpy().astype(np.float32), history, best_epoch, n_parameters, model)
