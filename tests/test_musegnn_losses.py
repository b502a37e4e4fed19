"""MuSe-GNN losses and pair tables: InfoNCE against a hand-computed example and a literal transcription of
the asymmetric NT-Xent, the similarity loss, dense and sampled BCE, and the Jaccard / common / diff index
sets against brute-force Python sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from genegraph.models.musegnn.losses import bce_dense, bce_weighted, info_nce, sample_bce_pairs, similarity_loss
from genegraph.models.musegnn.pairs import (
    build_vocabulary,
    draw_neighbours,
    jaccard_common,
    pair_index,
    sample_contrast,
    self_loop_offsets,
)

# ---------------------------------------------------------------------------------------------------------
# InfoNCE


def test_info_nce_hand_computed_example():
    """Two queries, two keys in 2-D, τ = 0.5.

    q1 = (1, 0), q2 = (0, 2); k1 = (1, 1), k2 = (0, -3).  Cosines: cos(q1,k1) = 1/√2, cos(q1,k2) = 0,
    cos(q2,k1) = 1/√2, cos(q2,k2) = -1.
    loss_1 = -log(e^{(1/√2)/0.5} / (e^{(1/√2)/0.5} + e^{0})) = log(1 + e^{-√2})
    loss_2 = -log(e^{-2} / (e^{√2} + e^{-2}))                 = log(1 + e^{√2 + 2})
    """
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    k = torch.tensor([[1.0, 1.0], [0.0, -3.0]])
    expected = 0.5 * (math.log(1 + math.exp(-math.sqrt(2))) + math.log(1 + math.exp(math.sqrt(2) + 2)))
    assert info_nce(q, k, tau=0.5).item() == pytest.approx(expected, rel=1e-6)


def _nt_xent_literal(q: np.ndarray, k: np.ndarray, tau: float) -> float:
    """The asymmetric SelfSupervisedLoss(NTXentLoss) of pml ≤ 2.1, written out: anchor r, positive key r,
    negatives all keys s ≠ r; mean over anchors of -log(e^{p/τ} / (e^{p/τ} + Σ_neg e^{n/τ}))."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=1, keepdims=True)
    losses = []
    for r in range(len(q)):
        pos = math.exp(float(qn[r] @ kn[r]) / tau)
        neg = sum(math.exp(float(qn[r] @ kn[s]) / tau) for s in range(len(k)) if s != r)
        losses.append(-math.log(pos / (pos + neg)))
    return float(np.mean(losses))


def test_info_nce_equals_literal_nt_xent_on_random_tensors():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(200, 32)), rng.normal(size=(200, 32))
    got = info_nce(torch.tensor(q, dtype=torch.float32), torch.tensor(k, dtype=torch.float32), tau=0.07).item()
    assert got == pytest.approx(_nt_xent_literal(q, k, 0.07), rel=1e-5)


def test_info_nce_is_asymmetric_and_empty_is_zero():
    rng = np.random.default_rng(1)
    q, k = (torch.tensor(rng.normal(size=(6, 4)), dtype=torch.float32) for _ in range(2))
    assert info_nce(q, k).item() != pytest.approx(info_nce(k, q).item())
    assert info_nce(torch.zeros(0, 4), torch.zeros(0, 4)).item() == 0.0


# ---------------------------------------------------------------------------------------------------------
# similarity and BCE


