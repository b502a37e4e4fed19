"""The scMoFormer network (spec §3.3, Eq. 3.11–3.13).

Per layer, on the mini-batch's cells, all genes and all panel proteins:

- cross-modal weighted SAGE-mean messages cell→gene and gene→cell (expression weights, edge dropout),
  gene→protein and protein→gene (weight 1), each followed by SELU and LayerNorm;
- a GraphGPS block on the gene graph and one on the protein graph: a local SAGE-mean step over the STRING
  edges and a global linear (FAVOR+) self-attention over all nodes of the type, each with dropout, residual
  and LayerNorm, summed, then a feed-forward block (SELU) with residual and LayerNorm;
- a one-layer Performer over the batch's cells (pre-norm, as performer-pytorch) and a cell MLP
  (Linear → SELU → LayerNorm);
- h_g = c→g + p→g + GPS_g, h_p = g→p + GPS_p, h_c = g→c + MLP(c) + Performer(c), each sum through SELU and
  LayerNorm.

Readout: the cell states of every layer (input embedding included) concatenated → dropout → Linear → proteins.

Without protein nodes (``scmoformer_no_prior``) the protein terms are left out; without gene–gene edges the
gene GPS block's local step sees no neighbours (its self term remains).

Deviations:
- The cell Performer's feed-forward is GELU (performer-pytorch's default) with the attention dropout; the
  reference passes ``kernel_fn=SELU``, which performer-pytorch ignores without generalised attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...errors import DataError
from ..layers.attention import LinearTransformerLayer, MultiheadLinearAttention
from ..layers.sparse import SparseAdjacency, WeightedSAGEConv


@dataclass(frozen=True)
class ModelSettings:
    """Architecture (config ``scmoformer.model``); see the schema for each key."""

    hidden: int
    layers: int
    heads: int
    ffn_multiplier: int
    dropout: float
    attention_dropout: float
    edge_dropout: float
    attention: str
    n_features: int | None
    feature_redraw_interval: int

    def validate(self) -> None:
        if self.hidden % self.heads:
            raise DataError(f"scmoformer.model.hidden ({self.hidden}) must be divisible by heads ({self.heads})")


@dataclass(frozen=True)
class GraphTensors:
    """The batch-independent part of the graph, on the model's device.

    ``gene_features`` (n_genes, s) float32; ``gene_pe`` (n_genes, k) or None; ``protein_pe`` (n_proteins, k)
    or None; ``gene_gene`` (n_genes, n_genes) adjacency (possibly empty); ``protein_protein``
    (n_proteins, n_proteins) and ``protein_gene`` (n_proteins, n_genes; dst protein, src gene), both None
    without protein nodes.
    """

    gene_features: Tensor
    gene_pe: Tensor | None
    protein_pe: Tensor | None
    gene_gene: SparseAdjacency
    protein_protein: SparseAdjacency | None
    protein_gene: SparseAdjacency | None

    @property
    def has_proteins(self) -> bool:
        return self.protein_gene is not None


class GPSBlock(nn.Module):
    """GraphGPS layer on one node type: h (n, d), adj (n, n) -> (n, d)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, attention_dropout: float,
                 attention: str, n_features: int | None, seed: int, redraw_interval: int):
        super().__init__()
        self.local = WeightedSAGEConv(dim, dim, dim)
        self.attn = MultiheadLinearAttention(dim, heads, attention, n_features, attention_dropout, seed,
                                             redraw_interval)
        self.dropout = nn.Dropout(dropout)
        self.norm_local = nn.LayerNorm(dim)
        self.norm_attn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.SELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim),
                                 nn.Dropout(dropout))
        self.norm_ffn = nn.LayerNorm(dim)

    def forward(self, adj: SparseAdjacency, h: Tensor) -> Tensor:
        local = self.norm_local(h + self.dropout(self.local(adj, h, h)))
        glob = self.norm_attn(h + self.dropout(self.attn(h)))
        out = local + glob
        return self.norm_ffn(out + self.ffn(out))


class _Message(nn.Module):
    """Weighted SAGE-mean message src -> dst, then SELU and LayerNorm: (n_dst, d)."""

    def __init__(self, dim: int, edge_dropout: float = 0.0):
        super().__init__()
        self.conv = WeightedSAGEConv(dim, dim, dim, edge_drop=edge_dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, adj: SparseAdjacency, h_src: Tensor, h_dst: Tensor) -> Tensor:
        return self.norm(torch.selu(self.conv(adj, h_src, h_dst)))


