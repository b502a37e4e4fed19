"""Shared cell-level metrics: hand-computed values on tiny examples, the Leiden sweep, the exact kNN path."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from genegraph.config import from_schema, load_schema, subschema
from genegraph.errors import DataError
from genegraph.evaluate import cell_embedding as ce
from genegraph.evaluate.cell_embedding import LeidenSweep

SCHEMA = ce.__file__.rsplit("/scripts/", 1)[0] + "/schemas/config/imputation.schema.yaml"


def _sweep(over: dict) -> LeidenSweep:
    return from_schema(LeidenSweep, subschema(load_schema(SCHEMA), "evaluation.clustering"), over)


def blobs(n_per: int = 30, k: int = 3, d: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (k, d))
    x = np.vstack([c + rng.normal(0, 0.5, (n_per, d)) for c in centres])
    return x, np.repeat([f"t{i}" for i in range(k)], n_per)


def test_default_sweep_is_the_spaformer_protocol():
    s = _sweep({})
    assert (s.n_pcs, s.n_neighbors, s.metric, s.start, s.flavor) == (10, 15, "correlation", 0.26, "leidenalg")


def test_neighbour_graph_keeps_the_callers_thread_count():
    """numba's threading layer (first started by scanpy's neighbour code) resets the libgomp torch uses."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ce.knn_connectivities(np.random.default_rng(0).normal(size=(50, 4)))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_sweep_recovers_separated_blobs():
    x, lab = blobs()
    out = ce.sweep_clustering_scores(x, lab, _sweep({}))
    assert out["n_clusters"] == 3
    assert out["nmi"] == pytest.approx(1.0)
    assert out["ari"] == pytest.approx(1.0)


def test_sweep_steps_until_the_number_of_labels(monkeypatch):
    seen = []
    per_res = {0.26: [0, 0, 0, 0], 0.31: [0, 0, 0, 1], 0.36: [0, 1, 2, 2]}

    def fake_leiden(conn, resolution, seed, flavor):
        seen.append(resolution)
        return np.array(per_res[round(resolution, 2)])

    monkeypatch.setattr(ce, "leiden", fake_leiden)
    x = np.random.default_rng(0).normal(size=(4, 12))
    out = ce.sweep_clustering_scores(x, ["a", "a", "b", "b"], _sweep({"step": 0.05}))
    assert seen == [0.26, 0.31]
    # hand-computed from the contingency table [[2, 0], [1, 1]]: ARI = (1 - 1) / (2.5 - 1) = 0
    mi = 0.5 * np.log(4 / 3) + 0.25 * np.log(2 / 3) + 0.25 * np.log(2)
    h_labels, h_clusters = np.log(2), -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert out["nmi"] == pytest.approx(mi / ((h_labels + h_clusters) / 2), abs=1e-12)
    assert out["ari"] == pytest.approx(0.0, abs=1e-12)
    assert (out["n_clusters"], out["resolution"]) == (2, 0.31)
    seen.clear()
    out = ce.sweep_clustering_scores(x, ["a", "b", "c", "d"], _sweep({"step": 0.05, "max_resolution": 0.36}))
    assert seen == [0.26, 0.31, 0.36]
    assert out["n_clusters"] == 3  # capped: the sweep stops at max_resolution


def test_sweep_drops_cells_without_label():
    x, lab = blobs()
    lab = lab.astype(object)
    lab[:5] = None
    assert ce.sweep_clustering_scores(x, lab, _sweep({}))["nmi"] == pytest.approx(1.0)


def test_celltype_asw_hand_computed():
    x = np.array([[0.0], [1.0], [4.0], [5.0]])
    s = np.array([1 - 1 / 4.5, 1 - 1 / 3.5, 1 - 1 / 3.5, 1 - 1 / 4.5])
    assert ce.celltype_asw(x, ["A", "A", "B", "B"]) == pytest.approx((s.mean() + 1) / 2)


