"""Checks and conversions for raw count matrices (cells x genes)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from genegraph.errors import DataError

#: Values closer than this to an integer are treated as that integer (float export noise such as
#: 2.9999999999999996); anything further away is not a count.
INTEGER_TOLERANCE = 1e-6


def _values(x: np.ndarray | sp.spmatrix | sp.sparray) -> np.ndarray:
    """The stored values of a dense or sparse matrix, as a flat array."""
    if sp.issparse(x):
        return np.asarray(x.data)
    return np.asarray(x).ravel()


def validate_counts(x: np.ndarray | sp.spmatrix | sp.sparray, what: str = "count matrix") -> None:
    """Raise :class:`DataError` unless ``x`` holds finite, non-negative, integer values.

    ``x``: cells x genes (dense or sparse). ``what`` names the matrix in the message.
    """
    if x.ndim != 2:
        raise DataError(f"{what} must be 2-dimensional, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{what} is empty (shape {x.shape[0]} x {x.shape[1]})")
    v = _values(x)
    if v.dtype.kind not in "biuf":
        raise DataError(f"{what} has non-numeric dtype {v.dtype}")
    if v.dtype.kind == "f":
        bad = ~np.isfinite(v)
        if bad.any():
            raise DataError(f"{what} contains {int(bad.sum())} NaN or infinite values")
    if v.size and v.min() < 0:
        raise DataError(f"{what} contains {int((v < 0).sum())} negative values (min {v.min():g})")
    if v.dtype.kind == "f":
        off = np.abs(v - np.round(v))
        if v.size and off.max() > INTEGER_TOLERANCE:
            i = int(np.argmax(off))
            raise DataError(
                f"{what} is not integer counts: {int((off > INTEGER_TOLERANCE).sum())} values are "
                f"non-integer (e.g. {v[i]:g}); normalised or log-transformed data cannot be used"
            )


def to_integer_csr(x: np.ndarray | sp.spmatrix | sp.sparray, what: str = "count matrix") -> sp.csr_matrix:
    """Validate ``x`` as counts and return it as a CSR matrix of int32 (int64 if a value needs it).

    Values within :data:`INTEGER_TOLERANCE` of an integer are rounded to it; explicit zeros are dropped.
    """
    validate_counts(x, what)
    m = sp.csr_matrix(x)
    data = np.round(m.data) if m.data.dtype.kind == "f" else m.data
    dtype = np.int32 if (data.size == 0 or data.max() <= np.iinfo(np.int32).max) else np.int64
    out = sp.csr_matrix((data.astype(dtype), m.indices, m.indptr), shape=m.shape)
    out.eliminate_zeros()
    out.sort_indices()
    return out
