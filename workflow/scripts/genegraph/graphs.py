"""Gene graphs: CS-CORE results to an adjacency by a configurable edge rule, and the gene-graph file.

The gene-graph file (``results/{dataset}/graph/*.h5ad``) is a gene-centric AnnData: genes as ``obs``
(index = symbol), cells as ``var``; ``X`` = float32 residual features (genes x cells); ``layers['counts']``
raw counts; ``var['depth']`` the depth used; ``obsp`` holds the edge types (``coexpr`` and later the prior
edge types) plus the CS-CORE estimates ``cscore_rho`` and p-values ``cscore_p``; ``uns['edge_types']`` lists
the edge-type keys and ``uns['graph']`` the rule, the thresholds and the graph statistics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import scipy.sparse as sp

from .checks import carried, record
from .errors import DataError

if TYPE_CHECKING:  # annotations only: reading graph files must not need torch
    from .cscore import CSCoreResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeRule:
    """Which gene pairs become co-expression edges. Defaults reproduce MuSe-GNN (p < 0.005, no
    correction, no correlation cut, both signs, diagonal kept)."""

    p_threshold: float | None = 0.005  #: keep pairs with CS-CORE p below this (None: no p cut)
    fdr: float | None = None  #: instead (or as well): Benjamini-Hochberg adjusted p below this
    min_abs_rho: float | None = None  #: keep pairs with |rho| at least this
    top_k: int | None = None  #: keep, per gene, only its k strongest passing pairs by |rho| (union)
    signed: bool = False  #: also store the sign of rho on each edge as edge type ``coexpr_sign``
    keep_diag: bool = True  #: a gene is its own neighbour (self-loop), as in the original graphs

    def __post_init__(self) -> None:
        if self.p_threshold is None and self.fdr is None and self.min_abs_rho is None and self.top_k is None:
            raise DataError("the edge rule keeps every pair: set p_threshold, fdr, min_abs_rho or top_k")
        for name in ("p_threshold", "fdr"):
            v = getattr(self, name)
            if v is not None and not 0 < v <= 1:
                raise DataError(f"{name} must be in (0, 1], got {v}")
        if self.min_abs_rho is not None and not 0 <= self.min_abs_rho <= 1:
            raise DataError(f"min_abs_rho must be in [0, 1], got {self.min_abs_rho}")
        if self.top_k is not None and self.top_k < 1:
            raise DataError(f"top_k must be >= 1, got {self.top_k}")


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of a 1-D array (NaN stays NaN)."""
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    n = q.size
    if n == 0:
        return out
    order = np.argsort(q)
    ranked = q[order] * n / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(n)
    adj[order] = np.minimum(ranked, 1.0)
    out[ok] = adj
    return out


