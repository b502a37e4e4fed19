"""Protein-prediction and matching metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from genegraph.errors import DataError
from genegraph.evaluate.protein import (
    joint_embedding_scores,
    matching_score,
    per_protein_errors,
    prediction_scores,
    rowwise_pearson,
)

TRUE = np.array([[1.0, 2.0, 3.0], [2.0, 0.0, 4.0]])
PRED = np.array([[1.0, 3.0, -1.0], [2.0, 2.0, 1.0]])  # the -1 is clipped to 0


def test_prediction_scores_by_hand():
    s = prediction_scores(TRUE, PRED)
    # errors after ReLU: [0, 1, -3], [0, 2, -3]
    assert s["rmse"] == pytest.approx(math.sqrt((0 + 1 + 9 + 0 + 4 + 9) / 6))
    assert s["mae"] == pytest.approx((0 + 1 + 3 + 0 + 2 + 3) / 6)
    # cell 0: (1,2,3) vs (1,3,0): centred (-1,0,1) vs (-1/3, 5/3, -4/3) -> r = (1/3 - 4/3) / (sqrt2 * sqrt(42/9))
    r0 = (1 / 3 - 4 / 3) / (math.sqrt(2) * math.sqrt(42 / 9))
    # cell 1: (2,0,4) vs (2,2,1): centred (0,-2,2) vs (1/3,1/3,-2/3) -> (-2/3 - 4/3) / (sqrt8 * sqrt(6/9))
    r1 = (-2 / 3 - 4 / 3) / (math.sqrt(8) * math.sqrt(6 / 9))
    assert s["pearson_cell"] == pytest.approx((r0 + r1) / 2)
    # proteins: p0 (1,2) vs (1,2) -> 1; p1 (2,0) vs (3,2) -> 1; p2 (3,4) vs (0,1) -> 1
    assert s["pearson_protein"] == pytest.approx(1.0)


def test_constant_vectors_count_as_zero_correlation():
    assert rowwise_pearson(np.array([[1.0, 2.0]]), np.array([[3.0, 3.0]]))[0] == 0.0
    mean_pred = np.tile(TRUE.mean(axis=0), (2, 1))
    assert prediction_scores(TRUE, mean_pred)["pearson_protein"] == 0.0


def test_per_protein_errors_by_hand():
    table = per_protein_errors(TRUE, PRED, ["a", "b", "c"])
    assert list(table["protein"]) == ["a", "b", "c"]
    np.testing.assert_allclose(table["rmse"], [0.0, math.sqrt(2.5), 3.0])
    np.testing.assert_allclose(table["mae"], [0.0, 1.5, 3.0])
    np.testing.assert_allclose(table["mean_true"], [1.5, 1.0, 3.5])


def test_bad_predictions_raise():
    with pytest.raises(DataError, match="same"):
        prediction_scores(TRUE, PRED[:, :2])
    bad = PRED.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        prediction_scores(TRUE, bad)


def test_matching_score_is_mean_diagonal():
    s = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert matching_score(s) == pytest.approx(0.5)
    assert matching_score(sp.csr_matrix(np.eye(4))) == 1.0
    with pytest.raises(DataError, match="square"):
        matching_score(np.ones((2, 3)))


@pytest.mark.slow  # the first kNN graph JIT-compiles scanpy's numba code (~12 s)
def test_joint_embedding_scores_aggregate_bio_and_batch():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 30)
    emb = rng.normal(size=(60, 5)) * 0.1
    emb[labels == "b", 0] += 5.0  # two well separated cell types, batches mixed within each
    batch = np.tile(["x", "y"], 30)
    pseudotime = emb[:, 0] + rng.normal(size=60) * 0.01
    s = joint_embedding_scores(emb, labels, batch, pseudotime_before=pseudotime, n_neighbors=10)
    assert s["nmi"] == pytest.approx(1.0)
    assert s["asw_celltype"] > 0.9 and s["asw_batch"] > 0.8 and s["graph_connectivity"] == pytest.approx(1.0)
    bio = np.mean([s["nmi"], s["asw_celltype"], s["trajectory"]])
    assert s["overall"] == pytest.approx(0.6 * bio + 0.4 * np.mean([s["asw_batch"], s["graph_connectivity"]]))
