"""Batch-aware negative-binomial decoder of CellPLM (spec §5.2, the reference's ``nbmlp`` decoder).

z (n, d_z) → [Linear → PReLU → dropout → norm] × decoder_layers, plus at each hidden layer a batch and a
dataset covariate embedding (Embedding → PReLU → norm) → NB head: Linear(→ nb_hidden) → ReLU →
mean = clamp(exp(Linear(→ vocabulary)), 1e-5, 1e6) over the sentence's measured genes only; dispersion θ =
clamp(exp(per-gene parameter), 1e-4, 1e4).

Deviation: for an unknown covariate (code −1, e.g. a dataset not seen in pre-training) the reference adds the
*sum* of all embedding rows; here the *mean* row is used (spec: "the mean of all embeddings").
"""

from __future__ import annotations

import torch
from torch import nn

from .embedder import make_norm


class CovariateEmbedding(nn.Module):
    """Embedding → PReLU → norm; code −1 uses the mean of all rows."""

    def __init__(self, n: int, dim: int, norm: str, groups: int):
        super().__init__()
        self.table = nn.Embedding(max(n, 1), dim)
        self.act, self.norm = nn.PReLU(), make_norm(norm, dim, groups)
        self.n = n

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        rows = self.table(codes.clamp(min=0))
        if (codes < 0).any():
            rows = torch.where((codes < 0)[:, None], self.table.weight[: max(self.n, 1)].mean(0, keepdim=True), rows)
        return self.norm(self.act(rows))


class NBDecoder(nn.Module):
    """(n, d_z) latent → NB mean (n, m) and dispersion (m,) over the vocabulary rows ``genes`` (m,)."""

    def __init__(self, latent_dim: int, hidden: int, layers: int, nb_hidden: int, vocab_size: int,
                 n_batches: int, n_datasets: int, dropout: float, norm: str, norm_groups: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(latent_dim if i == 0 else hidden, hidden), nn.PReLU(), nn.Dropout(dropout),
                          make_norm(norm, hidden, norm_groups))
            for i in range(layers))
        self.batch_emb = nn.ModuleList(CovariateEmbedding(n_batches, hidden, norm, norm_groups)
                                       for _ in range(layers)) if n_batches else None
        self.dataset_emb = nn.ModuleList(CovariateEmbedding(n_datasets, hidden, norm, norm_groups)
                                         for _ in range(layers)) if n_datasets else None
        self.nb_hidden = nn.Sequential(nn.Linear(hidden, nb_hidden), nn.ReLU())
        self.mean_out = nn.Linear(nb_hidden, vocab_size)
        self.log_disp = nn.Parameter(torch.randn(vocab_size))

    def hidden(self, z: torch.Tensor, batch: torch.Tensor, dataset: torch.Tensor) -> torch.Tensor:
        """(n, hidden) state before the NB head, covariates added."""
        x = z
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.batch_emb is not None:
                x = x + self.batch_emb[i](batch)
            if self.dataset_emb is not None:
                x = x + self.dataset_emb[i](dataset)
        return x

    def forward(self, z: torch.Tensor, genes: torch.Tensor, batch: torch.Tensor,
                dataset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.nb_hidden(self.hidden(z, batch, dataset))
        logits = u @ self.mean_out.weight.index_select(0, genes).T + self.mean_out.bias.index_select(0, genes)
        mean = torch.clamp(torch.exp(logits), 1e-5, 1e6)
        disp = torch.clamp(torch.exp(self.log_disp.index_select(0, genes)), 1e-4, 1e4)
        return mean, disp
