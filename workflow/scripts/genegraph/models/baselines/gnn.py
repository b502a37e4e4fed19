"""GAE and VGAE baselines (spec §3.5): weight-sharing GCN encoders with an inner-product decoder.

Encoder, dim = d (32): a per-dataset GCNConv(C_i -> 4d) + Mish, then layers shared by all datasets:
GCNConv(4d -> 2d) + Mish -> GCNConv(2d -> d). VGAE, as configured by the authors, applies one more Mish to
the input of the shared layers and has two output heads (mean and log-sd, log-sd clamped at 10 as PyG does);
z = μ + ε·σ while training, the embedding is μ. A GCN layer is PyG's GCNConv computed densely,
Â (x W) + b with Â = D^-1/2 (A + I) D^-1/2 of the co-expression graph (Glorot weights, zero bias): on graphs
of 10-80 % density one N x N product is several times faster than scattering messages over the edges.

Loss per step (graph i): BCE of the inner-product **logits** z zᵀ against the dense 0/1 adjacency (all N²
entries), plus for VGAE the KL divergence to N(0, I), per node summed over dimensions and averaged over
nodes. The authors' scripts passed sigmoid(z zᵀ) into a BCE-with-logits loss (a double sigmoid, whose loss
can never fall below log(1 + e^-1) on an edge); here the logits go in once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genegraph.models.baselines.data import GraphTensors
from genegraph.models.baselines.training import Trained, embed_all, fit, seeded_generator

log = logging.getLogger(__name__)

#: PyG's clamp of the VGAE log-sd.
MAX_LOGSTD = 10.0


def inner_product_loss(z: Tensor, target: Tensor) -> Tensor:
    """Mean BCE of the logits z zᵀ (N, N) against the 0/1 ``target`` (N, N)."""
    return F.binary_cross_entropy_with_logits(z @ z.T, target)


def kl_divergence(mu: Tensor, logstd: Tensor) -> Tensor:
    """KL(N(μ, σ²) || N(0, I)): per node summed over dimensions, mean over nodes."""
    return -0.5 * torch.mean(torch.sum(1 + 2 * logstd - mu**2 - logstd.exp() ** 2, dim=1))


class DenseGCNLayer(nn.Module):
    """GCNConv(in, out) on a dense normalised adjacency: (N, in) -> (N, out) = Â (x W) + b."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.lin.weight)

    def forward(self, x: Tensor, norm_adj: Tensor) -> Tensor:
        return norm_adj @ self.lin(x) + self.bias


class SharedGCN(nn.Module):
    """Per-dataset first GCN layers and the shared GCN layers of GAE (``variational=False``) and VGAE."""

    def __init__(self, in_dims: Sequence[int], dim: int = 32, variational: bool = False):
        super().__init__()
        self.variational = variational
        self.first = nn.ModuleList(DenseGCNLayer(c, 4 * dim) for c in in_dims)
        self.hidden = DenseGCNLayer(4 * dim, 2 * dim)
        self.mu = DenseGCNLayer(2 * dim, dim)
        self.logstd = DenseGCNLayer(2 * dim, dim) if variational else None

    def forward(self, i: int, g: GraphTensors) -> tuple[Tensor, Tensor | None]:
        """(μ (N, d), log-sd (N, d) or None) of graph i."""
        h = F.mish(self.first[i](g.x, g.norm_adj))
        if self.variational:
            h = F.mish(h)
        h = F.mish(self.hidden(h, g.norm_adj))
        mu = self.mu(h, g.norm_adj)
        if self.logstd is None:
            return mu, None
        return mu, self.logstd(h, g.norm_adj).clamp(max=MAX_LOGSTD)


def train_gae(graphs: Sequence[GraphTensors], seed: int, epochs: int, lr: float, dim: int = 32,
              variational: bool = False) -> Trained:
    """Train GAE (or VGAE) on ``graphs``; returns the per-graph embeddings (μ), the per-epoch mean loss and the
    parameter count."""
    torch.manual_seed(seed)
    device = graphs[0].x.device
    model = SharedGCN([g.x.shape[1] for g in graphs], dim, variational).to(device)
    gen = seeded_generator(seed, device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step_loss(i: int) -> Tensor:
        mu, logstd = model(i, graphs[i])
        if logstd is None:
            return inner_product_loss(mu, graphs[i].target)
        noise = torch.randn(mu.shape, generator=gen, device=device)
        z = mu + noise * logstd.exp()
        return inner_product_loss(z, graphs[i].target) + kl_divergence(mu, logstd)

    model.train()
    history = fit(step_loss, len(graphs), opt, epochs, "VGAE" if variational else "GAE")
    model.eval()
    n_parameters = sum(p.numel() for p in model.parameters())
    return Trained(embed_all(lambda i: model(i, graphs[i])[0], len(graphs)), history, n_parameters)
