"""Gene co-expression graphs: CS-CORE results to an adjacency by a configurable edge rule, and the gene-graph file.

The gene-graph file (``results/{dataset}/graph/*.h5ad``, see :mod:`genegraph.graphs.io`) is the dataset's
selected genes, cells x genes: ``X`` raw counts, ``layers['residuals']`` the SCTransform features,
``varp`` the edge types (``coexpr`` and later the prior edge types) plus the CS-CORE estimates
``cscore_rho`` and p-values ``cscore_p``; ``uns['edge_types']`` lists the edge-type keys and
``uns['graph']`` the rule, the thresholds and the graph statistics.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import scipy.sparse as sp
from scipy.stats import false_discovery_control

from genegraph.data.checks import carried, record
from genegraph.errors import DataError

if TYPE_CHECKING:  # annotations only: reading graph files must not need torch
    from genegraph.stats.cscore import CSCoreResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoexpressionSettings:
    """The config section ``coexpression``: which gene pairs become co-expression edges (the edge rule), and
    where CS-CORE runs. Types, defaults (MuSe-GNN's rule) and meanings: the config schema."""

    p_threshold: float | None
    fdr: float | None
    min_abs_rho: float | None
    top_k: int | None
    signed: bool
    keep_diag: bool
    device: str
    dtype: str

    def validate(self) -> None:
        if self.p_threshold is None and self.fdr is None and self.min_abs_rho is None and self.top_k is None:
            raise DataError("coexpression: the edge rule keeps every pair: set p_threshold, fdr, min_abs_rho or top_k")


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of a 1-D array (scipy's ``false_discovery_control``); NaN stays NaN."""
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out


def coexpression_adjacency(rho: np.ndarray, p: np.ndarray, rule: CoexpressionSettings) -> sp.csr_matrix:
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


def coexpression_graph(genes: ad.AnnData, result: CSCoreResult, rule: CoexpressionSettings,
                       max_invalid_variance_frac: float = 1.0, max_clipped_frac: float = 1.0) -> ad.AnnData:
    """The gene-graph AnnData of a dataset's selected genes (cells x genes, as
    :func:`~genegraph.stats.sctransform.residuals.selected_genes` gives them) and their CS-CORE result (same
    gene order).

    Records the checks ``max_invalid_variance_frac`` (share of genes whose latent variance estimate is not
    positive: CS-CORE zeroes their co-expressions) and ``max_clipped_frac`` (share of estimates clipped to
    [-1, 1]) in ``uns['checks']``, flagged above those limits."""
    names = [str(g) for g in genes.var_names]
    if result.genes is not None and list(result.genes) != names:
        raise DataError("the CS-CORE result's genes are not the feature file's genes in the same order")
    adj = coexpression_adjacency(result.est, result.p_value, rule)
    graph = genes.copy()
    graph.varp["coexpr"] = adj
    graph.varp["cscore_rho"] = result.est.astype(np.float32)
    graph.varp["cscore_p"] = result.p_value.astype(np.float32)
    graph.var["cscore_mu"] = result.mu
    graph.var["cscore_sigma2"] = result.sigma2
    edge_types = ["coexpr"]
    if rule.signed:
        graph.varp["coexpr_sign"] = sp.csr_matrix(adj.multiply(np.sign(result.est)).astype(np.float32))
        edge_types.append("coexpr_sign")
    stats = graph_stats(adj)
    graph.uns["checks"] = carried(genes.uns)
    invalid = float(np.mean(~(np.asarray(result.sigma2) > 0))) if len(names) else 0.0
    record(graph.uns, "max_invalid_variance_frac", invalid, max_invalid_variance_frac, "max",
           "share of genes with a non-positive CS-CORE variance estimate")
    record(graph.uns, "max_clipped_frac", result.clipped_frac, max_clipped_frac, "max",
           "share of CS-CORE co-expression estimates clipped to [-1, 1]")
    graph.uns["edge_types"] = edge_types
    edge_rule = {k: v for k, v in asdict(rule).items() if v is not None and k not in ("device", "dtype")}
    graph.uns["graph"] = {"coexpr": {"rule": edge_rule,
                                     "stats": stats, "cscore_passes": int(result.n_passes),
                                     "cscore_converged": bool(result.converged)}}
    log.info("co-expression graph: %d genes, %d edges, density %.3f (diagonal included), degree mean %.1f "
             "median %.0f max %d, %d isolated genes", stats["n_genes"], stats["n_edges"], stats["density"],
             stats["degree_mean"], stats["degree_median"], stats["degree_max"], stats["isolated_genes"])
    return graph
