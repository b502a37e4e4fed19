"""Reading gene-graph files for the baselines, their tensors, and the embeddings layout every method writes
(the layout of the MuSe-GNN train stage: one row per gene per dataset, rows of a dataset in the graph's gene
order)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor

from ..errors import DataError
from ..graphs import check_graph, read_graph

log = logging.getLogger(__name__)


def read_graphs(graphs: Sequence[str | Path | ad.AnnData], adjacency: str = "coexpr") -> list[ad.AnnData]:
    """Graph AnnData (genes x cells; ``obsp[adjacency]``; ``uns['dataset']`` with id, modality, tissue)
    from paths or objects, validated; dataset ids must be unique."""
    out = [check_graph(item, "graph", (adjacency,)) if isinstance(item, ad.AnnData) else read_graph(item, (adjacency,))
           for item in graphs]
    ids = [str(g.uns["dataset"]["id"]) for g in out]
    if len(set(ids)) != len(ids):
        raise DataError(f"dataset ids repeat among the graph files: {ids}")
    return out


def features(g: ad.AnnData) -> np.ndarray:
    """(N, C) float32 node features (the residuals) of a graph, checked finite."""
    x = g.X.toarray() if sp.issparse(g.X) else np.asarray(g.X)
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise DataError(f"dataset '{g.uns['dataset']['id']}': X holds NaN or infinite values")
    return x


def binary_adjacency(g: ad.AnnData, adjacency: str = "coexpr") -> sp.csr_matrix:
    """(N, N) bool CSR adjacency (explicit zeros dropped)."""
    adj = sp.csr_matrix(g.obsp[adjacency] != 0)
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


def embeddings_adata(graphs: Sequence[ad.AnnData], z: Sequence[np.ndarray], method: str, seed: int,
                     extra_uns: dict[str, Any] | None = None) -> ad.AnnData:
    """Stack per-dataset embeddings (N_i, d) into the train stage's layout: X (Σ N_i, d) float32; obs
    gene, dataset, share_key (modality_tissue), modality, tissue, species, in_all_datasets; index
    ``dataset:gene``; uns method, seed (+ ``extra_uns``)."""
    metas = [g.uns["dataset"] for g in graphs]
    genes = [g.obs_names.to_numpy().astype(str) for g in graphs]
    for g, zi in zip(graphs, z, strict=True):
        if zi.shape[0] != g.n_obs:
            raise DataError(f"{method}: {zi.shape[0]} embedding rows for the {g.n_obs} genes of "
                            f"'{g.uns['dataset']['id']}'")
    n = [len(x) for x in genes]
    in_all = pd.Series(np.concatenate(genes)).map(pd.Series(np.concatenate(genes)).value_counts()) == len(graphs)

    def column(key: str) -> np.ndarray:
        return np.repeat([str(m.get(key, "")) for m in metas], n)

    obs = pd.DataFrame({
        "gene": np.concatenate(genes), "dataset": column("id"),
        "share_key": np.repeat([f"{m['modality']}_{m['tissue']}" for m in metas], n),
        "modality": column("modality"), "tissue": column("tissue"), "species": column("species"),
        "in_all_datasets": in_all.to_numpy(),
    })
    for col in ("dataset", "share_key", "modality", "tissue", "species"):
        obs[col] = pd.Categorical(obs[col], categories=list(dict.fromkeys(obs[col])))
    obs.index = (obs["dataset"].astype(str) + ":" + obs["gene"]).to_numpy()
    x = np.concatenate([np.asarray(zi, dtype=np.float32) for zi in z])
    var = pd.DataFrame(index=[f"z{k}" for k in range(x.shape[1])])
    uns = {"method": method, "seed": int(seed), **(extra_uns or {})}
    return ad.AnnData(X=x, obs=obs, var=var, uns=uns)


def config_json(cfg: Any) -> str:
    """A dataclass config as JSON (stored in ``uns``)."""
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)
