"""Negative-binomial reconstruction objective of CellPLM pre-training (spec §5.2, ``dec_mod='nbmlp'``, dae).

NB with mean μ and inverse dispersion θ ("size"): P(x) = Γ(x+θ) / (Γ(θ) x!) · (θ/(θ+μ))^θ · (μ/(θ+μ))^x,
i.e. scipy's ``nbinom(n=θ, p=θ/(θ+μ))``. Loss per sentence, over the cells with at least one masked entry:

  mean_cells [ Σ_genes NLL(x, μ̃, θ) + Σ_masked genes NLL(x, μ̂, θ) ]

where μ̃ rescales the decoder's means so that they sum to the cell's observed library (over its measured
genes) and μ̂ rescales the masked entries' means to the masked entries' total (the ``dae`` term). Only
measured genes exist in a sentence, so unmeasured genes never contribute. Without any mask every cell counts.

The sums are computed exactly but cheaply: at x = 0 the NLL is θ·log(1 + μ/θ), so the log-gamma terms are
evaluated only at the non-zero counts (single-cell matrices are mostly zeros).

Deviations: none in the value (same eps, same rescaling, same cells); the reference's Eq. 5.7 masked MSE of the
dissertation text is not offered (the released checkpoint was trained with this NB objective, spec §5.2 ⚠).
"""

from __future__ import annotations

import torch

EPS = 1e-10


def nb_nll(x: torch.Tensor, mean: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Elementwise −log NB(x; mean, disp) (broadcasting); eps 1e-10 inside the logs and lgammas as the reference."""
    t1 = torch.lgamma(disp + EPS) + torch.lgamma(x + 1.0) - torch.lgamma(x + disp + EPS)
    t2 = (disp + x) * torch.log1p(mean / (disp + EPS)) + x * (torch.log(disp + EPS) - torch.log(mean + EPS))
    return t1 + t2


def nb_nll_rows(x: torch.Tensor, mean: torch.Tensor, disp: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """Row sums (r,) of ``weight`` · :func:`nb_nll` for dense (r, m) ``x``, ``mean`` and (m,) or (r, m) ``disp``.

    ``weight`` (r, m) of 0/1 selects entries (None: all)."""
    disp = disp.expand_as(mean)
    zero_part = disp * torch.log1p(mean / (disp + EPS))
    if weight is not None:
        zero_part = zero_part * weight
    r, c = (x if weight is None else x * weight).nonzero(as_tuple=True)
    xv, mv, dv = x[r, c], mean[r, c], disp[r, c]
    correction = nb_nll(xv, mv, dv) - dv * torch.log1p(mv / (dv + EPS))
    return zero_part.sum(-1).index_add(0, r, correction)


def rescale(mean: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """Rows of ``mean`` (n, m) scaled to sum to ``total`` (n,)."""
    return mean / mean.sum(-1, keepdim=True).clamp_min(EPS) * total[:, None]


def reconstruction_loss(counts: torch.Tensor, mean: torch.Tensor, disp: torch.Tensor,
                        mask: torch.Tensor | None, dae: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """Pre-training NB loss of one sentence.

    ``counts`` (n, m) raw counts, ``mean`` (n, m) decoder means, ``disp`` (m,) or (n, m), ``mask`` bool (n, m)
    True = masked (None: no masking). Returns the scalar loss and its parts ``{"nb", "nb_masked"}``."""
    disp = disp.expand_as(mean)
    masked_any = mask is not None and bool(mask.any())
    rows = mask.any(dim=1) if masked_any else torch.ones(counts.shape[0], dtype=torch.bool, device=counts.device)
    x, mu, th = counts[rows], mean[rows], disp[rows]
    full = nb_nll_rows(x, rescale(mu, x.sum(-1)), th)
    masked = torch.zeros_like(full)
    if dae and masked_any:
        m = mask[rows].to(mu.dtype)
        masked = nb_nll_rows(x, rescale(mu * m, (x * m).sum(-1)), th, m)
    loss = (full + masked).mean()
    return loss, {"nb": float(full.detach().mean()), "nb_masked": float(masked.detach().mean())}
