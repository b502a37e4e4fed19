"""The training loop shared by the neural baselines: every epoch visits the graphs in file order with one
Adam step per graph (the MuSe-GNN schedule), all parameters updated at each step."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)


def fit(step_loss: Callable[[int], Tensor], n_graphs: int, optimizer: torch.optim.Optimizer, epochs: int,
        name: str) -> list[float]:
    """Run ``epochs`` epochs of one step per graph (``step_loss(i)`` builds graph i's loss); returns the
    mean loss of each epoch."""
    history = []
    every = max(1, epochs // 10)
    for epoch in range(1, epochs + 1):
        losses = []
        for i in range(n_graphs):
            optimizer.zero_grad(set_to_none=True)
            loss = step_loss(i)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        history.append(float(torch.stack(losses).mean()))
        if epoch == 1 or epoch % every == 0 or epoch == epochs:
            log.info("%s epoch %d/%d: loss %.5f", name, epoch, epochs, history[-1])
    return history


class Trained(NamedTuple):
    """What a trained baseline returns: per graph the (N_i, d) embedding, the per-epoch mean loss, and the
    number of trained parameters."""

    embeddings: list[np.ndarray]
    history: list[float]
    n_parameters: int


@torch.no_grad()
def embed_all(encode: Callable[[int], Tensor], n_graphs: int) -> list[np.ndarray]:
    """(N_i, d) float32 embeddings of every graph from ``encode(i)`` (no gradients)."""
    return [encode(i).float().cpu().numpy() for i in range(n_graphs)]


def seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed`` (masks, noise, sampling)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
