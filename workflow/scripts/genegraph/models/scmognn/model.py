"""The scMoGNN network (spec §2.4; DANCE predict_modality ``ScMoGCN`` with the GEX->ADT options).

Initial embeddings: feature (gene) nodes get a learned ID embedding E_feat (n_features, d) through leaky ReLU;
cell nodes get one learned vector (every cell the same; ``cell_init='svd'``: a linear map of the SVD
components) through leaky ReLU, plus leaky_relu(dropout_0.2(Linear_9->d(batch statistics))).

Layer l (of L): three weighted SAGE-mean convolutions (:class:`~genegraph.models.layers.sparse.
WeightedSAGEConv`), one per relation, each with edge dropout on its weights:
    cell'     = GN(conv_feature2cell(h_feat -> h_cell))
    m_cell    = GN(conv_cell2feature(h_cell -> h_feat)),  m_path = GN(conv_pathway(h_feat -> h_feat))
    feature'  = (1 - α) m_cell + α m_path       (``alpha``; ``learned_alpha``: softmax of 2 learned logits;
                                                  ``sum``: m_cell + m_path without GroupNorm, as the reference)
then GELU and dropout on both node types. Without pathway edges, feature' = GN(m_cell). GN = GroupNorm(4, d).
Before layers 2..L the input is concat(h_l, h_0) (``residual='initial_cat'``, so those convolutions take 2d
inputs); the other residual options are listed in the schema.

Readout: Σ_l softmax(w)_l · H_cell^l over the L layer outputs (``weighted_sum``) or their concatenation, then
one linear layer to the proteins. Shapes: forward(graph) -> (n_cells, n_outputs).

Deviations (options of the reference left out): the pathway aggregations 'attention', 'one_gate', 'two_gate'
and 'cat'; extra embedding / readout layers (the reference defaults, 1 each, are built); activations other
than GELU; batch / layer norm; the mini-batch node-sampling mode (training is full-batch only); the GCN
('gcn') aggregator. The dissertation's GCN normalisation (Eqs. 2.6-2.8) is not offered: the code's SAGE-mean
is what produced the reported numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import DataError
from ..layers.sparse import WeightedSAGEConv
from .graph import CellFeatureGraph

#: Dropout on the encoded batch statistics (a constant of the reference).
BATCH_FEATURE_DROPOUT = 0.2
RESIDUALS = ("initial_cat", "initial_add", "cat", "add", "none")


@dataclass(frozen=True)
class ScMoGNNSettings:
    """scMoGNN prediction settings (config ``scmognn``; meanings and defaults in the schema fragment)."""

    mode: str
    hidden: int
    layers: int
    pathway: bool
    pathway_weight: str
    pathway_threshold: float
    pathway_aggregation: str
    alpha: float
    batch_features: bool
    cell_init: str
    residual: str
    readout: str
    normalization: str
    output_activation: str
    edge_dropout: float
    dropout: float
    lr: float
    weight_decay: float
    epochs: int
    lr_decay: float
    lr_decay_every: int
    lr_decay_after: int
    patience: int
    early_stopping_after: int
    restore_best: bool
    log_every: int

    def validate(self) -> None:
        if self.normalization == "group" and self.hidden % 4:
            raise DataError(f"scmognn.hidden must be a multiple of 4 for GroupNorm(4), got {self.hidden}")
        if self.residual not in RESIDUALS:
            raise DataError(f"scmognn.residual must be one of {', '.join(RESIDUALS)}")


def _norm(kind: str, width: int) -> nn.Module:
    return nn.GroupNorm(4, width) if kind == "group" else nn.Identity()


class ScMoGNN(nn.Module):
    """scMoGNN for one graph layout: ``n_features`` gene nodes, ``n_outputs`` predicted proteins.

    ``pathway``: whether the graph carries gene-gene edges (a pathway convolution per layer);
    ``cell_init_dim``: width of ``graph.cell_init`` when ``settings.cell_init == 'svd'``."""

    def __init__(self, n_features: int, n_outputs: int, settings: ScMoGNNSettings, pathway: bool,
                 n_batch_stats: int = 9, cell_init_dim: int | None = None):
        super().__init__()
        d, s = settings.hidden, settings
        self.settings = s
        self.pathway = pathway
        self.embed_feat = nn.Embedding(n_features, d)
        if s.cell_init == "svd":
            if not cell_init_dim:
                raise DataError("cell_init='svd' needs the graph's SVD cell features")
            self.embed_cell = nn.Linear(cell_init_dim, d)
        else:
            self.embed_cell = nn.Embedding(2, d)
        self.batch_encoder = nn.Linear(n_batch_stats, d) if s.batch_features else None
        widen = s.residual in ("initial_cat", "cat")
        self.conv_f2c, self.conv_c2f, self.conv_pw = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.norm_cell, self.norm_feat, self.norm_path = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for layer in range(s.layers):
            w = 2 * d if (widen and layer > 0) else d
            self.conv_f2c.append(WeightedSAGEConv(w, w, d, edge_drop=s.edge_dropout))
            self.conv_c2f.append(WeightedSAGEConv(w, w, d, edge_drop=s.edge_dropout))
            self.norm_cell.append(_norm(s.normalization, d))
            self.norm_feat.append(_norm(s.normalization, d))
            if pathway:
                self.conv_pw.append(WeightedSAGEConv(w, w, d, edge_drop=s.edge_dropout))
                self.norm_path.append(_norm(s.normalization, d))
        self.alpha_logits = nn.Parameter(torch.zeros(2)) if s.pathway_aggregation == "learned_alpha" else None
        self.layer_logits = nn.Parameter(torch.zeros(s.layers))
        read_in = d if s.readout == "weighted_sum" else d * s.layers
        self.head = nn.Linear(read_in, n_outputs)

    def initial(self, graph: CellFeatureGraph) -> tuple[Tensor, Tensor]:
        """(h_feat (n_features, d), h_cell (n_cells, d)) before the first layer."""
        dev = self.layer_logits.device
        h_feat = F.leaky_relu(self.embed_feat(torch.arange(graph.n_features, device=dev)))
        if isinstance(self.embed_cell, nn.Linear):
            h_cell = F.leaky_relu(self.embed_cell(graph.cell_init))
        else:
            one = torch.ones(1, dtype=torch.long, device=dev)
            h_cell = F.leaky_relu(self.embed_cell(one)).expand(graph.n_cells, -1)
        if self.batch_encoder is not None:
            encoded = F.dropout(self.batch_encoder(graph.batch_stats), BATCH_FEATURE_DROPOUT, self.training)
            h_cell = h_cell + F.leaky_relu(encoded)
        return h_feat, h_cell

    def _mix(self, layer: int, m_cell: Tensor, m_path: Tensor | None) -> Tensor:
        if m_path is None:
            return self.norm_feat[layer](m_cell)
        agg = self.settings.pathway_aggregation
        if agg == "sum":
            return m_cell + m_path
        a, b = self.norm_feat[layer](m_cell), self.norm_path[layer](m_path)
        if agg == "learned_alpha":
            w = torch.softmax(self.alpha_logits, 0)
            return w[0] * a + w[1] * b
        alpha = self.settings.alpha
        return (1.0 - alpha) * a + alpha * b

    def _layer(self, graph: CellFeatureGraph, layer: int, h_feat: Tensor, h_cell: Tensor) -> tuple[Tensor, Tensor]:
        p = self.settings.dropout
        cell = self.norm_cell[layer](self.conv_f2c[layer](graph.feature2cell, h_feat, h_cell))
        m_cell = self.conv_c2f[layer](graph.cell2feature, h_cell, h_feat)
        m_path = None
        if self.pathway:
            m_path = self.conv_pw[layer](graph.pathway, h_feat, h_feat)
        feat = self._mix(layer, m_cell, m_path)
        return (F.dropout(F.gelu(feat), p, self.training), F.dropout(F.gelu(cell), p, self.training))

    def cell_layers(self, graph: CellFeatureGraph) -> list[Tensor]:
        """The cell embeddings after each layer, L tensors (n_cells, d)."""
        if self.pathway and graph.pathway is None:
            raise DataError("the model was built with pathway edges but the graph has none")
        h0 = self.initial(graph)
        hist = [h0]
        h = h0
        residual = self.settings.residual
        for layer in range(self.settings.layers):
            if layer > 0 and residual != "none":
                ref = hist[0] if residual.startswith("initial") else hist[-2]
                if residual.endswith("cat"):
                    h = (torch.cat([h[0], ref[0]], 1), torch.cat([h[1], ref[1]], 1))
                else:
                    h = (h[0] + ref[0], h[1] + ref[1])
            h = self._layer(graph, layer, *h)
            hist.append(h)
        return [cell for _, cell in hist[1:]]

    def forward(self, graph: CellFeatureGraph) -> Tensor:
        cells = self.cell_layers(graph)
        if self.settings.readout == "weighted_sum":
            w = torch.softmax(self.layer_logits, 0)
            h = sum(w[i] * c for i, c in enumerate(cells))
        else:
            h = torch.cat(cells, 1)
        out = self.head(h)
        return F.relu(out) if self.settings.output_activation == "relu" else out
