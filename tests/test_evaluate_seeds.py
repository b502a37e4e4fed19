"""The one mean/sd-over-seeds summary of every benchmark table."""

import math

import numpy as np
import pandas as pd
import pytest

from genegraph.errors import DataError
from genegraph.evaluate.seeds import over_seeds


def test_mean_and_sample_sd_over_seeds_in_order_of_appearance():
    scores = pd.DataFrame({"seed": [0, 1, 2, 0, 1, 2, 0], "method": ["b"] * 3 + ["a"] * 3 + ["k"],
                           "rmse": [1.0, 2.0, 3.0, 0.5, 0.5, 0.5, 5.0],
                           "pearson": [0.1, 0.2, np.nan, 0.3, 0.3, 0.3, 0.0], "note": ["x"] * 7})
    out = over_seeds(scores, ("method",))
    assert list(out.columns) == ["method", "n_seeds", "rmse_mean", "rmse_sd", "pearson_mean", "pearson_sd"]
    assert list(out["method"]) == ["b", "a", "k"]
    out = out.set_index("method")
    assert out.loc["b", "rmse_mean"] == 2.0 and out.loc["b", "rmse_sd"] == pytest.approx(1.0)
    assert out.loc["a", "rmse_sd"] == 0.0 and out.loc["b", "n_seeds"] == 3 and out.loc["k", "n_seeds"] == 1
    assert out.loc["b", "pearson_mean"] == pytest.approx(0.15)  # a missing score is left out, not counted as 0
    assert math.isnan(out.loc["k", "rmse_sd"])  # one seed: no spread


def test_chosen_metrics_and_several_keys():
    scores = pd.DataFrame({"dataset": ["d", "d", "e"], "method": ["m", "m", "m"], "seed": [0, 1, 0],
                           "rmse": [1.0, 3.0, 2.0], "seconds": [10.0, 20.0, 30.0]})
    out = over_seeds(scores, ("dataset", "method"), ["rmse"])
    assert list(out.columns) == ["dataset", "method", "n_seeds", "rmse_mean", "rmse_sd"]
    assert out["rmse_mean"].tolist() == [2.0, 2.0]


def test_a_table_without_seeds_is_refused():
    with pytest.raises(DataError, match="seed"):
        over_seeds(pd.DataFrame({"method": ["m"], "rmse": [1.0]}), ("method",))
