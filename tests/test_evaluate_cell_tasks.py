"""Metrics of the CellPLM downstream tasks (denoising RMSE/MAE, annotation macro F1/precision) against
hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score

from genegraph.errors import DataError
from genegraph.evaluate.annotation import annotation_metrics, per_class
from genegraph.evaluate.denoising import denoising_metrics, log_normalised


def test_denoising_metrics_by_hand():
    m = denoising_metrics([0.0, 1.0, 2.0, 4.0], [1.0, 1.0, 0.0, 4.5])  # errors 1, 0, -2, 0.5
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 4 + 0.25) / 4))
    assert m["mae"] == pytest.approx((1 + 0 + 2 + 0.5) / 4)
    assert m["n"] == 4


def test_log_normalised_by_hand():
    values = log_normalised(np.array([1.0, 5.0, 0.0]), np.array([10.0, 50.0, 7.0]), 1e4)
    np.testing.assert_allclose(values, [math.log(1001.0), math.log(1001.0), 0.0])
    with pytest.raises(DataError, match="library"):
        log_normalised(np.array([1.0]), np.array([0.0]), 1e4)


def test_denoising_metrics_reject_bad_input():
    with pytest.raises(DataError, match="2 predictions for 3"):
        denoising_metrics([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(DataError, match="NaN"):
        denoising_metrics([1.0, 2.0], [1.0, float("nan")])
    with pytest.raises(DataError, match="no held-out"):
        denoising_metrics([], [])


def test_annotation_metrics_by_hand():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    # a: P 2/2, R 2/3, F1 0.8; b: P 1/2, R 1/2, F1 0.5; c: P 1/2, R 1/1, F1 2/3
    m = annotation_metrics(y_true, y_pred)
    assert m["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["n"] == 6


def test_annotation_metrics_match_sklearn_with_unpredicted_and_unseen_classes():
    rng = np.random.default_rng(0)
    y_true = rng.choice(["t1", "t2", "t3", "t4"], size=200, p=[0.5, 0.3, 0.15, 0.05])
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.choice(["t1", "t2", "x"], size=200))
    y_pred[y_pred == "t4"] = "t1"  # t4 never predicted; x never true
    m = annotation_metrics(y_true, y_pred)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert m["macro_precision"] == pytest.approx(precision_score(y_true, y_pred, average="macro", zero_division=0))
    classes = per_class(y_true, y_pred)
    assert classes["t4"]["precision"] == 0.0 and classes["x"]["recall"] == 0.0 and classes["x"]["support"] == 0


def test_annotation_metrics_reject_bad_input():
    with pytest.raises(DataError, match="1 predictions for 2"):
        annotation_metrics(["a", "b"], ["a"])
    with pytest.raises(DataError, match="no cells"):
        annotation_metrics([], [])
