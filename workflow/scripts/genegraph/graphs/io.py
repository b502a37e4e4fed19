"""The gene-graph file: reading, checking and the views every consumer takes of it.

``results/{dataset}/graph/graph.h5ad`` holds one dataset's selected genes in scverse orientation, cells x
genes: ``X`` raw counts (CSR), ``layers['residuals']`` the SCTransform features (float32, dense), ``obs`` the
cells (QC metrics, depth, batch, cell type), ``var`` the genes (symbol, Ensembl id, SCT model, CS-CORE
mean/variance), ``varp`` the gene graphs (``coexpr`` 0/1, ``string`` STRING score / 1000, ``hallmark``
shared sets, optional ``coexpr_sign``; the CS-CORE ``cscore_rho``/``cscore_p`` matrices), ``obsm['spatial']``
for spatial data, ``uns['dataset']`` (id, modality, tissue, species), ``uns['edge_types']``, ``uns['graph']``
(rule and statistics), ``uns['checks']``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from genegraph.errors import DataError


def check_graph(graph: ad.AnnData, where: str, edge_types: Sequence[str] = ("coexpr",)) -> ad.AnnData:
    """Raise :class:`DataError` unless ``graph`` is a usable gene-graph AnnData: ``uns['dataset']`` with id,
    modality and tissue, at least one gene and one cell, unique gene names, the residual features and the
    edge types ``edge_types`` in ``varp``. ``where`` names the file in messages. Returns ``graph``."""
    meta = graph.uns.get("dataset", {})
    missing = [k for k in ("id", "modality", "tissue") if k not in meta]
    if missing:
        raise DataError(f"{where}: uns['dataset'] lacks {', '.join(missing)}")
    if graph.n_obs == 0 or graph.n_vars == 0:
        raise DataError(f"{where}: empty graph ({graph.n_obs} cells x {graph.n_vars} genes)")
    if not graph.var_names.is_unique:
        raise DataError(f"{where}: gene names repeat, e.g. {graph.var_names[graph.var_names.duplicated()][0]!r}")
    if "residuals" not in graph.layers:
        raise DataError(f"{where}: layers['residuals'] (the gene features) is missing")
    for key in edge_types:
        if key not in graph.varp:
            raise DataError(f"{where}: varp[{key!r}] is missing (has: {', '.join(graph.varp.keys()) or 'none'})")
    return graph


def read_graph(path: str | Path, edge_types: Sequence[str] = ("coexpr",)) -> ad.AnnData:
    """Read and :func:`check_graph` a gene-graph file."""
    try:
        graph = ad.read_h5ad(path)
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: not a readable h5ad graph file ({err})") from err
    return check_graph(graph, str(path), edge_types)


def gene_features(graph: ad.AnnData) -> np.ndarray:
    """(genes, cells) float32 node features: the residuals of each gene over the cells (a gene's row)."""
    x = graph.layers["residuals"]
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return np.ascontiguousarray(x.T, dtype=np.float32)


def adjacency(graph: ad.AnnData, edge_type: str) -> sp.csr_matrix:
    """(genes, genes) CSR matrix of one edge type."""
    return sp.csr_matrix(graph.varp[edge_type])


def genes(graph: ad.AnnData) -> np.ndarray:
    """The graph's genes (node names), in node order."""
    return graph.var_names.to_numpy().astype(str)
