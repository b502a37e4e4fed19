"""Fine-tuning machinery shared by the downstream tasks: the task heads and one training loop with
warm-up, plateau learning-rate halving and early stopping on a validation score (spec §5.2 fine-tuning).

Heads (the reference's downstream heads):

* :class:`DenoisingHead`: MLP on the latent (dropout → Linear(d_z → decoder_hidden) → ReLU → dropout →
  Linear(→ vocabulary rows of the sentence)) predicting log-normalised expression, trained with
  MSE(masked entries) + MSE(all entries).
* :class:`AnnotationHead`: the reference's ``latent_mod='ae'`` + one-layer annotation head, i.e. a linear
  map Linear(hidden → d_z) → dropout → Linear(d_z → classes) on the encoder states.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...errors import DataError

log = logging.getLogger(__name__)

LR_FACTOR = 0.5  # plateau halving (the reference's ReduceLROnPlateau factor is not recorded in the spec)


class DenoisingHead(nn.Module):
    """(n, d_z) latent → (n, m) log-normalised expression over vocabulary rows ``genes`` (m,)."""

    def __init__(self, latent_dim: int, hidden: int, vocab_size: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(nn.Dropout(dropout), nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, z: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        u = self.body(z)
        return u @ self.out.weight.index_select(0, genes).T + self.out.bias.index_select(0, genes)


class AnnotationHead(nn.Module):
    """(n, hidden) encoder states → (n, classes) logits."""

    def __init__(self, hidden: int, latent_dim: int, classes: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, latent_dim), nn.Dropout(dropout), nn.Linear(latent_dim, classes))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def fine_tune(module: nn.Module, epoch_losses: Callable[[np.random.Generator], Iterator[torch.Tensor]],
              validate: Callable[[], float], *, epochs: int, lr: float, weight_decay: float, warmup_epochs: int,
              lr_patience: int, patience: int, seed: int, device: torch.device, what: str) -> pd.DataFrame:
    """Train every parameter of ``module`` and keep the weights of its best validation epoch.

    ``epoch_losses(rng)`` yields the loss of each step of one epoch (one AdamW step per loss, taken before the
    next is computed); ``validate()`` scores the model (lower is better; called in eval mode without
    gradients). Learning rate: linear warm-up over ``warmup_epochs``, then halved after ``lr_patience``
    epochs without improvement; training stops after ``patience`` such epochs. Returns the per-epoch history
    (epoch, train_loss, val, lr, seconds)."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    rows, best, best_state, since, since_lr, scale = [], float("inf"), None, 0, 0, 1.0
    cuda = [device.index or 0] if device.type == "cuda" else []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for epoch in range(1, epochs + 1):
            warm = min(1.0, epoch / warmup_epochs) if warmup_epochs else 1.0
            for group in optimizer.param_groups:
                group["lr"] = lr * warm * scale
            module.train()
            losses = []
            for loss in epoch_losses(rng):
                if not torch.isfinite(loss):
                    raise DataError(f"{what}: fine-tuning diverged at epoch {epoch} (loss {float(loss)})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            module.eval()
            with torch.no_grad():
                score = float(validate())
            rows.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val": score,
                         "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})
            if score < best:
                best, since, since_lr = score, 0, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                since += 1
                since_lr += 1 if epoch > warmup_epochs else 0
                if since_lr >= lr_patience:
                    scale, since_lr = scale * LR_FACTOR, 0
            if epoch % 10 == 0 or epoch == 1:
                log.info("%s epoch %d: train %.4f, val %.4f (best %.4f), %.1f s", what, epoch, rows[-1]["train_loss"],
                         score, best, rows[-1]["seconds"])
            if since >= patience:
                log.info("%s: early stop at epoch %d (best val %.4f)", what, epoch, best)
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return pd.DataFrame(rows, columns=["epoch", "train_loss", "val", "lr", "seconds"])
