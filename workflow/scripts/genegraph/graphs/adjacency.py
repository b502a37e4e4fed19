"""Small helpers shared by the prior-knowledge edge types: node ids and symmetric sparse adjacencies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from genegraph.errors import DataError


def unique_genes(genes: Sequence[str]) -> pd.Index:
    """``genes`` as an Index; raises on duplicates or empty names (node ids must be unique)."""
    index = pd.Index(np.asarray(genes, dtype=str))
    if index.has_duplicates:
        raise DataError(f"gene list has duplicates (e.g. '{index[index.duplicated()][0]}'); node ids must be unique")
    if (index == "").any():
        raise DataError("gene list has an empty gene name")
    return index


def symmetric_csr(i: np.ndarray, j: np.ndarray, w: np.ndarray, n: int) -> sp.csr_matrix:
    """N x N float32 CSR with ``w`` at (i, j) and (j, i); the (i, j) pairs must be unique with i < j."""
    rows = np.concatenate([i, j]).astype(np.int64)
    cols = np.concatenate([j, i]).astype(np.int64)
    m = sp.csr_matrix((np.concatenate([w, w]).astype(np.float32), (rows, cols)), shape=(n, n))
    m.sort_indices()
    return m


def undirected_edges(adjacency: sp.spmatrix) -> int:
    """Number of undirected edges of a symmetric adjacency, self-loops not counted."""
    a = sp.csr_matrix(adjacency)
    return int((a.nnz - np.count_nonzero(a.diagonal())) // 2)
