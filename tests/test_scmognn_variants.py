"""scMoGNN matching and joint-embedding variants: LSI, propagation and assignment against independent
computations, learning on planted pairs, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition import TruncatedSVD

from genegraph.errors import DataError
from genegraph.evaluate.protein import matching_score
from genegraph.models.protein_task import load_settings
from genegraph.models.scmognn import JointEmbeddingSettings, MatchingSettings, train_embed, train_match
from genegraph.models.scmognn.matching import assign, match_within_batches
from genegraph.models.scmognn.propagation import lsi, propagate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_lsi_matches_a_dense_tfidf_computation():
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, (30, 12)).astype(float)
    counts[:, 5] = 0  # a feature without counts gets idf 0
    counts[counts.sum(1) == 0, 0] = 1
    tf = counts / counts.sum(1, keepdims=True)
    col = counts.sum(0)
    idf = np.where(col > 0, 30 / np.where(col > 0, col, 1), 0)
    x = tf * idf
    x = x / x.sum(1, keepdims=True)
    x = np.log1p(x * 1e4)
    ref = TruncatedSVD(n_components=5, random_state=777).fit_transform(x)[:, 1:]
    got = lsi(sp.csr_matrix(counts), 4)
    assert got.shape == (30, 4)
    np.testing.assert_allclose(np.abs(got), np.abs(ref), rtol=1e-4, atol=1e-4)
    with pytest.raises(DataError, match="no counts"):
        lsi(np.zeros((3, 4)), 2)


def _standardise(a):
    sd = a.std(ddof=1)
    a = a - a.mean()
    return a / sd if sd > 0 else a


def test_propagation_matches_a_numpy_loop():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(9, 4))
    got = propagate(m, layers=4, alpha=0.5)
    h_feat, h_cell, ref = np.eye(4), np.zeros((9, 4)), []
    for _ in range(4):
        m_cell, m_feat = _standardise(m @ h_feat), _standardise(m.T @ h_cell)
        h_feat = _standardise(0.5 * h_feat + 0.5 * m_feat)
        h_cell = _standardise(0.5 * h_cell + 0.5 * m_cell)
        ref.append(h_cell)
    assert len(got) == 3
    for g, r in zip(got, ref[1:], strict=True):
        np.testing.assert_allclose(g.numpy(), r, rtol=1e-4, atol=1e-5)


def test_assignment_thresholds_then_maximises():
    p = np.array([[0.9, 0.8, 0.1], [0.85, 0.2, 0.1], [0.3, 0.2, 0.25]])
    # q = 0.5: an entry survives if it is at least the median of its row or of its column
    a = assign(p, 0.5)
    np.testing.assert_array_equal(a.sum(0), 1)
    np.testing.assert_array_equal(a.sum(1), 1)
    np.testing.assert_array_equal(np.argmax(a, 1), [1, 0, 2])  # 0.8 + 0.85 + 0.25 beats 0.9 + 0.2 + ...
    e = torch.eye(4)
    m = match_within_batches(e, e, np.array(["a", "b", "a", "b"]), 0.95).toarray()
    np.testing.assert_array_equal(m, np.eye(4))
    assert m[0, 1] == 0 and m[0, 3] == 0  # never across batches


def _paired(n=200, genes=80, proteins=20, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    rna = rng.poisson(np.exp(0.8 * z @ rng.normal(size=(4, genes)) / 2))
    rna[rna.sum(1) == 0, 0] = 1
    prot = np.log1p(np.exp(z @ rng.normal(size=(4, proteins)))).astype(np.float32)
    split = np.array(["train"] * n, dtype=object)
    split[-30:] = "test"
    return sp.csr_matrix(rna.astype(float)), prot, split.astype(str), np.array(["b1"] * (n - 15) + ["b2"] * 15)


def _match_settings(**kw):
    base = {"rna_lsi_components": 10, "hidden": 32, "embedding": 8, "epochs": 40, "patience": 40, "lr": 1e-2}
    return load_settings(MatchingSettings, "matching", {**base, **kw})


def test_matching_beats_chance_on_planted_pairs_and_repeats():
    rna, prot, split, batch = _paired()
    res = train_match(rna, prot, split, batch, 0, _match_settings())
    assert res.matrix.shape == (30, 30)
    np.testing.assert_array_equal(np.asarray(res.matrix.sum(1)).ravel(), 1)
    # chance is 1/15 within each test batch
    assert matching_score(res.matrix) > 0.4
    again = train_match(rna, prot, split, batch, 0, _match_settings())
    assert (again.matrix != res.matrix).nnz == 0
    assert list(res.history.columns) == ["epoch", "loss", "val_score", "seconds"]


def test_matching_needs_training_cells():
    rna, prot, split, batch = _paired()
    with pytest.raises(DataError, match="matching needs"):
        train_match(rna, prot, np.full(len(split), "test"), batch, 0, _match_settings())


def _embed_settings(**kw):
    base = {"rna_lsi_components": 10, "epochs": 8, "batch_size": 32}
    return load_settings(JointEmbeddingSettings, "joint_embedding", {**base, **kw})


def test_joint_embedding_shapes_determinism_and_label_signal():
    rna, prot, split, batch = _paired()
    celltype = np.where(prot[:, 0] > np.median(prot[:, 0]), "hi", "lo")
    cycle = np.random.default_rng(2).normal(size=(len(split), 2)).astype(np.float32)
    res = train_embed(rna, prot, split, batch, 0, _embed_settings(lr=3e-3, epochs=30), celltype, cycle)
    assert res.embedding.shape == (200, 61) and res.celltypes == ["hi", "lo"]
    again = train_embed(rna, prot, split, batch, 0, _embed_settings(lr=3e-3, epochs=30), celltype, cycle)
    np.testing.assert_array_equal(res.embedding, again.embedding)
    # the first two dimensions are the cell-type logits: they separate the held-out cells better than chance
    test = split == "test"
    predicted = np.array(["hi", "lo"])[res.embedding[test, :2].argmax(1)]
    assert (predicted == celltype[test]).mean() > 0.6
    plain = train_embed(rna, prot, split, batch, 0, _embed_settings())
    assert plain.celltypes == [] and np.all(np.isfinite(plain.embedding))


def test_joint_embedding_latent_too_small():
    rna, prot, split, batch = _paired()
    celltype = np.array([f"t{i % 70}" for i in range(len(split))])
    with pytest.raises(DataError, match="latent"):
        train_embed(rna, prot, split, batch, 0, _embed_settings(), celltype)
