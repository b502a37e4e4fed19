"""Gene2vec-style skip-gram baseline (spec §3.5): each dataset on its own, its co-expression edges as the
corpus.

The authors trained gensim Word2Vec (skip-gram, negative sampling, window 1, 32 dimensions) on "sentences"
made of every nonzero adjacency entry as a two-gene list (both directions and the self-loops), 5 epochs in
the constructor and 10 more after. Here the same objective is trained directly with torch, so runs are
seeded and exactly repeatable: every nonzero entry (a, b) of the adjacency, self-loops included, is a
(centre, context) pair; each pair gets ``negative`` (5) negative contexts drawn from the unigram
distribution raised to ``ns_exponent`` (0.75; a gene's unigram count is its number of occurrences in the
corpus, proportional to its degree); loss = -log σ(w_a·c_b) - Σ_n log σ(-w_a·c_n), mean over a batch, Adam.
Input vectors start uniform in ±0.5/d and context vectors at 0, as in word2vec; the embedding is the input
vectors. Differences from gensim: mini-batch Adam instead of per-pair SGD with a decaying rate, each
entry once per epoch (gensim sees each of the two directions twice, a uniform factor), and no down-sampling
of frequent genes.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from genegraph.models.baselines.training import seeded_generator

log = logging.getLogger(__name__)


def negative_distribution(adj: sp.csr_matrix, exponent: float = 0.75) -> np.ndarray:
    """(N,) sampling probabilities of negative contexts: degree ** exponent, normalised."""
    weight = np.diff(adj.indptr).astype(np.float64) ** exponent
    return weight / weight.sum()


def train_skipgram(adj: sp.csr_matrix, seed: int, epochs: int = 15, dim: int = 32, negative: int = 5,
                   ns_exponent: float = 0.75, lr: float = 0.01, batch_size: int = 1024,
                   name: str = "Gene2vec") -> tuple[np.ndarray, list[float]]:
    """Skip-gram embedding (N, dim) of the genes of one graph (``adj`` (N, N) 0/1 CSR) and the per-epoch
    mean loss."""
    n = adj.shape[0]
    torch.manual_seed(seed)
    gen = seeded_generator(seed, "cpu")
    centre_vecs = torch.nn.Parameter(torch.empty(n, dim).uniform_(-0.5 / dim, 0.5 / dim))
    context_vecs = torch.nn.Parameter(torch.zeros(n, dim))
    coo = adj.tocoo()
    centres, contexts = torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))
    if len(centres) == 0:
        log.warning("%s: graph without edges; embedding left at its initial values", name)
    cdf = torch.from_numpy(np.cumsum(negative_distribution(adj, ns_exponent)))
    opt = torch.optim.Adam([centre_vecs, context_vecs], lr=lr)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(centres), generator=gen)
        total, count = 0.0, 0
        for lo in range(0, len(order), batch_size):
            batch = order[lo:lo + batch_size]
            a, b = centres[batch], contexts[batch]
            neg = torch.searchsorted(cdf, torch.rand(len(batch) * negative, generator=gen, dtype=torch.float64))
            neg = neg.clamp(max=n - 1).view(len(batch), negative)
            w = centre_vecs[a]
            pos_score = (w * context_vecs[b]).sum(-1)
            neg_score = torch.bmm(context_vecs[neg], w.unsqueeze(-1)).squeeze(-1)
            loss = -(F.logsigmoid(pos_score) + F.logsigmoid(-neg_score).sum(-1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        history.append(total / max(count, 1))
    if epochs:
        log.info("%s: %d genes, %d pairs, %d epochs, loss %.4f -> %.4f", name, n, len(centres), epochs,
                 history[0], history[-1])
    return centre_vecs.detach().numpy().astype(np.float32), history
