"""scMoGNN joint embedding (spec §2.7; DANCE joint_embedding ``ScMoGCN``, CITE settings).

Input: the propagation of :mod:`.propagation` (3 steps, steps 2..3 kept) of each modality (RNA: LSI with 256
components of the counts; proteins: transformed values), concatenated per step across modalities and
combined with learned softmax layer weights: x (n_cells, k_rna + k_prot).

Encoder: per hidden width (150, 120, 100): Linear, GELU, BatchNorm, dropout 0.3; then Linear to the 61-wide
embedding z. Decoder: Linear(61, 150), ReLU, Linear(150, in), ReLU. z is split into parts with their own
losses: the first T dims (T = cell types among the fitted cells) get a cell-type cross-entropy, the next
n_batches dims an L2 penalty (0.01 × Σ over cells of ||·||₂), the next 2 dims the MSE against the S and G2M
cell-cycle scores; the rest is free. Total: 0.7 reconstruction MSE of x + 0.2 CE + 0.05 L2 + 0.05 cell cycle.

Training: the non-test cells (a seeded 10 % of them for validation), batches of 512, AdamW (lr 1e-4; the layer
weights without weight decay), at most 60 epochs, stop when the best validation loss is older than 10 epochs,
best weights kept. The embedding of every cell (test cells included) is z (all 61 dims).

Deviations: without ``celltype`` labels T = 0 and the cross-entropy term is dropped; without cell-cycle scores
the 2 dims stay free and that term is dropped (DANCE needs both). Batches are shuffled with a seeded numpy
generator instead of a DataLoader.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import DataError
from .propagation import combine, lsi, propagate
from .train import _rng_devices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JointEmbeddingSettings:
    """Joint-embedding settings (config ``joint_embedding``; meanings and defaults in the schema fragment)."""

    rna_lsi_components: int
    propagation_layers: int
    propagation_alpha: float
    hidden: tuple[int, ...]
    latent: int
    decoder_hidden: int
    dropout: float
    lr: float
    batch_size: int
    epochs: int
    patience: int
    val_fraction: float
    weight_reconstruction: float
    weight_celltype: float
    weight_batch: float
    weight_cell_cycle: float
    log_every: int


class JointEmbeddingModel(nn.Module):
    """Encoder/decoder with the layer weights of the propagated input; ``forward(x)`` -> (reconstruction, z)."""

    def __init__(self, n_in: int, n_layers: int, s: JointEmbeddingSettings):
        super().__init__()
        blocks, width = [], n_in
        for h in s.hidden:
            blocks += [nn.Linear(width, h), nn.GELU(), nn.BatchNorm1d(h), nn.Dropout(s.dropout)]
            width = h
        blocks.append(nn.Linear(width, s.latent))
        self.encoder = nn.Sequential(*blocks)
        self.decoder = nn.Sequential(nn.Linear(s.latent, s.decoder_hidden), nn.ReLU(),
                                     nn.Linear(s.decoder_hidden, n_in), nn.ReLU())
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


@dataclass
class JointEmbeddingResult:
    """``embedding`` (n_cells, latent) float32 for every cell of the input, in input order; ``history``: one row
    per epoch (epoch, loss, val_loss, seconds); ``celltypes``: the classes of the first T dims; ``model``."""

    embedding: np.ndarray
    history: pd.DataFrame
    celltypes: list[str]
    model: JointEmbeddingModel


def cell_cycle_scores(x_log: sp.spmatrix, genes: Sequence[str], s_genes: Sequence[str],
                      g2m_genes: Sequence[str], seed: int = 0) -> np.ndarray:
    """S and G2M scores (n_cells, 2) of log-normalised expression with scanpy's ``score_genes_cell_cycle``."""
    import anndata as ad
    import scanpy as sc

    adata = ad.AnnData(X=sp.csr_matrix(x_log, dtype=np.float32), var=pd.DataFrame(index=list(map(str, genes))))
    s_in = [g for g in s_genes if g in adata.var_names]
    g2m_in = [g for g in g2m_genes if g in adata.var_names]
    if not s_in or not g2m_in:
        raise DataError(f"cell-cycle scoring found {len(s_in)} S and {len(g2m_in)} G2M genes in the data")
    sc.tl.score_genes_cell_cycle(adata, s_genes=s_in, g2m_genes=g2m_in, random_state=seed)
    return adata.obs[["S_score", "G2M_score"]].to_numpy(dtype=np.float32)


