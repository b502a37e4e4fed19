"""scMoGNN modality matching (spec §2.6; DANCE match_modality ``ScMoGCN``, CITE settings).

Inputs: RNA counts -> LSI (256 components) and the transformed proteins used as they are; each goes through the
parameter-free propagation of :mod:`.propagation` (4 steps, steps 2..4 kept) over all cells of the task, and
learned softmax layer weights (one vector per modality) combine the kept steps.

Model: two MLP towers (in -> 512, GELU, dropout 0.25 -> 512, GELU, dropout 0.25 -> 64), outputs L2-normalised;
logits = e_rna · e_protᵀ · exp(T), T = 2.7399. Loss: cross-entropy of the rows and of the columns against the
identity (Eq. 2.17) plus, with ``auxiliary_loss``, the MSE of decoders (64 -> 512, GELU -> in) predicting each
modality's input from the other's embedding and from its own (Eq. 2.18).

Training (reference): the non-test cells are permuted (seeded); the last B = min(batch_size, n/2) of them are
the validation set, the rest are shuffled into batches of B (incomplete last batch dropped); AdamW (lr 6e-4);
after each epoch the validation score = mean of the row-wise and column-wise top-1 accuracy of the logits;
stop when the best score is older than ``patience`` epochs; the best epoch's weights are kept.

Inference on the test cells, separately within each batch label (the competition gives each modality's batch):
P = row softmax + column softmax of e_rna · e_protᵀ; entries below the ``threshold_quantile`` of both their row
and their column are zeroed; a maximum-weight assignment (scipy ``linear_sum_assignment``) gives a 0/1 matrix.
Scored by Σ S_ii / N (:func:`genegraph.evaluate.protein.matching_score`, in the evaluation stage).

Deviations: the assignment always returns a full 0/1 matching (Hungarian on the thresholded dense matrix, zero
entries allowed); the reference's sparse full matching falls back to the thresholded scores when the kept
entries admit no perfect matching. The task's own 'val' label is not used (the reference's split is).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from ...errors import DataError
from .propagation import combine, lsi, propagate
from .train import _rng_devices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatchingSettings:
    """Matching settings (config ``matching``; meanings and defaults in the schema fragment)."""

    rna_lsi_components: int
    propagation_layers: int
    propagation_alpha: float
    hidden: int
    embedding: int
    dropout: float
    temperature: float
    auxiliary_loss: bool
    lr: float
    batch_size: int
    epochs: int
    patience: int
    threshold_quantile: float
    log_every: int


def _tower(n_in: int, hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))


class MatchingModel(nn.Module):
    """Two towers, two decoders and the two propagation layer-weight vectors.

    ``encode(x1, x2)`` -> L2-normalised (n, embedding) pair; ``forward(x1, x2)`` -> (n1, n2) logits."""

    def __init__(self, n_in1: int, n_in2: int, n_layers: int, s: MatchingSettings):
        super().__init__()
        self.enc1 = _tower(n_in1, s.hidden, s.embedding, s.dropout)
        self.enc2 = _tower(n_in2, s.hidden, s.embedding, s.dropout)
        self.dec1 = nn.Sequential(nn.Linear(s.embedding, s.hidden), nn.GELU(), nn.Linear(s.hidden, n_in1))
        self.dec2 = nn.Sequential(nn.Linear(s.embedding, s.hidden), nn.GELU(), nn.Linear(s.hidden, n_in2))
        self.layer_logits1 = nn.Parameter(torch.zeros(n_layers))
        self.layer_logits2 = nn.Parameter(torch.zeros(n_layers))
        self.scale = math.exp(s.temperature)

    def inputs(self, states1: list[Tensor], states2: list[Tensor], index: Tensor) -> tuple[Tensor, Tensor]:
        return combine(states1, self.layer_logits1, index), combine(states2, self.layer_logits2, index)

    def encode(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        return F.normalize(self.enc1(x1), dim=-1), F.normalize(self.enc2(x2), dim=-1)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        e1, e2 = self.encode(x1, x2)
        return e1 @ e2.T * self.scale


@dataclass
class MatchingResult:
    """``matrix``: (n_test, n_test) CSR 0/1 assignment, rows = RNA of the test cells, columns = their proteins,
    both in ``task.index('test')`` order (the truth is the diagonal: score it with
:func:`genegraph.evaluate.protein.matching_score`); ``history``: one row
    per epoch (epoch, loss, val_score, seconds); ``model``."""

    matrix: sp.csr_matrix
    history: pd.DataFrame
    model: MatchingModel


def _accuracy(logits: Tensor) -> float:
    target = torch.arange(logits.shape[0], device=logits.device)
    rows = (logits.argmax(1) == target).float().mean()
    cols = (logits.argmax(0) == target).float().mean()
    return float((rows + cols) / 2)


def assign(probabilities: np.ndarray, threshold_quantile: float) -> np.ndarray:
    """0/1 (n, n) maximum-weight assignment on ``probabilities`` after zeroing the entries below the
    ``threshold_quantile`` of both their row and their column."""
    w = np.array(probabilities, dtype=np.float64)
    q_col = np.quantile(w, threshold_quantile, axis=0, keepdims=True)
    q_row = np.quantile(w, threshold_quantile, axis=1, keepdims=True)
    w[(w < q_col) & (w < q_row)] = 0.0
    rows, cols = linear_sum_assignment(w, maximize=True)
    out = np.zeros_like(w)
    out[rows, cols] = 1.0
    return out


def match_within_batches(e1: Tensor, e2: Tensor, batch: np.ndarray, threshold_quantile: float) -> sp.csr_matrix:
    """The (n, n) 0/1 matching of embeddings ``e1``, ``e2`` (n, d), cells paired only within equal ``batch``."""
    n = e1.shape[0]
    out = sp.lil_matrix((n, n))
    for b in np.unique(batch):
        idx = np.flatnonzero(batch == b)
        t = torch.as_tensor(idx, device=e1.device)
        logits = e1[t] @ e2[t].T
        prob = (torch.softmax(logits, 1) + torch.softmax(logits, 0)).cpu().numpy()
        a = assign(prob, threshold_quantile)
        r, c = np.nonzero(a)
        out[idx[r], idx[c]] = 1.0
    return out.tocsr()


def train_match(
    rna_counts: sp.spmatrix, protein: np.ndarray, split: np.ndarray, batch: np.ndarray, seed: int,
    settings: MatchingSettings, device: torch.device | str = "cpu",
) -> MatchingResult:
    """Learn to match RNA and protein profiles on the non-test cells and match the test cells.

    ``rna_counts`` (n_cells, n_genes) raw counts; ``protein`` (n_cells, n_proteins) transformed; ``split`` and
    ``batch`` (n_cells,) labels as in :class:`~genegraph.models.protein_task.ProteinTask`."""
    device = torch.device(device)
    split, batch = np.asarray(split).astype(str), np.asarray(batch).astype(str)
    fit, test = np.flatnonzero(split != "test"), np.flatnonzero(split == "test")
    if len(fit) < 4 or len(test) < 2:
        raise DataError(f"matching needs >= 4 training and >= 2 test cells (got {len(fit)}, {len(test)})")
    s = settings
    states1 = propagate(lsi(rna_counts, s.rna_lsi_components), s.propagation_layers, s.propagation_alpha, device)
    states2 = propagate(np.asarray(protein, dtype=np.float32), s.propagation_layers, s.propagation_alpha, device)
    rng = np.random.default_rng(seed)
    perm = fit[rng.permutation(len(fit))]
    bsz = min(s.batch_size, len(fit) // 2)
    train_idx, val_idx = perm[:-bsz], perm[-bsz:]
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = MatchingModel(states1[0].shape[1], states2[0].shape[1], len(states1), s).to(device)
        history, best_state = _fit(model, states1, states2, train_idx, val_idx, bsz, rng, s, device)
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        t = torch.as_tensor(test, device=device)
        e1, e2 = model.encode(*model.inputs(states1, states2, t))
    matrix = match_within_batches(e1, e2, batch[test], s.threshold_quantile)
    return MatchingResult(matrix=matrix, history=history, model=model)


def _fit(model: MatchingModel, states1, states2, train_idx, val_idx, bsz, rng, s: MatchingSettings, device):
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr)
    val_t = torch.as_tensor(val_idx, device=device)
    rows, scores = [], []
    best, best_state = -1.0, copy.deepcopy(model.state_dict())
    start = time.perf_counter()
    for epoch in range(s.epochs):
        model.train()
        order = train_idx[rng.permutation(len(train_idx))]
        total, n_batches = 0.0, len(order) // bsz
        for b in range(n_batches):
            idx = torch.as_tensor(order[b * bsz:(b + 1) * bsz], device=device)
            x1, x2 = model.inputs(states1, states2, idx)
            e1, e2 = model.encode(x1, x2)
            logits = e1 @ e2.T * model.scale
            target = torch.arange(len(idx), device=device)
            loss = F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)
            if s.auxiliary_loss:
                loss = loss + F.mse_loss(model.dec1(e2), x1) + F.mse_loss(model.dec2(e1), x2)
                loss = loss + F.mse_loss(model.dec1(e1), x1) + F.mse_loss(model.dec2(e2), x2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        model.eval()
        with torch.no_grad():
            score = _accuracy(model(*model.inputs(states1, states2, val_t)))
        scores.append(score)
        rows.append((epoch, total / max(n_batches, 1), score, time.perf_counter() - start))
        if score > best:
            best, best_state = score, copy.deepcopy(model.state_dict())
        if epoch % s.log_every == 0:
            log.info("matching epoch %d: loss %.4f, val score %.4f, %.1f s", *rows[-1][:2], score, rows[-1][3])
        if max(scores) != max(scores[-s.patience:]):
            log.info("matching: early stop at epoch %d (best val score %.4f)", epoch, max(scores))
            break
    return pd.DataFrame(rows, columns=["epoch", "loss", "val_score", "seconds"]), best_state
