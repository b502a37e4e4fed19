"""MAE and WSMAE baselines (spec §3.5): weight-sharing MLP encoders trained on masked node features.

Encoder, dim = d (32): a per-dataset Linear(C_i -> 4d) + Mish, then layers shared by all datasets:
Linear(4d -> 2d) + Mish -> Linear(2d -> d). Its input is a **masked copy** of the residuals: each entry is
set to 0 with probability ``mask_frac`` (0.25), drawn afresh at every step.

* MAE reconstructs the features: a shared Linear(d -> 2d) + Mish -> Linear(2d -> 4d) + Mish and a
  per-dataset Linear(4d -> C_i); loss = MSE against the **unmasked** features over all N x C entries.
* WSMAE reconstructs the graph: a per-dataset MuSe-GNN row-MLP decoder on z zᵀ (3 layers N -> N) giving edge
  logits; loss = BCE against the dense 0/1 adjacency (the authors' sigmoid + BCELoss, computed stably from
  the logits).

The embedding is taken, as in the authors' scripts, from a masked copy of the features (``embed="masked"``,
one more draw after training); ``embed="unmasked"`` embeds the full features instead (our fix: the encoder
then sees every entry at inference).

Fixed against the authors' scripts: MAE masked the features in place, so its target was masked too (here
the mask is applied to a copy); MAE's decoder optimiser was never stepped (here one Adam holds both
parameter groups, encoder at ``lr_enc`` and decoder at ``lr_dec``, and every step updates both); the mask
was drawn once (here at every step); WSMAE read a masked-feature attribute its script never created and so
could not run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genegraph.models.baselines.data import GraphTensors
from genegraph.models.baselines.training import Trained, embed_all, fit, seeded_generator
from genegraph.models.musegnn.model import RowMLPDecoder

log = logging.getLogger(__name__)


def masked_copy(x: Tensor, frac: float, gen: torch.Generator) -> Tensor:
    """A copy of ``x`` with each entry set to 0 with probability ``frac`` (``x`` itself is untouched)."""
    keep = torch.rand(x.shape, generator=gen, device=x.device) >= frac
    return x * keep


class SharedMLPEncoder(nn.Module):
    """Per-dataset Linear(C_i, 4d) + Mish, shared Linear(4d, 2d) + Mish + Linear(2d, d)."""

    def __init__(self, in_dims: Sequence[int], dim: int = 32):
        super().__init__()
        self.first = nn.ModuleList(nn.Linear(c, 4 * dim) for c in in_dims)
        self.shared = nn.Sequential(nn.Linear(4 * dim, 2 * dim), nn.Mish(), nn.Linear(2 * dim, dim))

    def forward(self, i: int, x: Tensor) -> Tensor:
        return self.shared(F.mish(self.first[i](x)))


class FeatureDecoder(nn.Module):
    """MAE decoder: shared Linear(d, 2d) + Mish + Linear(2d, 4d) + Mish, per-dataset Linear(4d, C_i)."""

    def __init__(self, in_dims: Sequence[int], dim: int = 32):
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(dim, 2 * dim), nn.Mish(), nn.Linear(2 * dim, 4 * dim), nn.Mish())
        self.last = nn.ModuleList(nn.Linear(4 * dim, c) for c in in_dims)

    def forward(self, i: int, z: Tensor) -> Tensor:
        return self.last[i](self.shared(z))


def _train(graphs: Sequence[GraphTensors], encoder: nn.Module, decoder: nn.Module,
           recon_loss: Callable[[int, Tensor], Tensor], seed: int, epochs: int, lr_enc: float, lr_dec: float,
           mask_frac: float, name: str, embed: str) -> Trained:
    """One Adam over encoder (``lr_enc``) and decoder (``lr_dec``); each step encodes a fresh masked copy
    of graph i's features and minimises ``recon_loss(i, z)``. The embedding encodes a masked copy
    (``embed="masked"``) or the features themselves (``"unmasked"``)."""
    device = graphs[0].x.device
    encoder.to(device)
    decoder.to(device)
    gen = seeded_generator(seed, device)
    opt = torch.optim.Adam([{"params": encoder.parameters(), "lr": lr_enc},
                            {"params": decoder.parameters(), "lr": lr_dec}])

    def step_loss(i: int) -> Tensor:
        z = encoder(i, masked_copy(graphs[i].x, mask_frac, gen))
        return recon_loss(i, z)

    encoder.train()
    decoder.train()
    history = fit(step_loss, len(graphs), opt, epochs, name)
    encoder.eval()
    n_parameters = sum(p.numel() for m in (encoder, decoder) for p in m.parameters())
    if embed == "masked":
        z = embed_all(lambda i: encoder(i, masked_copy(graphs[i].x, mask_frac, gen)), len(graphs))
    else:
        z = embed_all(lambda i: encoder(i, graphs[i].x), len(graphs))
    return Trained(z, history, n_parameters)


def train_mae(graphs: Sequence[GraphTensors], seed: int, epochs: int, lr_enc: float, lr_dec: float,
              mask_frac: float = 0.25, dim: int = 32, embed: str = "masked") -> Trained:
    """Train MAE; returns the per-graph embeddings (see ``embed``) and the per-epoch mean loss."""
    torch.manual_seed(seed)
    in_dims = [g.x.shape[1] for g in graphs]
    encoder, decoder = SharedMLPEncoder(in_dims, dim), FeatureDecoder(in_dims, dim)
    return _train(graphs, encoder, decoder, lambda i, z: F.mse_loss(decoder(i, z), graphs[i].x), seed, epochs,
                  lr_enc, lr_dec, mask_frac, "MAE", embed)


def train_wsmae(graphs: Sequence[GraphTensors], seed: int, epochs: int, lr_enc: float, lr_dec: float,
                mask_frac: float = 0.25, dim: int = 32, embed: str = "masked") -> Trained:
    """Train WSMAE; returns the per-graph embeddings (see ``embed``) and the per-epoch mean loss."""
    torch.manual_seed(seed)
    encoder = SharedMLPEncoder([g.x.shape[1] for g in graphs], dim)
    decoder = nn.ModuleList(RowMLPDecoder(g.n_genes) for g in graphs)

    def recon(i: int, z: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(decoder[i](z), graphs[i].target)

    return _train(graphs, encoder, decoder, recon, seed, epochs, lr_enc, lr_dec, mask_frac, "WSMAE", embed)
