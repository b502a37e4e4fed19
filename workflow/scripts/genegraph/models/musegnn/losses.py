"""MuSe-GNN's three loss terms (spec §2.5) and the improved-mode BCE on sampled pairs (§6.3).

Losses run in float32 whatever the autocast state of the model (inputs are cast first).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def bce_dense(logits: Tensor, adj: Tensor, include_diag: bool = True) -> Tensor:
    """Mean BCE-with-logits of (N, N) ``logits`` against the 0/1 adjacency ``adj`` (bool or float).

    Faithful: every one of the N² entries, diagonal included (``include_diag=True``). Improved: the mean
    over the N² - N off-diagonal entries (self-loops are always 1 and make the task look easier).
    """
    loss = F.binary_cross_entropy_with_logits(logits.float(), adj.float(), reduction="none")
    if include_diag:
        return loss.mean()
    n = loss.shape[0]
    if n < 2:
        return loss.sum() * 0.0
    return (loss.sum() - loss.diagonal().sum()) / (n * n - n)


def sample_bce_pairs(
    pos_keys: np.ndarray, n: int, rng: np.random.Generator, neg_ratio: float = 1.0,
    max_pos: int | None = None, include_diag: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entries of an (n, n) adjacency for an unbiased sampled estimate of the dense BCE mean.

    ``pos_keys``: sorted int64 keys ``row * n + col`` of the positive entries. Draws p' positives (all, or
    ``max_pos`` without replacement) and q' = ceil(neg_ratio * p') negatives uniformly with replacement
    among the non-edges (rejection sampling). Returns (rows, cols, target, weight): weight = P/p' for a
    positive and Q/q' for a negative, divided by the number of entries P + Q, so that
    sum(weight * bce) has the dense mean as expectation.
    """
    pos = pos_keys if include_diag else pos_keys[pos_keys % (n + 1) != 0]
    total = n * n if include_diag else n * n - n
    n_pos, n_neg = len(pos), total - len(pos)
    take_pos = n_pos if max_pos is None else min(n_pos, max_pos)
    sel = pos if take_pos == n_pos else pos[np.sort(rng.choice(n_pos, take_pos, replace=False))]
    take_neg = min(n_neg, math.ceil(neg_ratio * take_pos)) if take_pos else min(n_neg, n)
    neg = np.empty(0, np.int64)
    while len(neg) < take_neg:
        want = take_neg - len(neg)
        draw = int(want * total / n_neg * 1.2) + 16
        r = rng.integers(0, n, draw)
        c = rng.integers(0, n if include_diag else n - 1, draw)
        if not include_diag:
            c += c >= r
        keys = r * n + c
        hit = np.searchsorted(pos, keys).clip(max=max(len(pos) - 1, 0))
        is_pos = pos[hit] == keys if len(pos) else np.zeros(draw, bool)
        neg = np.concatenate([neg, keys[~is_pos][:want]])
    keys = np.concatenate([sel, neg])
    target = np.concatenate([np.ones(len(sel), np.float32), np.zeros(len(neg), np.float32)])
    weight = np.concatenate([
        np.full(len(sel), n_pos / max(take_pos, 1) / total, np.float32),
        np.full(len(neg), n_neg / max(take_neg, 1) / total, np.float32),
    ])
    return keys // n, keys % n, target, weight


def bce_weighted(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """sum(weight * BCE-with-logits) over sampled entries (weights from :func:`sample_bce_pairs`)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return (loss * weight).sum()


def similarity_loss(
    z_i: Tensor, z_j: Tensor, common_i: Tensor, common_j: Tensor, jaccard: Tensor, reduction: str = "mean"
) -> Tensor:
    """-Σ or -mean over common genes g of λ_g · cos(z_i[g], z_j[g]); 0 without common genes.

    z_i: (N_i, d), z_j: (N_j, d); common_*: (G,) positions; jaccard: (G,) λ.
    Faithful quirk: the authors' code takes the **mean** (``reduction="mean"``); the paper's Eq. 7 sums
    (``reduction="sum"``), which scales the term by G ≈ hundreds against the BCE.
    """
    if common_i.numel() == 0:
        return z_i.sum() * 0.0
    cos = F.cosine_similarity(z_i[common_i].float(), z_j[common_j].float(), dim=1)
    weighted = jaccard * cos
    return -(weighted.mean() if reduction == "mean" else weighted.sum())


def info_nce(queries: Tensor, keys: Tensor, tau: float = 0.07) -> Tensor:
    """Asymmetric InfoNCE (NT-Xent, paper Eq. 6): query r against all keys, key r is its positive.

    queries, keys: (M, d). loss = mean_r -log( exp(cos(q_r, k_r)/τ) / Σ_s exp(cos(q_r, k_s)/τ) ), i.e.
    cross-entropy over the (M, M) cosine/τ logits with the diagonal as targets. This is the form of
    pytorch-metric-learning ≤ 2.1 ``SelfSupervisedLoss(NTXentLoss(τ))`` the authors ran (2k - 1 negatives
    per query; a gene drawn twice is a negative of itself). 0 when M = 0.
    """
    if queries.shape[0] == 0:
        return queries.sum() * 0.0
    q = F.normalize(queries.float(), dim=1)
    k = F.normalize(keys.float(), dim=1)
    logits = q @ k.T / tau
    return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))
