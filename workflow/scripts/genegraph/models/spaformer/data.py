"""What every imputation method gets: the masked counts, their normalisation, the sections and the spatial
graph of each section.

* normalisation: per cell x / sum(x) * scale (the masked library), then ln(1 + x);
* sections: the values of ``obs[section_key]`` (sorted), or the whole dataset when that column is absent;
* positions: ``obsm['spatial']`` scaled per section to [0, 1] by the larger side (the aspect ratio is kept);
* spatial graph per section: cells closer than ``radius`` (in the units of ``obsm['spatial']``) or the k
  nearest cells, symmetrised, with self-loops.

Bad input raises DataError: no ``obsm['spatial']``, a wrong shape, NaN or infinite coordinates (naming how
many cells), a section with one cell (naming it), a cell without counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.neighbors import kneighbors_graph, radius_neighbors_graph

from ...errors import DataError
from .settings import GeneSettings, SpatialSettings


@dataclass(frozen=True)
class SpatialInput:
    """Masked data of n cells x g genes, split into sections.

    ``counts`` (n, g) CSR masked raw counts; ``normalised`` (n, g) CSR float32 ln(1 + x / L * scale) with L
    the masked library; ``library`` (n,) masked library sizes; ``sections`` list of int64 cell-index arrays
    (ascending) and ``section_names``; ``positions`` (n, 2) float32 scaled coordinates in [0, 1];
    ``graphs`` per section (n_s, n_s) CSR 0/1 symmetric adjacency with self-loops."""

    counts: sp.csr_matrix
    normalised: sp.csr_matrix
    library: np.ndarray
    sections: list[np.ndarray]
    section_names: list[str]
    positions: np.ndarray
    graphs: list[sp.csr_matrix]

    @property
    def shape(self) -> tuple[int, int]:
        return self.counts.shape


def select_genes(adata: ad.AnnData, settings: GeneSettings) -> ad.AnnData:
    """``adata`` restricted to the ``top_n`` genes by total counts or detection (all genes when top_n is 0
    or not below the number of genes); ties keep the earlier gene."""
    if settings.top_n == 0 or settings.top_n >= adata.n_vars:
        return adata
    x = sp.csr_matrix(adata.X)
    score = np.asarray(x.sum(axis=0) if settings.rank_by == "total_counts" else (x != 0).sum(axis=0)).ravel()
    top = np.sort(np.argsort(-score, kind="stable")[: settings.top_n])
    return adata[:, top].copy()


def normalise(counts: sp.spmatrix, scale: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """(ln(1 + x / L * scale) as float32 CSR, L) of a counts matrix (cells x genes); L the row sums."""
    x = sp.csr_matrix(counts, dtype=np.float64)
    library = np.asarray(x.sum(axis=1)).ravel()
    if np.any(library <= 0):
        raise DataError(f"{int(np.sum(library <= 0))} cell(s) have no counts after masking")
    out = sp.csr_matrix(sp.diags(scale / library) @ x)
    out.data = np.log1p(out.data)
    return out.astype(np.float32), library


def section_labels(adata: ad.AnnData, key: str) -> np.ndarray:
    """(n,) str section of each cell: ``obs[key]``, or one section named "all" when the column is absent."""
    if key not in adata.obs:
        return np.full(adata.n_obs, "all")
    lab = adata.obs[key]
    if lab.isna().any():
        raise DataError(f"obs['{key}'] has {int(lab.isna().sum())} cell(s) without a section")
    return lab.astype(str).to_numpy()


def coordinates(adata: ad.AnnData) -> np.ndarray:
    """(n, 2) float64 ``obsm['spatial']``; DataError when missing, misshapen or not finite."""
    if "spatial" not in adata.obsm:
        raise DataError("no spatial coordinates: obsm['spatial'] is missing")
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != adata.n_obs:
        raise DataError(f"obsm['spatial'] must be cells x 2, got shape {xy.shape}")
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise DataError(f"obsm['spatial'] has NaN or infinite coordinates for {int(bad.sum())} cell(s)")
    return xy


def split_sections(labels: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """Cell indices of each section (sections in sorted order); DataError for a section with one cell."""
    names = sorted(pd.unique(labels).tolist())
    sections = [np.flatnonzero(labels == name).astype(np.int64) for name in names]
    small = [name for name, idx in zip(names, sections) if len(idx) < 2]
    if small:
        raise DataError(f"section(s) with a single cell: {', '.join(small)}; a section needs at least 2 cells")
    return sections, names


def scaled_positions(xy: np.ndarray, sections: list[np.ndarray]) -> np.ndarray:
    """(n, 2) float32 coordinates shifted to 0 and divided by the larger side, per section."""
    out = np.zeros_like(xy, dtype=np.float32)
    for idx in sections:
        p = xy[idx] - xy[idx].min(axis=0)
        side = p.max()
        out[idx] = p / (side if side > 0 else 1.0)
    return out


def spatial_graph(xy: np.ndarray, settings: SpatialSettings) -> sp.csr_matrix:
    """(n, n) symmetric 0/1 CSR adjacency of one section with self-loops (radius or kNN graph)."""
    n = xy.shape[0]
    if settings.graph == "radius":
        adj = radius_neighbors_graph(xy, settings.radius, mode="connectivity", include_self=False)
    else:
        adj = kneighbors_graph(xy, min(settings.k, n - 1), mode="connectivity", include_self=False)
    adj = ((adj + adj.T) > 0).astype(np.float32) + sp.eye(n, dtype=np.float32, format="csr")
    return sp.csr_matrix(adj)


def spatial_input(
    adata: ad.AnnData, counts: sp.spmatrix, scale: float, settings: SpatialSettings
) -> SpatialInput:
    """The :class:`SpatialInput` of ``counts`` (the masked counts of ``adata``'s cells and genes), with the
    sections and coordinates of ``adata``."""
    if counts.shape[0] != adata.n_obs:
        raise DataError(f"counts have {counts.shape[0]} rows but the dataset has {adata.n_obs} cells")
    xy = coordinates(adata)
    sections, names = split_sections(section_labels(adata, settings.section_key))
    normalised, library = normalise(counts, scale)
    graphs = [spatial_graph(xy[idx], settings) for idx in sections]
    return SpatialInput(sp.csr_matrix(counts), normalised, library, sections, names,
                        scaled_positions(xy, sections), graphs)
