"""The evaluation hold-out: a seeded share of all entries of the count matrix (zeros included) set aside as
ground truth; every method sees only the masked matrix.

Each entry is held out independently with probability ``fraction`` (so about 30 % of all entries); a cell
whose observed (not held-out) entries would all be zero keeps all its entries (it is "unmasked entirely").
The draw goes through the matrix in row chunks from one ``numpy`` generator, so it does not depend on the
chunk size and never densifies more than a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import scipy.sparse as sp

from ...errors import DataError

#: Matrix entries drawn per chunk of rows (bounds the dense working set).
CHUNK_ENTRIES = 1 << 22


@dataclass(frozen=True)
class HeldOut:
    """The held-out entries: ``rows``, ``cols`` (m,) int64 positions; ``counts`` (m,) float32 true raw
    counts (zeros included); ``truth`` (m,) float32 log-normalised truth ln(1 + count / L * scale) with L
    the cell's **unmasked** library size; ``library`` (n,) float64 unmasked library sizes; ``shape``."""

    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray
    truth: np.ndarray
    library: np.ndarray
    shape: tuple[int, int]


def hold_out(counts: sp.spmatrix, fraction: float, seed: int, scale: float) -> tuple[sp.csr_matrix, HeldOut]:
    """Hold out each entry of ``counts`` (cells x genes, raw counts) with probability ``fraction``.

    Returns the masked counts (CSR, held-out entries removed) and the :class:`HeldOut` ground truth."""
    if not 0 < fraction < 1:
        raise DataError(f"the hold-out fraction must be in (0, 1), got {fraction}")
    x = sp.csr_matrix(counts)
    n, g = x.shape
    library = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    if np.any(library <= 0):
        raise DataError(f"{int(np.sum(library <= 0))} cell(s) have no counts; filter them before imputation")
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK_ENTRIES // max(g, 1))
    rows, cols, vals, kept = [], [], [], []
    for start in range(0, n, step):
        block = x[start:start + step].toarray()
        held = rng.random(block.shape) < fraction
        observed = (block != 0) & ~held
        held[~observed.any(axis=1)] = False
        r, c = np.nonzero(held)
        rows.append(r + start)
        cols.append(c)
        vals.append(block[r, c])
        block[held] = 0
        kept.append(sp.csr_matrix(block))
    masked = sp.vstack(kept, format="csr")
    masked.eliminate_zeros()
    r, c, v = (np.concatenate(a) for a in (rows, cols, vals))
    truth = np.log1p(v / library[r] * scale).astype(np.float32)
    return masked, HeldOut(r.astype(np.int64), c.astype(np.int64), v.astype(np.float32), truth, library, (n, g))


def mask_adata(data: ad.AnnData, masked: sp.csr_matrix, heldout: HeldOut, fraction: float, seed: int,
               scale: float) -> ad.AnnData:
    """The ``imputation_mask`` stage's file: ``data``'s cells and genes with ``X`` = the masked counts (what
    every method sees), ``obsm``/``obs`` kept, and the ground truth in ``uns['heldout']`` (rows, cols, counts,
    truth, library) beside the mask's ``fraction``, ``seed`` and the normalisation ``scale`` of the truth."""
    out = ad.AnnData(X=sp.csr_matrix(masked), obs=data.obs.copy(), var=data.var.copy(), obsm=dict(data.obsm),
                     uns={k: v for k, v in data.uns.items() if k in ("dataset", "checks")})
    out.uns["heldout"] = {"rows": heldout.rows, "cols": heldout.cols, "counts": heldout.counts,
                          "truth": heldout.truth, "library": heldout.library}
    out.uns["mask"] = {"fraction": float(fraction), "seed": int(seed), "scale": float(scale),
                       "n_heldout": int(heldout.rows.size),
                       "share_of_entries": float(heldout.rows.size / max(out.n_obs * out.n_vars, 1))}
    return out


def read_heldout(mask: ad.AnnData) -> HeldOut:
    """The :class:`HeldOut` ground truth stored in a :func:`mask_adata` file."""
    if "heldout" not in mask.uns:
        raise DataError("not an imputation mask file: uns['heldout'] is missing")
    h = mask.uns["heldout"]
    return HeldOut(np.asarray(h["rows"], dtype=np.int64), np.asarray(h["cols"], dtype=np.int64),
                   np.asarray(h["counts"], dtype=np.float32), np.asarray(h["truth"], dtype=np.float32),
                   np.asarray(h["library"], dtype=np.float64), (mask.n_obs, mask.n_vars))
