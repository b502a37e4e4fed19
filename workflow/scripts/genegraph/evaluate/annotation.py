"""Metrics of the cell-type annotation task (CellPLM spec §5.3): macro F1 and macro precision.

Classes are the union of the true and predicted labels (as scikit-learn's ``average="macro"``); a class
never predicted has precision 0, a class never true has recall 0, and F1 is 0 when precision + recall is 0
(scikit-learn with ``zero_division=0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError


def per_class(y_true: Sequence, y_pred: Sequence) -> dict[str, dict[str, float]]:
    """``{label: {"precision", "recall", "f1", "support"}}`` over the union of labels (as strings)."""
    t = np.asarray([str(v) for v in y_true])
    p = np.asarray([str(v) for v in y_pred])
    if t.shape != p.shape:
        raise DataError(f"annotation: {p.size} predictions for {t.size} cells")
    if t.size == 0:
        raise DataError("annotation: no cells to score")
    out = {}
    for label in sorted(set(t) | set(p)):
        tp = float(np.sum((t == label) & (p == label)))
        n_pred, n_true = float(np.sum(p == label)), float(np.sum(t == label))
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_true if n_true else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[label] = {"precision": prec, "recall": rec, "f1": f1, "support": n_true}
    return out


def annotation_metrics(y_true: Sequence, y_pred: Sequence) -> dict[str, float]:
    """``{"macro_f1", "macro_precision", "macro_recall", "accuracy", "n"}`` of predicted cell types."""
    classes = per_class(y_true, y_pred)
    t = np.asarray([str(v) for v in y_true])
    p = np.asarray([str(v) for v in y_pred])
    return {"macro_f1": float(np.mean([c["f1"] for c in classes.values()])),
            "macro_precision": float(np.mean([c["precision"] for c in classes.values()])),
            "macro_recall": float(np.mean([c["recall"] for c in classes.values()])),
            "accuracy": float(np.mean(t == p)), "n": int(t.size)}
