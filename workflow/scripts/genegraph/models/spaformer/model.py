"""The SpaFormer autoencoder (spec §4.2): each section is one sequence of cell tokens.

Encoder: Linear(genes -> hidden) + PE -> LayerNorm -> dropout; ``layers`` post-norm transformer layers
(``encoder`` = performer | flow | softmax attention with ``heads`` heads, FFN hidden -> ffn -> hidden, GELU)
or, for ``encoder = "mlp"``, the same layers without attention (post-norm residual FFN blocks: the
no-attention ablation); head Linear(hidden -> latent) + GELU = z. Decoder: Linear(latent -> hidden) ->
PReLU -> dropout -> Linear(hidden -> genes) -> ReLU, the log-normalised expression.

Shapes: x (n, genes) float; z (n, latent); reconstruction (n, genes).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.attention import LinearTransformerEncoder
from .positional import Context, PositionalEncoding
from .settings import ModelSettings


class _FeedForwardBlock(nn.Module):
    """Post-norm residual FFN: LN(x + Dropout(Linear(GELU-Dropout(Linear(x)))))."""

    def __init__(self, dim: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim), nn.Dropout(dropout)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.ffn(x))


class SpaFormer(nn.Module):
    """SpaFormer for ``n_genes`` genes; ``seed`` draws the FAVOR+ features (layer i: seed + i)."""

    def __init__(self, n_genes: int, s: ModelSettings, seed: int = 0):
        super().__init__()
        self.embed = nn.Linear(n_genes, s.hidden)
        self.pe = PositionalEncoding(s.pe, s.hidden, s.lap_k, s.cond_heads)
        self.norm0 = nn.LayerNorm(s.hidden)
        self.drop0 = nn.Dropout(s.dropout)
        if s.encoder == "mlp":
            self.encoder = nn.Sequential(*[_FeedForwardBlock(s.hidden, s.ffn, s.dropout) for _ in range(s.layers)])
        else:
            self.encoder = LinearTransformerEncoder(
                s.hidden, s.layers, s.heads, s.ffn, s.encoder, s.dropout, norm_first=False,
                n_features=s.n_features or None, seed=seed, redraw_interval=s.redraw_interval,
            )
        self.head = nn.Linear(s.hidden, s.latent)
        self.decoder = nn.Sequential(
            nn.Linear(s.latent, s.hidden), nn.PReLU(), nn.Dropout(s.dropout), nn.Linear(s.hidden, n_genes), nn.ReLU()
        )

    def encode(self, x: Tensor, ctx: Context, signs: Tensor | None = None) -> Tensor:
        """z (n, latent) of the section's tokens x (n, genes)."""
        h = self.embed(x)
        pe = self.pe(h, ctx, signs)
        if pe is not None:
            h = h + pe
        h = self.encoder(self.drop0(self.norm0(h)))
        return F.gelu(self.head(h))

    def forward(self, x: Tensor, ctx: Context, signs: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(reconstruction (n, genes), z (n, latent))."""
        z = self.encode(x, ctx, signs)
        return self.decoder(z), z
