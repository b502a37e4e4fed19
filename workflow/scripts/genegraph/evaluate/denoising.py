"""Metrics of the denoising task (CellPLM spec §5.3): RMSE and MAE over the held-out entries, pooled.

Scale: log1p(count / library × target_sum) with the cell's library size before any entry was held out and
target_sum 10⁴ (the log-normalised expression CellPLM's denoising head predicts; the SpaFormer protocol
likewise normalises its ground truth with the unmasked library). Every method is scored on this scale.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def log_normalised(counts: np.ndarray, library: np.ndarray, target_sum: float) -> np.ndarray:
    """log1p(counts / library · target_sum), elementwise (``library`` broadcast to ``counts``; must be > 0)."""
    library = np.asarray(library, dtype=np.float64)
    if (library <= 0).any():
        raise DataError("a library size is not positive")
    return np.log1p(np.asarray(counts, dtype=np.float64) / library * target_sum)


def denoising_metrics(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """``{"rmse", "mae", "n"}`` of ``prediction`` against ``truth`` (1-D, one value per held-out entry)."""
    t = np.asarray(truth, dtype=np.float64).ravel()
    p = np.asarray(prediction, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise DataError(f"denoising: {p.size} predictions for {t.size} held-out entries")
    if t.size == 0:
        raise DataError("denoising: no held-out entries to score")
    if not np.isfinite(p).all():
        raise DataError("denoising: the predictions have NaN or infinite values")
    err = p - t
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": int(t.size)}
