"""Reading gene-graph files for the baselines, and their tensors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from genegraph.errors import DataError
from genegraph.graphs.io import adjacency as edge_type
from genegraph.graphs.io import check_graph, gene_features, read_graph

log = logging.getLogger(__name__)


def read_graphs(graphs: Sequence[str | Path | ad.AnnData], adjacency: str = "coexpr") -> list[ad.AnnData]:
    """Gene-graph files (:mod:`genegraph.graphs.io`; ``varp[adjacency]``; ``uns['dataset']`` with id, modality, tissue)
    from paths or objects, validated; dataset ids must be unique."""
    out = [check_graph(item, "graph", (adjacency,)) if isinstance(item, ad.AnnData) else read_graph(item, (adjacency,))
           for item in graphs]
    ids = [str(g.uns["dataset"]["id"]) for g in out]
    if len(set(ids)) != len(ids):
        raise DataError(f"dataset ids repeat among the graph files: {ids}")
    return out


def features(g: ad.AnnData) -> np.ndarray:
    """(N, C) float32 node features (the residuals) of a graph, checked finite."""
    x = gene_features(g)
    if not np.isfinite(x).all():
        raise DataError(f"dataset '{g.uns['dataset']['id']}': the residual features hold NaN or infinite values")
    return x


def binary_adjacency(g: ad.AnnData, adjacency: str = "coexpr") -> sp.csr_matrix:
    """(N, N) bool CSR adjacency (explicit zeros dropped)."""
    adj = sp.csr_matrix(edge_type(g, adjacency) != 0)
    adj.eliminate_zeros()
    return adj


@dataclass
class GraphTensors:
    """One graph for torch training: x (N, C) features; target (N, N) float 0/1 adjacency (the BCE
    target, diagonal included); norm_adj (N, N) the GCN-normalised adjacency D^-1/2 (A + I) D^-1/2 (a
    self-loop added only where missing, as PyG's GCNConv does; dense because co-expression graphs are)."""

    x: Tensor
    target: Tensor
    norm_adj: Tensor

    @property
    def n_genes(self) -> int:
        return self.x.shape[0]


def gcn_normalised(adj: sp.csr_matrix) -> np.ndarray:
    """(N, N) float32 D^-1/2 (A + I) D^-1/2 of a 0/1 adjacency (existing self-loops kept at 1)."""
    a = adj.toarray().astype(np.float64)
    np.fill_diagonal(a, 1.0)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    return (a * d[:, None] * d[None, :]).astype(np.float32)


def graph_tensors(g: ad.AnnData, adjacency: str = "coexpr", device: str | torch.device = "cpu") -> GraphTensors:
    adj = binary_adjacency(g, adjacency)
    return GraphTensors(
        x=torch.from_numpy(features(g)).to(device),
        target=torch.from_numpy(adj.toarray().astype(np.float32)).to(device),
        norm_adj=torch.from_numpy(gcn_normalised(adj)).to(device),
    )