def test_batch_asw_hand_computed():
    x = np.array([[0.0], [1.0], [2.0], [3.0], [50.0], [51.0], [10.0], [20.0], [11.0], [21.0]])
    labels = ["L1"] * 4 + ["L2"] * 2 + ["L3"] * 4
    batch = ["b1", "b2", "b1", "b2", "b1", "b1", "b1", "b2", "b1", "b2"]
    l1 = np.mean([1, 0.5, 0.5, 1])  # silhouettes 0, -0.5, -0.5, 0
    l3 = np.mean(1 - np.array([1 - 1 / 10.5, 1 - 1 / 9.5, 1 - 1 / 9.5, 1 - 1 / 10.5]))
    assert ce.batch_asw(x, labels, batch) == pytest.approx((l1 + l3) / 2)  # L2 (one batch) skipped
    with pytest.raises(DataError, match="two or more batches"):
        ce.batch_asw(x[4:6], ["L2", "L2"], ["b1", "b1"])


def test_graph_connectivity_hand_computed():
    rows, cols = [0, 1, 3, 4], [1, 2, 4, 5]
    a = sp.coo_matrix((np.ones(4), (rows, cols)), shape=(6, 6)).tocsr()
    a = a + a.T
    assert ce.graph_connectivity(a, ["A", "A", "A", "A", "B", "B"]) == pytest.approx((3 / 4 + 1) / 2)


def test_pcr_and_cell_cycle_conservation_hand_computed():
    s = np.array([1.0, -1.0, 1.0, -1.0])
    u = np.array([1.0, 1.0, -1.0, -1.0])
    before = np.c_[2 * s, u]  # variances 4 and 1, uncorrelated: the S-score PC explains 4 / 5
    assert ce.pcr_variance(before, s) == pytest.approx(0.8)
    after = np.c_[s, u]  # 1 / 2
    assert ce.cell_cycle_conservation(before, after, np.c_[s, s]) == pytest.approx(1 - 0.3 / 0.8)
    assert ce.cell_cycle_conservation(before, before, s) == pytest.approx(1.0)


def test_trajectory_conservation_hand_computed():
    assert ce.trajectory_conservation([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx((0.8 + 1) / 2)
    assert ce.trajectory_conservation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(0.0)
    assert ce.trajectory_conservation([1, 2, 3, np.nan, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)


def test_diffusion_pseudotime_follows_a_line():
    t = np.linspace(0, 1, 60)
    x = np.c_[t, np.sin(3 * t)] + np.random.default_rng(0).normal(0, 0.005, (60, 2))
    pt = ce.diffusion_pseudotime(x, root=0)
    assert ce.trajectory_conservation(t, pt) > 0.95


def test_embedding_scores_on_blobs():
    x, lab = blobs(n_per=20)
    batch = np.tile(["b1", "b2"], 30)
    out = ce.embedding_scores(x, lab, batch, resolutions=(0.2, 0.5, 1.0))
    assert out["nmi"] == pytest.approx(1.0) and out["ari"] == pytest.approx(1.0)
    assert out["asw_celltype"] > 0.9
    assert out["graph_connectivity"] == pytest.approx(1.0)
    assert out["asw_batch"] > 0.8  # batches are mixed inside each blob


def test_knn_is_exact_above_scanpys_approximate_threshold():
    x = np.random.default_rng(1).normal(size=(4200, 5))
    conn = ce.knn_connectivities(x, n_neighbors=10)
    assert conn.shape == (4200, 4200)
    assert abs(conn - conn.T).max() < 1e-6
    _, idx = NearestNeighbors(n_neighbors=10).fit(x).kneighbors(x)
    for i in range(0, 4200, 397):
        assert set(idx[i, 1:]) <= set(conn[i].indices)


def test_bad_input():
    x, lab = blobs()
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ce.celltype_asw(bad, lab)
    with pytest.raises(DataError, match="one entry per cell"):
        ce.sweep_clustering_scores(x, lab[:-1], _sweep({}))
    with pytest.raises(DataError, match="at least 2 labels"):
        ce.sweep_clustering_scores(x, ["a"] * len(lab), _sweep({}))
    with pytest.raises(DataError, match="flavor"):
        _sweep({"flavor": "louvain"})
