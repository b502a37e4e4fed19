"""Bi-level masking of CellPLM pre-training (spec §5.2, the SpaFormer scheme of §4.2 with Beta rates).

Per step and sentence: cap the sentence at ``max_cells`` by random dropping, drop ``drop_cell_rate`` of the
cells (drop-node: neither encoded nor scored), pick ``cell_rate`` of the rest, and in each picked cell mask
every measured gene with that cell's rate r_i ~ Beta(a, b) capped at ``max_gene_rate`` (or a fixed rate).
Masked entries are zeroed in the input and scored by the loss. All draws come from one numpy Generator.

Deviations: the spec does not say how the reference's drop-node treats the dropped cells; here they leave the
sentence for that step (as SpaFormer removes them from the graph). The released pre-training code is not
public, so the exact order of the random draws cannot match it.
"""

from __future__ import annotations

import numpy as np


def keep_cells(n: int, max_cells: int, drop_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of the cells kept for one step: at most ``max_cells`` drawn at random, then
    ``round(drop_rate · kept)`` of those dropped (at least one cell stays)."""
    idx = np.arange(n)
    if n > max_cells:
        idx = np.sort(rng.choice(n, size=max_cells, replace=False))
    n_drop = min(round(drop_rate * len(idx)), len(idx) - 1)
    if n_drop > 0:
        idx = np.sort(rng.choice(idx, size=len(idx) - n_drop, replace=False))
    return idx


def gene_rates(n_cells: int, beta: bool, a: float, b: float, cap: float, fixed: float,
               rng: np.random.Generator) -> np.ndarray:
    """(n_cells,) gene-mask rate of each masked cell: min(Beta(a, b), cap), or ``fixed``."""
    if not beta:
        return np.full(n_cells, fixed)
    return np.minimum(rng.beta(a, b, size=n_cells), cap)


def mask_entries(n: int, m: int, cell_rate: float, rates: np.ndarray | float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bi-level mask over an n × m sentence.

    ``round(cell_rate · n)`` cells are picked; gene j of picked cell i is masked with probability ``rates[k]``
    (the k-th picked cell) or the scalar ``rates``. Returns ``(cells, mask)``: the picked positions (sorted,
    int64) and a bool (n, m) array, True = masked."""
    n_pick = round(cell_rate * n)
    cells = np.sort(rng.choice(n, size=n_pick, replace=False)).astype(np.int64)
    mask = np.zeros((n, m), dtype=bool)
    if n_pick:
        r = np.broadcast_to(np.asarray(rates, dtype=np.float64), (n_pick,))
        mask[cells] = rng.random((n_pick, m)) < r[:, None]
    return cells, mask


def bilevel_mask(n: int, m: int, cell_rate: float, beta: bool, a: float, b: float, cap: float, fixed: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mask_entries` with per-cell rates from :func:`gene_rates` (the pre-training mask)."""
    rates = gene_rates(round(cell_rate * n), beta, a, b, cap, fixed, rng)
    return mask_entries(n, m, cell_rate, rates, rng)


def entry_keep(indptr: np.ndarray, indices: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bool per stored entry of a CSR (``indptr``, ``indices``): False where ``mask`` (dense n × m) is True."""
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return ~mask[rows, indices]