def test_similarity_loss_mean_and_sum():
    z_i = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z_j = torch.tensor([[2.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    ci, cj = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])  # cosines 1, 0, 1
    lam = torch.tensor([0.5, 1.0, 0.25])
    assert similarity_loss(z_i, z_j, ci, cj, lam, "mean").item() == pytest.approx(-(0.5 + 0.25) / 3)
    assert similarity_loss(z_i, z_j, ci, cj, lam, "sum").item() == pytest.approx(-(0.5 + 0.25))
    # the index arrays pair rows: gene 2 of i with gene 0 of j
    assert similarity_loss(z_i, z_j, torch.tensor([2]), torch.tensor([0]), torch.tensor([1.0])).item() == \
        pytest.approx(-1 / math.sqrt(2))
    empty = torch.zeros(0, dtype=torch.long)
    assert similarity_loss(z_i, z_j, empty, empty, torch.zeros(0)).item() == 0.0


def test_bce_dense_with_and_without_diagonal():
    rng = np.random.default_rng(2)
    logits = torch.tensor(rng.normal(size=(7, 7)), dtype=torch.float32)
    adj = torch.tensor(rng.random((7, 7)) < 0.5)
    full = F.binary_cross_entropy_with_logits(logits, adj.float())
    assert bce_dense(logits, adj).item() == pytest.approx(full.item(), rel=1e-6)
    off = ~torch.eye(7, dtype=torch.bool)
    ref = F.binary_cross_entropy_with_logits(logits[off], adj.float()[off])
    assert bce_dense(logits, adj, include_diag=False).item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("include_diag", [True, False])
def test_sampled_bce_is_an_unbiased_estimate_of_the_dense_mean(include_diag):
    n = 40
    rng = np.random.default_rng(3)
    a = rng.random((n, n)) < 0.7
    np.fill_diagonal(a, True)
    keys = np.flatnonzero(a.ravel()).astype(np.int64)  # row * n + col, sorted
    logits = torch.tensor(rng.normal(size=(n, n)) + 1.5 * a, dtype=torch.float32)
    dense = bce_dense(logits, torch.tensor(a), include_diag).item()
    draws = []
    for _ in range(400):
        rows, cols, target, weight = sample_bce_pairs(keys, n, rng, neg_ratio=1.0, max_pos=50,
                                                      include_diag=include_diag)
        assert np.array_equal(target.astype(bool), a[rows, cols])  # positives are edges, negatives are not
        assert include_diag or not np.any(rows == cols)
        assert weight.sum() == pytest.approx(1.0, rel=1e-5)
        draws.append(bce_weighted(logits[rows, cols], torch.from_numpy(target), torch.from_numpy(weight)).item())
    assert np.mean(draws) == pytest.approx(dense, rel=0.02)
    assert np.std(draws) > 0  # really sampled
    # all positives and as many negatives as exist: the exact dense mean
    rows, cols, target, weight = sample_bce_pairs(keys, n, rng, neg_ratio=100.0, include_diag=include_diag)
    assert target.sum() == (a.sum() if include_diag else a.sum() - n)


# ---------------------------------------------------------------------------------------------------------
# vocabulary, common/diff genes, Jaccard


def _graph(genes: list[str], density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    n = len(genes)
    a = np.triu(rng.random((n, n)) < density, 1)
    a = a | a.T
    np.fill_diagonal(a, rng.random(n) < 0.8)  # most genes have a self-loop, some not
    a[3, :] = a[:, 3] = False  # an isolated gene
    return sp.csr_matrix(a)


def _brute_force(genes_i, adj_i, genes_j, adj_j):
    """The authors' set logic, literally: names in common, neighbour-name sets, Jaccard with eps."""
    nbr_i = {g: {genes_i[k] for k in adj_i[r].indices} for r, g in enumerate(genes_i)}
    nbr_j = {g: {genes_j[k] for k in adj_j[r].indices} for r, g in enumerate(genes_j)}
    common = sorted(set(genes_i) & set(genes_j))
    jac = {g: len(nbr_i[g] & nbr_j[g]) / (len(nbr_i[g] | nbr_j[g]) + 1e-8) for g in common}
    return common, jac, set(genes_i) - set(genes_j), set(genes_j) - set(genes_i)


def test_pair_index_matches_brute_force_sets():
    genes_i = [f"G{k}" for k in range(0, 30)]
    genes_j = [f"G{k}" for k in range(12, 50)][::-1]  # different size and order
    genes_k = [f"G{k}" for k in range(5, 20)]
    adjs = [_graph(genes_i, 0.3, 0), _graph(genes_j, 0.4, 1), _graph(genes_k, 0.5, 2)]
    vocab = build_vocabulary([genes_i, genes_j, genes_k])
    assert list(vocab.symbols) == sorted(set(genes_i) | set(genes_j) | set(genes_k))
    assert [vocab.symbols[vocab.ids[0]].tolist()] == [genes_i]
    in_all = {genes_i[p] for p in np.flatnonzero(vocab.in_all(0))}
    assert in_all == set(genes_i) & set(genes_j) & set(genes_k)

    p = pair_index(vocab, adjs, 0, 1, seed=0)
    common, jac, diff_i, diff_j = _brute_force(genes_i, adjs[0], genes_j, adjs[1])
    assert [genes_i[k] for k in p.common_i] == common == [genes_j[k] for k in p.common_j]
    np.testing.assert_allclose(p.jaccard, [jac[g] for g in common], rtol=1e-6)
    assert any(0 < v < 1 for v in jac.values())  # a non-trivial example
    assert {genes_i[k] for k in p.diff_i} == diff_i and len(p.diff_i) == len(diff_i)
    assert {genes_j[k] for k in p.diff_j} == diff_j
    # fixed positives: a neighbour of the diff gene (or the gene itself when it has none)
    for anchor, pos in zip(p.diff_i, p.pos_i):
        nbrs = set(adjs[0][anchor].indices)
        assert pos in nbrs if nbrs else pos == anchor
    # same seed, same pair: same draws; another seed: other draws
    again = pair_index(vocab, adjs, 0, 1, seed=0)
    assert np.array_equal(again.pos_i, p.pos_i) and np.array_equal(again.pos_j, p.pos_j)
    assert not np.array_equal(pair_index(vocab, adjs, 0, 1, seed=1).pos_i, p.pos_i)


def test_jaccard_of_identical_graphs_is_one_where_genes_have_neighbours():
    genes = [f"G{k}" for k in range(20)]
    adj = _graph(genes, 0.3, 5)
    vocab = build_vocabulary([genes, genes[::-1]])
    perm = np.arange(20)[::-1]
    adj_rev = sp.csr_matrix(adj.toarray()[np.ix_(perm, perm)])
    jac = jaccard_common(adj, adj_rev, vocab.ids[0], vocab.ids[1], np.arange(20), perm, len(vocab.symbols))
    deg = np.diff(adj.indptr)
    np.testing.assert_allclose(jac, np.where(deg > 0, 1.0, 0.0), atol=1e-6)


def test_draw_neighbours():
    adj = sp.csr_matrix(np.array([
        [1, 1, 1, 0],  # self + 1 + 2
        [1, 0, 0, 0],  # only 0
        [0, 0, 1, 0],  # only self
        [0, 0, 0, 0],  # isolated
    ], dtype=bool))
    rng = np.random.default_rng(0)
    nodes = np.repeat(np.arange(4), 3000)
    drawn = draw_neighbours(adj, nodes, rng)
    counts = np.bincount(drawn[:3000], minlength=4)
    assert counts[3] == 0 and all(800 < c < 1200 for c in counts[:3])  # uniform over {0, 1, 2}
    assert set(drawn[3000:6000]) == {0} and set(drawn[6000:9000]) == {2} and set(drawn[9000:]) == {3}
    no_self = draw_neighbours(adj, nodes, rng, exclude_self=True, self_offsets=self_loop_offsets(adj))
    counts = np.bincount(no_self[:3000], minlength=4)
    assert counts[0] == 0 and all(1300 < c < 1700 for c in counts[1:3])
    assert set(no_self[6000:9000]) == {2} and set(no_self[9000:]) == {3}  # only itself / nothing: itself
    assert self_loop_offsets(adj).tolist() == [0, -1, 0, -1]


def test_sample_contrast_sizes_replacement_and_positives():
    genes_i = [f"G{k}" for k in range(0, 40)]
    genes_j = [f"G{k}" for k in range(30, 60)]
    adjs = [_graph(genes_i, 0.3, 0), _graph(genes_j, 0.3, 1)]
    p = pair_index(build_vocabulary([genes_i, genes_j]), adjs, 0, 1, seed=0)
    assert len(p.diff_i) == 30 and len(p.diff_j) == 20
    rng = np.random.default_rng(0)
    ai, pi, aj, pj = sample_contrast(p, adjs[0], adjs[1], 100, True, False, rng)
    assert len(ai) == 30 and len(aj) == 20  # k = min(n_diff, |diff|)
    assert set(ai) <= set(p.diff_i) and set(aj) <= set(p.diff_j)
    fixed = dict(zip(p.diff_i, p.pos_i))
    assert all(fixed[a] == q for a, q in zip(ai, pi))  # faithful: the fixed positive
    ai, pi, aj, pj = sample_contrast(p, adjs[0], adjs[1], 25, False, True, rng)
    assert len(ai) == 25 and len(set(ai)) == 25  # without replacement
    for a, q in zip(ai, pi):  # re-drawn positive: a neighbour other than itself where one exists
        others = set(adjs[0][a].indices) - {a}
        assert q in others if others else q == a
    ai, _, _, _ = sample_contrast(p, adjs[0], adjs[1], 200, True, False, rng)
    assert len(ai) == 30 and len(set(ai)) < 30  # with replacement: duplicates
