"""Scores of the CITE-seq tasks: protein prediction, modality matching and joint embedding.

Prediction (``y_true``, ``y_pred``: (n_test_cells, n_proteins), transformed proteins). Predictions are clipped at
0 (ReLU) before every metric, as the reference's ``score`` does before its RMSE (the transformed targets are
never negative):
- ``rmse``: sqrt of the mean squared error over all test entries (the competition and Table 2.1 metric);
- ``mae``: mean absolute error over all entries;
- ``pearson_cell``: mean over cells of the Pearson correlation across proteins (Table 3.2's "Pearson");
- ``pearson_protein``: mean over proteins of the Pearson correlation across cells.
A Pearson correlation with a constant vector is undefined; it counts as 0 (no linear association is
predicted), so the mean baseline scores ``pearson_protein = 0``.

Matching: ``matching_score(S)`` = Σ_i S_ii / N for a score matrix whose row i and column i are the two
modalities of the same cell (rows should sum to 1; for a 0/1 assignment this is the accuracy).

Joint embedding: :func:`joint_embedding_scores` delegates every metric to
:mod:`genegraph.evaluate.cell_embedding` and adds the aggregate 0.6·bio + 0.4·batch (spec §2.8).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError

PREDICTION_METRICS = ("rmse", "mae", "pearson_cell", "pearson_protein")


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 2:
        raise DataError(f"predictions {p.shape} and truth {t.shape} must be the same (cells, proteins) shape")
    if t.size == 0:
        raise DataError("no test cells or no proteins to score")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise DataError("predictions or truth contain NaN or infinite values")
    return t, np.maximum(p, 0.0)


def rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (n_rows,); 0 where a row is
    constant."""
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((ac * ac).sum(axis=1) * (bc * bc).sum(axis=1))
    num = (ac * bc).sum(axis=1)
    out = np.zeros(a.shape[0])
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def prediction_scores(y_true, y_pred) -> dict[str, float]:
    """``rmse``, ``mae``, ``pearson_cell``, ``pearson_protein`` of ReLU'd predictions (see module docstring)."""
    t, p = _pair(y_true, y_pred)
    err = p - t
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "pearson_cell": float(rowwise_pearson(t, p).mean()),
        "pearson_protein": float(rowwise_pearson(t.T, p.T).mean()),
    }


def per_protein_errors(y_true, y_pred, proteins: Sequence[str]) -> pd.DataFrame:
    """One row per protein: ``protein``, ``rmse``, ``mae``, ``pearson`` (across test cells), ``mean_true``."""
    t, p = _pair(y_true, y_pred)
    if len(proteins) != t.shape[1]:
        raise DataError(f"{len(proteins)} protein names for {t.shape[1]} columns")
    err = p - t
    return pd.DataFrame({
        "protein": list(map(str, proteins)),
        "rmse": np.sqrt(np.mean(err**2, axis=0)),
        "mae": np.mean(np.abs(err), axis=0),
        "pearson": rowwise_pearson(t.T, p.T),
        "mean_true": t.mean(axis=0),
    })


def matching_score(matrix) -> float:
    """Σ_i S_ii / N of an (N, N) matching score matrix (dense or sparse) with the true pairs on the diagonal."""
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise DataError(f"the matching matrix must be square and non-empty, got {matrix.shape}")
    diag = matrix.diagonal() if sp.issparse(matrix) else np.diagonal(np.asarray(matrix))
    return float(np.sum(diag) / matrix.shape[0])


def joint_embedding_scores(
    embedding, labels, batch=None, *, x_before=None, cell_cycle=None, pseudotime_before=None,
    n_neighbors: int = 15, seed: int = 0,
) -> dict[str, float]:
    """The NeurIPS 2021 joint-embedding scores (spec §2.8) of ``embedding`` (cells x d), all computed by
    :mod:`genegraph.evaluate.cell_embedding`: ``nmi`` and ``ari`` (best-NMI Leiden over the resolution sweep),
    ``asw_celltype``, ``graph_connectivity``, ``asw_batch`` (when ``batch`` is given), ``cell_cycle`` (when
    ``x_before``, the unintegrated expression, and ``cell_cycle``, (cells x 2) S/G2M scores, are given) and
    ``trajectory`` (when ``pseudotime_before`` is given: the diffusion pseudotime of the embedding of the cells
    with a finite pseudotime (the lineage, as scib subsets it), rooted at the smallest, against it).
    ``overall`` = 0.6 · mean(bio) + 0.4 · mean(batch), bio = nmi, asw_celltype, cell_cycle, trajectory;
    batch = asw_batch, graph_connectivity (those computed)."""
    from . import cell_embedding as ce

    scores = dict(ce.embedding_scores(embedding, labels, batch, n_neighbors=n_neighbors, seed=seed))
    if x_before is not None and cell_cycle is not None:
        scores["cell_cycle"] = ce.cell_cycle_conservation(x_before, embedding, cell_cycle, batch)
    if pseudotime_before is not None:
        before = np.asarray(pseudotime_before, dtype=np.float64)
        finite = np.flatnonzero(np.isfinite(before))
        if len(finite) == 0:
            raise DataError("pseudotime_before has no finite value")
        emb = np.asarray(embedding, dtype=np.float64)[finite]
        after = ce.diffusion_pseudotime(emb, int(np.argmin(before[finite])), n_neighbors=n_neighbors)
        scores["trajectory"] = ce.trajectory_conservation(before[finite], after)
    bio = [scores[k] for k in ("nmi", "asw_celltype", "cell_cycle", "trajectory") if k in scores]
    batch_scores = [scores[k] for k in ("asw_batch", "graph_connectivity") if k in scores]
    scores["overall"] = 0.6 * float(np.mean(bio)) + 0.4 * float(np.mean(batch_scores))
    return scores
