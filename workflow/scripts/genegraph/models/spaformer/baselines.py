"""Baselines of the imputation benchmark, on the same masked input as SpaFormer.

* ``raw``: the masked input itself (log-normalised with the masked library); it predicts 0 at every
  held-out entry, so its Pearson and cosine are undefined (NaN), as the "–" of the dissertation's Table 4.2.
* ``knn_smooth``: each cell's normalised counts averaged with those of its ``k`` nearest spatial
  neighbours in its section (and itself when ``include_self``), then ln(1 + x). The average is taken on
  the count scale x / L * scale, before the log: a held-out entry reads 0, but the masked library L is on
  average (1 - fraction) times the unmasked one, so the observed entries are inflated by 1 / (1 - fraction)
  and the mean over neighbours is unbiased for the true normalised expression (averaging log values
  would not be). No other rescaling is applied.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import kneighbors_graph

from .data import SpatialInput
from .settings import KnnSmoothSettings


def raw(inp: SpatialInput) -> np.ndarray:
    """(n, g) float32 dense masked log-normalised input."""
    return inp.normalised.toarray().astype(np.float32)


def knn_smooth(inp: SpatialInput, settings: KnnSmoothSettings) -> np.ndarray:
    """(n, g) float32 log of the spatial kNN average of the normalised counts (see the module docstring)."""
    n, g = inp.shape
    scaled = inp.normalised.copy()
    scaled.data = np.expm1(scaled.data)
    out = np.zeros((n, g), dtype=np.float32)
    for idx in inp.sections:
        k = min(settings.k, len(idx) - 1)
        w = kneighbors_graph(inp.positions[idx], k, mode="connectivity", include_self=False)
        if settings.include_self:
            w = w + sp.eye(len(idx), format="csr")
        w = sp.diags(1 / np.asarray(w.sum(axis=1)).ravel()) @ w
        out[idx] = np.log1p((w @ scaled[idx]).toarray())
    return out
