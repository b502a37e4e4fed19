"""Gene correspondences between graphs: the global gene vocabulary, common and "different" genes of a
pair of graphs, the Jaccard weights of the similarity loss and the InfoNCE positives (spec §2.4).

Everything is computed with array operations over a global gene vocabulary (sorted union of all gene
symbols): a graph's genes become global ids, its adjacency a sparse matrix whose columns are global ids,
and for a pair (i, j) the neighbour-set intersection of every common gene is one element-wise product of
two sparse matrices. No per-gene Python set operations.

The authors' code (``process_pair.py``) differs in two harmless ways: it orders common and different
genes by Python set iteration (here: by global id, so runs are reproducible), and it computes the pair
tables for all T(T-1) ordered pairs up front (here: on first use, then cached; the random draws come from a
generator seeded by (seed, i, j), so the tables do not depend on the order in which pairs are visited).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: Added to the Jaccard denominator, as in the authors' code.
JACCARD_EPS = 1e-8


@dataclass(frozen=True)
class GeneVocabulary:
    """Global gene vocabulary of a set of graphs.

    ``symbols``: (V,) sorted unique symbols; ``ids[i]``: (N_i,) global id of each gene of graph i;
    ``n_graphs``: (V,) how many graphs contain each symbol.
    """

    symbols: np.ndarray
    ids: tuple[np.ndarray, ...]
    n_graphs: np.ndarray

    def in_all(self, i: int) -> np.ndarray:
        """(N_i,) bool: the genes of graph i that every graph contains."""
        return self.n_graphs[self.ids[i]] == len(self.ids)


def build_vocabulary(gene_lists: Sequence[Sequence[str]]) -> GeneVocabulary:
    """Map every graph's genes to ids in the sorted union of all symbols (genes unique within a graph)."""
    sizes = [len(g) for g in gene_lists]
    flat = np.concatenate([np.asarray(g, dtype=str) for g in gene_lists]) if gene_lists else np.array([], str)
    symbols, inverse = np.unique(flat, return_inverse=True)
    ids = tuple(np.split(inverse.astype(np.int64), np.cumsum(sizes)[:-1]))
    n_graphs = np.bincount(inverse, minlength=len(symbols))
    return GeneVocabulary(symbols=symbols, ids=ids, n_graphs=n_graphs)


def self_loop_offsets(adj: sp.csr_matrix) -> np.ndarray:
    """(N,) offset of the diagonal entry inside each CSR row (indices sorted), -1 where a row has none."""
    n = adj.shape[0]
    rows = np.repeat(np.arange(n), np.diff(adj.indptr))
    diag = adj.indices == rows
    offsets = np.full(n, -1, dtype=np.int64)
    offsets[rows[diag]] = np.flatnonzero(diag) - adj.indptr[rows[diag]]
    return offsets


