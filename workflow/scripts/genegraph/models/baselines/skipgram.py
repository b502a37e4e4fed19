"""Word2vec baselines on gene graphs (spec §3.5), with gensim's Word2Vec as the authors used it.

* **Gene2vec** (:func:`gene2vec`): each dataset on its own. As the authors' notebook: the "sentences" are
  every nonzero adjacency entry as a two-gene list (both directions and the self-loops); skip-gram
  (``sg=1``), ``window=1``, ``min_count=1``, 32 dimensions; gensim trains ``epochs`` (5) in the constructor
  and the notebook trains ``extra_epochs`` (10) more.
* **GIANT** (:func:`giant`; Greene et al. 2015, node2vec embeddings of tissue-specific functional networks):
  GIANT's networks integrate many data sources per tissue; here the tissue's network is built from the
  group's own graphs -- the edge weight of two genes is the share of the group's datasets holding both in
  which they are co-expressed, plus their STRING score / 1000 when the graphs carry STRING edges -- and
  embedded with node2vec at p = q = 1 (weighted random walks, ``walks_per_gene`` walks of ``walk_length``
  steps, then skip-gram with ``window``). Every dataset's gene gets its gene's vector, so GIANT aligns genes
  across datasets by construction.

Runs are repeatable: one worker thread, gensim's seed, and a hash function that does not depend on Python's
per-process string hashing (gensim seeds each word vector from the hash of the word).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from gensim.models import Word2Vec

log = logging.getLogger(__name__)


def stable_hash(text: str) -> int:
    """A process-independent string hash for gensim's vector seeding."""
    return zlib.crc32(text.encode())


def _word2vec(sentences: list[list[str]], seed: int, dim: int, window: int, epochs: int, extra_epochs: int,
              negative: int) -> Word2Vec:
    model = Word2Vec(sentences, vector_size=dim, window=window, min_count=1, sg=1, negative=negative, workers=1,
                     seed=seed, epochs=epochs, hashfxn=stable_hash)
    if extra_epochs:
        model.train(sentences, total_examples=len(sentences), epochs=extra_epochs)
    return model


def gene2vec(adj: sp.csr_matrix, genes: Sequence[str], seed: int, dim: int = 32, epochs: int = 5,
             extra_epochs: int = 10, negative: int = 5) -> np.ndarray:
    """(N, dim) float32 Gene2vec embedding of the genes of one graph (``adj`` (N, N), nonzero = edge)."""
    coo = sp.coo_matrix(adj)
    keep = coo.data != 0
    names = np.asarray(genes, dtype=str)
    sentences = [[names[a], names[b]] for a, b in zip(coo.row[keep], coo.col[keep])]
    if not sentences:
        raise ValueError("Gene2vec needs a graph with at least one edge")
    model = _word2vec(sentences, seed, dim, window=1, epochs=epochs, extra_epochs=extra_epochs, negative=negative)
    log.info("Gene2vec: %d genes, %d pairs, %d + %d epochs", len(names), len(sentences), epochs, extra_epochs)
    return _vectors(model, names, dim)


def _vectors(model: Word2Vec, genes: np.ndarray, dim: int) -> np.ndarray:
    """(N, dim) vectors of ``genes``; a gene the corpus never saw (no edge) gets zeros."""
    out = np.zeros((len(genes), dim), dtype=np.float32)
    for k, gene in enumerate(genes):
        if gene in model.wv.key_to_index:
            out[k] = model.wv[gene]
    return out


def functional_network(adjacencies: Sequence[sp.spmatrix], genes: Sequence[Sequence[str]],
                       string: Sequence[sp.spmatrix] | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """The group's network over the union of its genes: weight = share of the datasets holding both genes in
    which they are co-expressed (self-loops dropped), plus the largest STRING weight (score / 1000) of the
    pair over the datasets when ``string`` is given. Returns ((V, V) symmetric CSR, the V gene names)."""
    vocab = np.unique(np.concatenate([np.asarray(g, dtype=str) for g in genes]))
    v = len(vocab)
    edges = sp.csr_matrix((v, v))
    both = sp.csr_matrix((v, v))
    strongest = sp.csr_matrix((v, v))
    for k, (adj, names) in enumerate(zip(adjacencies, genes)):
        idx = np.searchsorted(vocab, np.asarray(names, dtype=str))
        lift = sp.csr_matrix((np.ones(len(idx)), (np.arange(len(idx)), idx)), shape=(len(idx), v))
        edges = edges + lift.T @ (sp.csr_matrix(adj) != 0).astype(np.float64) @ lift
        present = sp.csr_matrix(np.ones((1, len(idx))) @ lift)
        both = both + present.T @ present
        if string is not None:
            strongest = strongest.maximum(lift.T @ sp.csr_matrix(string[k], dtype=np.float64) @ lift)
    share = edges.multiply(both.power(-1))
    network = sp.csr_matrix(share + strongest)
    network.setdiag(0)
    network.eliminate_zeros()
    return network, vocab


def random_walks(network: sp.csr_matrix, walks_per_gene: int, walk_length: int,
                 rng: np.random.Generator) -> list[list[int]]:
    """Weighted random walks (node2vec with p = q = 1) from every gene with an edge."""
    indptr, indices, weights = network.indptr, network.indices, network.data
    starts = np.flatnonzero(np.diff(indptr) > 0)
    walks = []
    for _ in range(walks_per_gene):
        for start in rng.permutation(starts):
            walk = [int(start)]
            for _ in range(walk_length - 1):
                lo, hi = indptr[walk[-1]], indptr[walk[-1] + 1]
                if lo == hi:
                    break
                w = weights[lo:hi]
                walk.append(int(indices[lo + np.searchsorted(np.cumsum(w), rng.random() * w.sum())]))
            walks.append(walk)
    return walks


def giant(adjacencies: Sequence[sp.spmatrix], genes: Sequence[Sequence[str]], seed: int, dim: int = 32,
          string: Sequence[sp.spmatrix] | None = None, walks_per_gene: int = 10, walk_length: int = 80,
          window: int = 10, epochs: int = 1, negative: int = 5) -> list[np.ndarray]:
    """GIANT-style embeddings: one vector per gene of the group's functional network, given to that gene in
    every dataset. Returns per dataset the (N_i, dim) float32 embedding (zeros for a gene without edges)."""
    network, vocab = functional_network(adjacencies, genes, string)
    rng = np.random.default_rng(seed)
    walks = random_walks(network, walks_per_gene, walk_length, rng)
    if not walks:
        raise ValueError("GIANT needs a network with at least one edge")
    sentences = [[vocab[k] for k in walk] for walk in walks]
    model = _word2vec(sentences, seed, dim, window=window, epochs=epochs, extra_epochs=0, negative=negative)
    log.info("GIANT: network of %d genes, %d edges; %d walks of up to %d steps", len(vocab), network.nnz // 2,
             len(walks), walk_length)
    table = _vectors(model, vocab, dim)
    return [table[np.searchsorted(vocab, np.asarray(g, dtype=str))] for g in genes]
