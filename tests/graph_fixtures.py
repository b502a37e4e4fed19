"""Gene-graph files (``results/{dataset}/graph.h5ad`` layout) for the MuSe-GNN tests: synthetic ones, and
small real ones built from raw counts with simple stand-ins for SCTransform and CS-CORE."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def _graph_adata(x: np.ndarray, adj: np.ndarray, genes, counts: sp.csr_matrix, dataset: str, modality: str,
                 tissue: str, species: str, seed: int) -> ad.AnnData:
    """Assemble the graph AnnData (cells x genes): counts X, residuals layer from ``x`` (genes x cells),
    coexpr/cscore/prior varp, uns."""
    rng = np.random.default_rng(seed + 1)
    n, c = x.shape
    upper = np.triu(rng.random((n, n)) < 0.05, 1)
    string = sp.csr_matrix(np.where(upper | upper.T, np.round(rng.uniform(0.15, 1.0, (n, n)), 3), 0)
                           .astype(np.float32))
    string = sp.csr_matrix(string.maximum(string.T))
    sets = rng.random((n, 4)) < 0.1  # 4 gene sets; weight = number of shared sets
    hallmark = sets.astype(np.float32) @ sets.T.astype(np.float32)
    np.fill_diagonal(hallmark, 0)
    a = ad.AnnData(
        X=sp.csr_matrix(counts, dtype=np.int32),
        obs=pd.DataFrame({"total_counts": np.asarray(counts.sum(axis=1)).ravel()},
                         index=[f"cell{k}" for k in range(c)]),
        var=pd.DataFrame({"ensembl": [f"ENSG{k:011d}" for k in range(n)]}, index=list(genes)),
    )
    a.layers["residuals"] = np.ascontiguousarray(x.T, dtype=np.float32)
    a.varp["coexpr"] = sp.csr_matrix(adj.astype(np.float32))
    a.varp["cscore_rho"] = np.zeros((n, n), np.float32)
    a.varp["cscore_p"] = np.where(adj, 0.0, 0.5).astype(np.float32)
    a.varp["string"] = string
    a.varp["hallmark"] = sp.csr_matrix(hallmark)
    a.uns["edge_types"] = ["coexpr", "string", "hallmark"]
    a.uns["dataset"] = {"id": dataset, "modality": modality, "tissue": tissue, "species": species}
    return a


def synthetic_graph(dataset: str, genes, n_cells: int, modality: str = "scrna", tissue: str = "blood",
                    species: str = "human", density: float = 0.3, seed: int = 0, diag: bool = True) -> ad.AnnData:
    """A seeded random graph file: Gaussian features, symmetric random adjacency of about ``density``."""
    rng = np.random.default_rng(seed)
    n = len(genes)
    x = rng.normal(size=(n, n_cells)).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    upper = np.triu(rng.random((n, n)) < density, 1)
    adj = upper | upper.T
    np.fill_diagonal(adj, diag)
    counts = sp.csr_matrix(rng.poisson(1.0, (n_cells, n)).astype(np.int32))
    return _graph_adata(x, adj, genes, counts, dataset, modality, tissue, species, seed)


def graph_from_counts(counts: sp.spmatrix, genes, dataset: str, modality: str = "scrna", tissue: str = "blood",
                      n_genes: int = 200, rho: float = 0.1, seed: int = 0) -> ad.AnnData:
    """A real-data graph: the ``n_genes`` most variable genes of log-normalised counts (cells x genes);
    features = their per-gene standardised values clipped to ±sqrt(cells/30) and centred (residual-like);
    adjacency = |Pearson r| > ``rho`` plus the diagonal (a CS-CORE-like dense co-expression graph)."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    depth = np.asarray(counts.sum(axis=1)).ravel()
    norm = sp.diags(1e4 / np.maximum(depth, 1)) @ counts
    norm.data = np.log1p(norm.data)
    mean = np.asarray(norm.mean(axis=0)).ravel()
    var = np.asarray(norm.multiply(norm).mean(axis=0)).ravel() - mean**2
    top = np.sort(np.argsort(-var, kind="stable")[:n_genes])
    dense = norm[:, top].toarray()
    z = (dense - dense.mean(0)) / np.maximum(dense.std(0), 1e-12)
    clip = np.sqrt(dense.shape[0] / 30)
    x = np.clip(z, -clip, clip).T
    x -= x.mean(axis=1, keepdims=True)
    r = np.corrcoef(dense.T)
    adj = np.abs(np.nan_to_num(r)) > rho
    np.fill_diagonal(adj, True)
    return _graph_adata(x, adj, np.asarray(genes)[top], sp.csr_matrix(counts[:, top], dtype=np.int32), dataset,
                        modality, tissue, "human", seed)


def write_graph(path: Path, adata: ad.AnnData) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(path)
    return path
