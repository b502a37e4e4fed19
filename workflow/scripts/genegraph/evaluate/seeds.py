"""Mean and spread over seeds: the one summary every benchmark table uses (gene embedding, protein prediction,
imputation, CellPLM)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..errors import DataError


def over_seeds(scores: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and sample sd (ddof 1; NaN with one seed) over seeds of each metric, per group of ``keys``.

    ``scores``: one row per group × seed with columns ``keys``, ``seed`` and the metrics. ``metrics``: the columns
    to summarise (default: every numeric column but ``keys`` and ``seed``). Output, groups in order of first
    appearance: ``keys``, ``n_seeds`` (distinct seeds), then ``<metric>_mean`` and ``<metric>_sd`` per metric."""
    missing = [k for k in (*keys, "seed") if k not in scores.columns]
    if missing:
        raise DataError(f"score table lacks column(s) {', '.join(missing)}")
    if metrics is None:
        metrics = [c for c in scores.columns if c not in (*keys, "seed") and pd.api.types.is_numeric_dtype(scores[c])]
    grouped = scores.groupby(list(keys), sort=False, observed=True)
    out = grouped["seed"].nunique().rename("n_seeds").to_frame()
    for m in metrics:
        out[f"{m}_mean"] = grouped[m].mean()
        out[f"{m}_sd"] = grouped[m].std(ddof=1)
    return out.reset_index()