def coexpression_adjacency(rho: np.ndarray, p: np.ndarray, rule: EdgeRule) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency (N x N, float32 CSR) of the pairs ``rule`` keeps. NaN p-values (genes
    without counts) never make an edge."""
    n = rho.shape[0]
    if rho.shape != (n, n) or p.shape != (n, n):
        raise DataError(f"rho and p must be square and of one shape, got {rho.shape} and {p.shape}")
    keep = np.isfinite(p)
    if rule.p_threshold is not None:
        keep &= np.where(np.isfinite(p), p, 1.0) < rule.p_threshold
    if rule.fdr is not None:
        iu = np.triu_indices(n, 1)
        q = np.full((n, n), np.nan)
        q[iu] = bh_adjust(p[iu])
        q = np.fmin(q, q.T)
        keep &= np.where(np.isfinite(q), q, 1.0) < rule.fdr
    if rule.min_abs_rho is not None:
        keep &= np.abs(rho) >= rule.min_abs_rho
    off = ~np.eye(n, dtype=bool)
    if rule.top_k is not None:
        strength = np.where(keep & off, np.abs(rho), -np.inf)
        k = min(rule.top_k, n - 1)
        top = np.argpartition(-strength, k - 1, axis=1)[:, :k] if k > 0 else np.empty((n, 0), int)
        chosen = np.zeros((n, n), dtype=bool)
        rows = np.repeat(np.arange(n), top.shape[1])
        chosen[rows, top.ravel()] = np.isfinite(strength[rows, top.ravel()])
        keep &= ~off | chosen | chosen.T
    keep &= keep.T  # symmetric by construction; guards against asymmetric numerical p
    diag = np.diag(keep).copy() if rule.keep_diag else np.zeros(n, dtype=bool)
    keep[~off] = False
    keep[np.diag_indices(n)] = diag
    return sp.csr_matrix(keep.astype(np.float32))


def graph_stats(adj: sp.spmatrix) -> dict[str, float]:
    """Size and degree summary of a symmetric adjacency: ``density`` is the fraction of the N^2 entries
    that are edges, diagonal included (the paper's measure); degrees exclude self-loops."""
    a = sp.csr_matrix(adj)
    n = a.shape[0]
    self_loops = int((a.diagonal() != 0).sum())
    offdiag = (a.nnz - self_loops)
    degree = np.diff(a.indptr) - (a.diagonal() != 0)
    return {
        "n_genes": int(n),
        "n_edges": int(offdiag // 2),
        "self_loops": self_loops,
        "density": float(a.nnz / n**2) if n else 0.0,
        "degree_mean": float(degree.mean()) if n else 0.0,
        "degree_median": float(np.median(degree)) if n else 0.0,
        "degree_max": int(degree.max()) if n else 0,
        "isolated_genes": int((degree == 0).sum()),
    }


def check_graph(graph: ad.AnnData, where: str, obsp_keys: Sequence[str] = ("coexpr",)) -> ad.AnnData:
    """Raise :class:`DataError` unless ``graph`` is a usable gene-graph AnnData: ``uns['dataset']`` with id,
    modality and tissue, at least one gene and one cell, unique gene names and the edge types
    ``obsp_keys``. ``where`` names the file in messages. Returns ``graph``."""
    meta = graph.uns.get("dataset", {})
    missing = [k for k in ("id", "modality", "tissue") if k not in meta]
    if missing:
        raise DataError(f"{where}: uns['dataset'] lacks {', '.join(missing)}")
    if graph.n_obs == 0 or graph.n_vars == 0:
        raise DataError(f"{where}: empty graph ({graph.n_obs} genes x {graph.n_vars} cells)")
    if not graph.obs_names.is_unique:
        raise DataError(f"{where}: gene names repeat, e.g. {graph.obs_names[graph.obs_names.duplicated()][0]!r}")
    for key in obsp_keys:
        if key not in graph.obsp:
            raise DataError(f"{where}: obsp[{key!r}] is missing (has: {', '.join(graph.obsp.keys()) or 'none'})")
    return graph


def read_graph(path: str | Path, obsp_keys: Sequence[str] = ("coexpr",)) -> ad.AnnData:
    """Read and :func:`check_graph` a gene-graph file."""
    try:
        graph = ad.read_h5ad(path)
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: not a readable h5ad graph file ({err})") from err
    return check_graph(graph, str(path), obsp_keys)


def coexpression_graph(features: ad.AnnData, result: CSCoreResult, rule: EdgeRule,
                       max_invalid_variance_frac: float = 1.0, max_clipped_frac: float = 1.0) -> ad.AnnData:
    """The gene-graph AnnData of a feature file (genes x cells) and its CS-CORE result (same gene order).

    Records the checks ``max_invalid_variance_frac`` (share of genes whose latent variance estimate is not
    positive: CS-CORE zeroes their co-expressions) and ``max_clipped_frac`` (share of estimates clipped to
    [-1, 1]) in ``uns['checks']``, flagged above those limits."""
    genes = [str(g) for g in features.obs_names]
    if result.genes is not None and list(result.genes) != genes:
        raise DataError("the CS-CORE result's genes are not the feature file's genes in the same order")
    adj = coexpression_adjacency(result.est, result.p_value, rule)
    graph = features.copy()
    graph.obsp["coexpr"] = adj
    graph.obsp["cscore_rho"] = result.est.astype(np.float32)
    graph.obsp["cscore_p"] = result.p_value.astype(np.float32)
    graph.obs["cscore_mu"] = result.mu
    graph.obs["cscore_sigma2"] = result.sigma2
    edge_types = ["coexpr"]
    if rule.signed:
        graph.obsp["coexpr_sign"] = sp.csr_matrix(adj.multiply(np.sign(result.est)).astype(np.float32))
        edge_types.append("coexpr_sign")
    stats = graph_stats(adj)
    graph.uns["checks"] = carried(features.uns)
    invalid = float(np.mean(~(np.asarray(result.sigma2) > 0))) if len(genes) else 0.0
    record(graph.uns, "max_invalid_variance_frac", invalid, max_invalid_variance_frac, "max",
           "share of genes with a non-positive CS-CORE variance estimate")
    record(graph.uns, "max_clipped_frac", result.clipped_frac, max_clipped_frac, "max",
           "share of CS-CORE co-expression estimates clipped to [-1, 1]")
    graph.uns["edge_types"] = edge_types
    graph.uns["graph"] = {"coexpr": {"rule": {k: v for k, v in asdict(rule).items() if v is not None},
                                     "stats": stats, "cscore_passes": int(result.n_passes),
                                     "cscore_converged": bool(result.converged)}}
    log.info("co-expression graph: %d genes, %d edges, density %.3f (diagonal included), degree mean %.1f "
             "median %.0f max %d, %d isolated genes", stats["n_genes"], stats["n_edges"], stats["density"],
             stats["degree_mean"], stats["degree_median"], stats["degree_max"], stats["isolated_genes"])
    return graph
