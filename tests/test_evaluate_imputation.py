"""Imputation scores against hand-computed values and an independent per-gene computation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import pearsonr

from genegraph.errors import DataError
from genegraph.evaluate.imputation import (
    clustering_check,
    evaluation_settings,
    imputation_scores,
    per_gene_pearson,
)


def heldout(rows, cols, truth):
    return SimpleNamespace(rows=np.asarray(rows), cols=np.asarray(cols), truth=np.asarray(truth, dtype=np.float32))


def test_pooled_scores_hand_computed():
    pred = np.array([[1.0, 2.0], [3.0, 0.0]], dtype=np.float32)
    h = heldout([0, 0, 1], [0, 1, 0], [1.0, 1.0, 4.0])  # predictions 1, 2, 3
    out = imputation_scores(pred, h)
    assert out["rmse"] == pytest.approx(np.sqrt((0 + 1 + 1) / 3))
    # centred p = (-1, 0, 1), t = (-1, -1, 2): r = 3 / sqrt(2 * 6)
    assert out["pearson"] == pytest.approx(3 / np.sqrt(12))
    assert out["cosine"] == pytest.approx((1 + 2 + 12) / np.sqrt(14 * 18))


def test_zero_prediction_has_no_correlation():
    h = heldout([0, 1, 1], [0, 0, 1], [0.5, 0.0, 1.5])
    out = imputation_scores(np.zeros((2, 2)), h)
    assert out["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 2.25) / 3))
    assert np.isnan(out["pearson"]) and np.isnan(out["cosine"]) and np.isnan(out["gene_pearson_median"])


def test_per_gene_pearson_against_scipy():
    rng = np.random.default_rng(0)
    n, g = 40, 6
    rows, cols = np.nonzero(rng.random((n, g)) < 0.5)
    pred = rng.random((n, g))
    truth = pred[rows, cols] + rng.normal(0, 0.3, len(rows))
    pred[:, 4] = 1.0  # constant prediction: undefined
    keep = ~((cols == 5) & (rows > 1))  # gene 5 keeps at most 2 entries: undefined
    rows, cols, truth = rows[keep], cols[keep], truth[keep]
    r = per_gene_pearson(pred[rows, cols], truth, cols, g)
    for j in range(4):
        sel = cols == j
        assert r[j] == pytest.approx(pearsonr(pred[rows[sel], j], truth[sel]).statistic)
    assert np.isnan(r[4]) and np.isnan(r[5])
    out = imputation_scores(pred, heldout(rows, cols, truth))
    assert out["gene_pearson_median"] == pytest.approx(np.median(r[:4]), rel=1e-5)


def test_clustering_check_recovers_groups():
    rng = np.random.default_rng(0)
    centres = rng.gamma(2.0, 1.0, (3, 30))
    x = np.vstack([c + rng.normal(0, 0.05, (25, 30)) for c in centres])
    out = clustering_check(x, np.repeat(["a", "b", "c"], 25), evaluation_settings().clustering)
    assert out["nmi"] == pytest.approx(1.0) and out["ari"] == pytest.approx(1.0)


def test_bad_predictions():
    h = heldout([0, 2], [0, 1], [1.0, 1.0])
    with pytest.raises(DataError, match="does not cover"):
        imputation_scores(np.zeros((2, 2)), h)
    bad = np.zeros((3, 2))
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        imputation_scores(bad, h)