def train_embed(
    rna_counts: sp.spmatrix, protein: np.ndarray, split: np.ndarray, batch: np.ndarray, seed: int,
    settings: JointEmbeddingSettings, celltype: np.ndarray | None = None, cell_cycle: np.ndarray | None = None,
    device: torch.device | str = "cpu",
) -> JointEmbeddingResult:
    """Fit the joint embedding on the non-test cells and embed every cell.

    ``rna_counts`` (n, n_genes) raw counts; ``protein`` (n, n_proteins) transformed; ``split``, ``batch``
    (n,) labels; ``celltype`` (n,) labels or None; ``cell_cycle`` (n, 2) S/G2M scores or None."""
    device = torch.device(device)
    s = settings
    split, batch = np.asarray(split).astype(str), np.asarray(batch).astype(str)
    n = len(split)
    fit = np.flatnonzero(split != "test")
    if len(fit) < 4:
        raise DataError(f"joint embedding needs >= 4 non-test cells, got {len(fit)}")
    batches = sorted(set(batch.tolist()))
    types: list[str] = []
    y_type = None
    if celltype is not None:
        celltype = np.asarray(celltype).astype(str)
        types = sorted(set(celltype[fit].tolist()))
        lookup = {t: i for i, t in enumerate(types)}
        y_type = torch.as_tensor([lookup.get(t, -1) for t in celltype], device=device)
    n_type, n_batch, n_cycle = len(types), len(batches), 0 if cell_cycle is None else 2
    if n_type + n_batch + n_cycle > s.latent:
        raise DataError(f"joint_embedding.latent ({s.latent}) is smaller than cell types ({n_type}) + batches "
                        f"({n_batch}) + cell-cycle dims ({n_cycle})")
    y_cycle = None if cell_cycle is None else torch.as_tensor(np.asarray(cell_cycle), dtype=torch.float32,
                                                              device=device)
    if y_cycle is not None and y_cycle.shape != (n, 2):
        raise DataError(f"cell_cycle must be (n_cells, 2), got {tuple(y_cycle.shape)}")
    st1 = propagate(lsi(rna_counts, s.rna_lsi_components), s.propagation_layers, s.propagation_alpha, device)
    st2 = propagate(np.asarray(protein, dtype=np.float32), s.propagation_layers, s.propagation_alpha, device)
    states = [torch.cat([a, b], 1) for a, b in zip(st1, st2, strict=True)]
    rng = np.random.default_rng(seed)
    perm = fit[rng.permutation(len(fit))]
    n_val = max(1, int(len(fit) * s.val_fraction))
    train_idx, val_idx = perm[:-n_val], perm[-n_val:]
    parts = (n_type, n_batch, n_cycle)
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = JointEmbeddingModel(states[0].shape[1], len(states), s).to(device)
        history = _fit(model, states, y_type, y_cycle, parts, train_idx, val_idx, rng, s, device)
    model.eval()
    with torch.no_grad():
        z = model.encoder(combine(states, model.layer_logits))
    return JointEmbeddingResult(embedding=z.cpu().numpy().astype(np.float32), history=history,
                                celltypes=types, model=model)


def _losses(model, states, idx, y_type, y_cycle, parts, s: JointEmbeddingSettings) -> Tensor:
    n_type, n_batch, n_cycle = parts
    x = combine(states, model.layer_logits, idx)
    recon, z = model(x)
    loss = s.weight_reconstruction * F.mse_loss(recon, x)
    if n_type:
        target = y_type[idx]
        known = target >= 0
        if known.any():
            loss = loss + s.weight_celltype * F.cross_entropy(z[known, :n_type], target[known])
    batch_part = z[:, n_type:n_type + n_batch]
    loss = loss + s.weight_batch * 1e-2 * torch.linalg.vector_norm(batch_part, dim=-1).sum()
    if n_cycle:
        loss = loss + s.weight_cell_cycle * F.mse_loss(z[:, n_type + n_batch:n_type + n_batch + 2], y_cycle[idx])
    return loss


def _fit(model, states, y_type, y_cycle, parts, train_idx, val_idx, rng, s: JointEmbeddingSettings, device):
    params = [p for name, p in model.named_parameters() if name != "layer_logits"]
    opt = torch.optim.AdamW([{"params": params}, {"params": [model.layer_logits], "weight_decay": 0.0}], lr=s.lr)
    val_t = torch.as_tensor(val_idx, device=device)
    rows, best, best_state = [], float("inf"), copy.deepcopy(model.state_dict())
    vals: list[float] = []
    start = time.perf_counter()
    for epoch in range(s.epochs):
        model.train()
        order = train_idx[rng.permutation(len(train_idx))]
        total, n_batches = 0.0, 0
        for b in range(0, len(order), s.batch_size):
            idx = order[b:b + s.batch_size]
            if len(idx) < 2:
                continue
            loss = _losses(model, states, torch.as_tensor(idx, device=device), y_type, y_cycle, parts, s)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n_batches = total + float(loss.detach()), n_batches + 1
        model.eval()
        with torch.no_grad():
            val = float(_losses(model, states, val_t, y_type, y_cycle, parts, s))
        vals.append(val)
        rows.append((epoch, total / max(n_batches, 1), val, time.perf_counter() - start))
        if val < best:
            best, best_state = val, copy.deepcopy(model.state_dict())
        if epoch % s.log_every == 0:
            log.info("joint embedding epoch %d: loss %.4f, val loss %.4f, %.1f s", *rows[-1])
        if min(vals) != min(vals[-s.patience:]):
            log.info("joint embedding: early stop at epoch %d (best val loss %.4f)", epoch, best)
            break
    model.load_state_dict(best_state)
    return pd.DataFrame(rows, columns=["epoch", "loss", "val_loss", "seconds"])