def draw_neighbours(
    adj: sp.csr_matrix, nodes: np.ndarray, rng: np.random.Generator, exclude_self: bool = False,
    self_offsets: np.ndarray | None = None,
) -> np.ndarray:
    """One uniformly drawn neighbour (local index) per entry of ``nodes``; a node without one gets itself.

    ``adj``: (N, N) CSR with sorted indices. With ``exclude_self`` the node itself is not drawn when it has
    any other neighbour (``self_offsets`` from :func:`self_loop_offsets`, computed when not given).
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    start = adj.indptr[nodes].astype(np.int64)
    deg = adj.indptr[nodes + 1] - start
    u = rng.random(len(nodes))
    if exclude_self:
        offs = (self_loop_offsets(adj) if self_offsets is None else self_offsets)[nodes]
        has_self = offs >= 0
        deg = deg - has_self
        k = np.floor(u * deg).astype(np.int64)
        k += has_self & (k >= offs)
    else:
        k = np.floor(u * deg).astype(np.int64)
    picked = adj.indices[np.minimum(start + k, max(adj.nnz - 1, 0))] if adj.nnz else nodes
    return np.where(deg > 0, picked, nodes).astype(np.int64)


@dataclass(frozen=True)
class PairIndex:
    """Correspondence of graph i and partner j (local gene positions, common genes ordered by global id).

    ``common_i``/``common_j``: (G,) positions of the G shared genes; ``jaccard``: (G,) float32
    |N_i(g) ∩ N_j(g)| / (|N_i(g) ∪ N_j(g)| + 1e-8) over neighbour symbols (self-loops count);
    ``diff_i``: positions in i of genes absent from j (``diff_j`` the reverse);
    ``pos_i``/``pos_j``: the fixed InfoNCE positive of each diff gene (one neighbour drawn once, possibly
    the gene itself through its self-loop, or the gene itself when it has no neighbour).
    """

    common_i: np.ndarray
    common_j: np.ndarray
    jaccard: np.ndarray
    diff_i: np.ndarray
    diff_j: np.ndarray
    pos_i: np.ndarray
    pos_j: np.ndarray


def _global_rows(adj: sp.csr_matrix, rows: np.ndarray, ids: np.ndarray, n_vocab: int) -> sp.csr_matrix:
    """Rows ``rows`` of ``adj`` with columns relabelled to global ids: (len(rows), V) CSR, 0/1 float32."""
    sub = adj[rows]
    out = sp.csr_matrix(
        (np.ones(sub.nnz, np.float32), ids[sub.indices], sub.indptr), shape=(len(rows), n_vocab)
    )
    out.sum_duplicates()
    return out


def jaccard_common(
    adj_i: sp.csr_matrix, adj_j: sp.csr_matrix, ids_i: np.ndarray, ids_j: np.ndarray,
    common_i: np.ndarray, common_j: np.ndarray, n_vocab: int,
) -> np.ndarray:
    """(G,) Jaccard overlap of the neighbour-symbol sets of each common gene in graphs i and j."""
    a = _global_rows(adj_i, common_i, ids_i, n_vocab)
    b = _global_rows(adj_j, common_j, ids_j, n_vocab)
    inter = np.asarray(a.multiply(b).sum(axis=1)).ravel()
    union = np.diff(a.indptr) + np.diff(b.indptr) - inter
    return (inter / (union + JACCARD_EPS)).astype(np.float32)


def pair_index(
    vocab: GeneVocabulary, adjs: Sequence[sp.csr_matrix], i: int, j: int, seed: int
) -> PairIndex:
    """Common/diff index sets, Jaccard weights and fixed positives of the ordered pair (i, j)."""
    ids_i, ids_j = vocab.ids[i], vocab.ids[j]
    _, common_i, common_j = np.intersect1d(ids_i, ids_j, assume_unique=True, return_indices=True)
    diff_i = np.flatnonzero(~np.isin(ids_i, ids_j, assume_unique=True))
    diff_j = np.flatnonzero(~np.isin(ids_j, ids_i, assume_unique=True))
    jac = jaccard_common(adjs[i], adjs[j], ids_i, ids_j, common_i, common_j, len(vocab.symbols))
    rng = np.random.default_rng([seed, i, j])
    # Faithful quirk: one neighbour per diff gene, drawn once for the whole run (self allowed).
    pos_i = draw_neighbours(adjs[i], diff_i, rng)
    pos_j = draw_neighbours(adjs[j], diff_j, rng)
    return PairIndex(common_i.astype(np.int64), common_j.astype(np.int64), jac, diff_i, diff_j, pos_i, pos_j)


def sample_contrast(
    pair: PairIndex, adj_i: sp.csr_matrix, adj_j: sp.csr_matrix, n_diff: int, replace: bool,
    resample_pos: bool, rng: np.random.Generator,
    offsets_i: np.ndarray | None = None, offsets_j: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """InfoNCE anchors and positives for one step: (anchors_i, positives_i, anchors_j, positives_j).

    k = min(n_diff, |diff|) anchors per side, drawn uniformly with replacement (the faithful default:
    duplicates then act as false negatives) or without. The code draws one set of positions for both sides
    (possible only because |diff_i| = |diff_j| when both graphs have 1000 genes); here each side draws its
    own, which allows graphs of different sizes; all 2k anchors share one softmax, so nothing else changes.
    Positives are the fixed draws of ``pair``, or with ``resample_pos`` a fresh neighbour other than the anchor
    itself (where it has one).
    """
    out = []
    for diff, fixed, adj, offs in ((pair.diff_i, pair.pos_i, adj_i, offsets_i),
                                   (pair.diff_j, pair.pos_j, adj_j, offsets_j)):
        k = min(n_diff, len(diff))
        where = rng.integers(0, len(diff), k) if replace else rng.choice(len(diff), k, replace=False)
        anchors = diff[where]
        pos = draw_neighbours(adj, anchors, rng, True, offs) if resample_pos else fixed[where]
        out += [anchors, pos]
    return out[0], out[1], out[2], out[3]
