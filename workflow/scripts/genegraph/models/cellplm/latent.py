"""Gaussian-mixture VAE latent of CellPLM (spec §5.2, Eqs. 5.5–5.6, C.2–C.5).

q(y|h): Gumbel-softmax over K clusters (soft, temperature τ, in training; the hard argmax at inference).
q(z|h, y): Linear(h ⊕ y → d_z) → ReLU → μ = Linear, σ² = softplus(Linear); z = μ + σ·ε in training, μ at inference.
p(z|y): μ_y = Linear(y), σ²_y = softplus(Linear(y)).
Loss = w_g · max(λ, mean_cells[log q(z|h,y) − log p(z|y)]) + w_c · max(λ, mean_cells[KL(q(y|h) ‖ U(K))]),
the log-densities summed over the d_z dimensions, variances + 1e-8 (the reference's free-bits floor λ).

Deviation: at inference the reference still adds Gumbel noise before taking the hard cluster, so its
embeddings change from call to call; here the hard cluster is the argmax of the logits (deterministic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

VAR_EPS = 1e-8


@dataclass
class LatentOutput:
    """z (n, d_z) (the sample in training, μ at inference); the parts of the loss; q(y|h) as probabilities."""

    z: torch.Tensor
    mu: torch.Tensor
    var: torch.Tensor
    cluster_prob: torch.Tensor
    gauss_term: torch.Tensor
    cluster_term: torch.Tensor
    loss: torch.Tensor


def log_normal(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(x; μ, diag(var + 1e-8)) summed over the last dimension."""
    var = var + VAR_EPS
    return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x - mu) ** 2 / var).sum(-1)


def gumbel_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax((logits + g) / τ) with standard Gumbel noise g (drawn from torch's global generator)."""
    u = torch.rand_like(logits)
    g = -torch.log(-torch.log(u + 1e-20) + 1e-20)
    return torch.softmax((logits + g) / temperature, dim=-1)


class GaussianMixtureLatent(nn.Module):
    """(n, in_dim) encoder states → :class:`LatentOutput` with d_z = ``latent_dim`` and K = ``clusters``."""

    def __init__(self, in_dim: int, latent_dim: int, clusters: int, free_bits: float, gauss_weight: float,
                 cluster_weight: float, temperature: float):
        super().__init__()
        self.clusters, self.free_bits, self.temperature = clusters, free_bits, temperature
        self.gauss_weight, self.cluster_weight = gauss_weight, cluster_weight
        self.cluster_logits = nn.Linear(in_dim, clusters)
        self.z_hidden = nn.Sequential(nn.Linear(in_dim + clusters, latent_dim), nn.ReLU())
        self.z_mu = nn.Linear(latent_dim, latent_dim)
        self.z_var = nn.Linear(latent_dim, latent_dim)
        self.prior_mu = nn.Linear(clusters, latent_dim)
        self.prior_var = nn.Linear(clusters, latent_dim)

    def forward(self, h: torch.Tensor) -> LatentOutput:
        logits = self.cluster_logits(h)
        if self.training:
            y = gumbel_softmax(logits, self.temperature)
        else:
            y = F.one_hot(logits.argmax(-1), self.clusters).to(h.dtype)
        hidden = self.z_hidden(torch.cat([h, y], dim=-1))
        mu, var = self.z_mu(hidden), F.softplus(self.z_var(hidden))
        z = mu + torch.randn_like(mu) * torch.sqrt(var + 1e-10) if self.training else mu
        p_mu, p_var = self.prior_mu(y), F.softplus(self.prior_var(y))
        gauss = (log_normal(z, mu, var) - log_normal(z, p_mu, p_var)).mean()
        log_q = F.log_softmax(logits, dim=-1)
        cluster = ((log_q.exp() * log_q).sum(-1) + math.log(self.clusters)).mean()
        loss = (self.gauss_weight * torch.clamp(gauss, min=self.free_bits)
                + self.cluster_weight * torch.clamp(cluster, min=self.free_bits))
        return LatentOutput(z=z, mu=mu, var=var, cluster_prob=log_q.exp(), gauss_term=gauss, cluster_term=cluster,
                            loss=loss)