class ScMoFormerLayer(nn.Module):
    """One scMoFormer layer: (h_cells (b, d), h_genes (g, d), h_proteins (p, d) or None) -> same shapes."""

    def __init__(self, s: ModelSettings, proteins: bool, seed: int):
        super().__init__()
        d, ffn = s.hidden, s.hidden * s.ffn_multiplier
        gps = {"heads": s.heads, "ffn_dim": ffn, "dropout": s.dropout, "attention_dropout": s.attention_dropout,
               "attention": s.attention, "n_features": s.n_features, "redraw_interval": s.feature_redraw_interval}
        self.cell_to_gene = _Message(d, s.edge_dropout)
        self.gene_to_cell = _Message(d, s.edge_dropout)
        self.gene_gps = GPSBlock(d, seed=seed, **gps)
        self.cell_transformer = LinearTransformerLayer(
            d, s.heads, ffn, s.attention, s.attention_dropout, norm_first=True, n_features=s.n_features,
            seed=seed + 1, redraw_interval=s.feature_redraw_interval)
        self.cell_mlp = nn.Sequential(nn.Linear(d, d), nn.SELU(), nn.LayerNorm(d))
        self.norm_cell = nn.LayerNorm(d)
        self.norm_gene = nn.LayerNorm(d)
        self.proteins = proteins
        if proteins:
            self.gene_to_protein = _Message(d)
            self.protein_to_gene = _Message(d)
            self.protein_gps = GPSBlock(d, seed=seed + 2, **gps)
            self.norm_protein = nn.LayerNorm(d)

    def forward(self, graph: GraphTensors, cell_gene: SparseAdjacency, h_c: Tensor, h_g: Tensor,
                h_p: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        gene_cell = cell_gene.transpose()
        g = self.cell_to_gene(gene_cell, h_c, h_g) + self.gene_gps(graph.gene_gene, h_g)
        c = self.gene_to_cell(cell_gene, h_g, h_c) + self.cell_mlp(h_c) + self.cell_transformer(h_c)
        p = None
        if self.proteins:
            g = g + self.protein_to_gene(graph.protein_gene.transpose(), h_p, h_g)
            p = self.gene_to_protein(graph.protein_gene, h_g, h_p) + self.protein_gps(graph.protein_protein, h_p)
            p = self.norm_protein(torch.selu(p))
        return self.norm_cell(torch.selu(c)), self.norm_gene(torch.selu(g)), p


class ScMoFormer(nn.Module):
    """scMoFormer: cell features (b, s) of a mini-batch + the graph -> protein predictions (b, n_proteins).

    ``n_inputs``: width s of the SVD cell and gene features; ``pe_dim``: width k of the positional encodings
    (None: no PE); ``proteins``: whether protein nodes exist; ``seed``: FAVOR+ feature draws."""

    def __init__(self, s: ModelSettings, n_inputs: int, n_proteins: int, pe_dim: int | None, proteins: bool,
                 seed: int):
        super().__init__()
        d = s.hidden
        self.cell_embed = nn.Linear(n_inputs, d)
        self.gene_embed = nn.Linear(n_inputs, d)
        self.gene_pe = nn.Linear(pe_dim, d) if pe_dim else None
        self.protein_embed = nn.Embedding(n_proteins, d) if proteins else None
        self.protein_pe = nn.Linear(pe_dim, d) if pe_dim and proteins else None
        self.dropout = nn.Dropout(s.dropout)
        self.layers = nn.ModuleList(ScMoFormerLayer(s, proteins, seed + 3 * i) for i in range(s.layers))
        self.head = nn.Linear(d * (s.layers + 1), n_proteins)

    def forward(self, graph: GraphTensors, cell_gene: SparseAdjacency, cell_features: Tensor) -> Tensor:
        """``cell_gene`` (b, n_genes): dst cell, src gene, expression weights of the batch's cells;
        ``cell_features`` (b, s)."""
        h_c = self.dropout(torch.selu(self.cell_embed(cell_features)))
        h_g = self.gene_embed(graph.gene_features)
        if self.gene_pe is not None:
            h_g = h_g + self.gene_pe(graph.gene_pe)
        h_g = self.dropout(torch.selu(h_g))
        h_p = None
        if self.protein_embed is not None:
            h_p = self.protein_embed.weight
            if self.protein_pe is not None:
                h_p = h_p + self.protein_pe(graph.protein_pe)
            h_p = self.dropout(torch.selu(h_p))
        states = [h_c]
        for layer in self.layers:
            h_c, h_g, h_p = layer(graph, cell_gene, h_c, h_g, h_p)
            states.append(h_c)
        return self.head(self.dropout(torch.cat(states, dim=1)))
