"""Edge rules on CS-CORE output and the gene-graph file."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from genegraph.config import settings
from genegraph.errors import DataError
from genegraph.graphs.coexpression import (
    CoexpressionSettings,
    bh_adjust,
    coexpression_adjacency,
    coexpression_graph,
    graph_stats,
)
from genegraph.stats.cscore import cscore


def EdgeRule(**values) -> CoexpressionSettings:  # noqa: N802 (reads like the rule it builds)
    return settings(CoexpressionSettings, "coexpression", values)

RHO = np.array([[1.0, 0.8, -0.5, 0.05],
                [0.8, 1.0, 0.3, 0.0],
                [-0.5, 0.3, 1.0, 0.2],
                [0.05, 0.0, 0.2, 1.0]])
P = np.array([[0.0, 1e-6, 1e-3, 0.2],
              [1e-6, 0.0, 0.004, np.nan],
              [1e-3, 0.004, 0.0, 0.006],
              [0.2, np.nan, 0.006, 0.0]])


def edges(adj) -> set[tuple[int, int]]:
    a = sp.coo_matrix(adj)
    return {(int(i), int(j)) for i, j in zip(a.row, a.col) if i < j}


def test_faithful_rule_is_p_below_threshold_with_self_loops():
    adj = coexpression_adjacency(RHO, P, EdgeRule())
    assert edges(adj) == {(0, 1), (0, 2), (1, 2)}
    assert adj.diagonal().tolist() == [1, 1, 1, 1]
    assert (adj != adj.T).nnz == 0 and adj.dtype == np.float32


def test_optional_rules():
    assert edges(coexpression_adjacency(RHO, P, EdgeRule(min_abs_rho=0.4))) == {(0, 1), (0, 2)}
    assert edges(coexpression_adjacency(RHO, P, EdgeRule(p_threshold=None, top_k=1))) == {(0, 1), (0, 2), (2, 3)}
    nodiag = coexpression_adjacency(RHO, P, EdgeRule(keep_diag=False))
    assert nodiag.diagonal().sum() == 0 and edges(nodiag) == {(0, 1), (0, 2), (1, 2)}
    # BH over the 5 finite off-diagonal p-values: 1e-6, 1e-3, 4e-3, 6e-3, 0.2 -> only the first two < 0.005
    assert edges(coexpression_adjacency(RHO, P, EdgeRule(p_threshold=None, fdr=0.005))) == {(0, 1), (0, 2)}
    with pytest.raises(DataError, match="keeps every pair"):
        EdgeRule(p_threshold=None)
    with pytest.raises(DataError, match="coexpression.fdr"):
        EdgeRule(fdr=1.5)


def test_bh_adjust_matches_definition():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.0533, 0.0533, 0.5
    assert np.allclose(bh_adjust(p), [0.04, 0.16 / 3, 0.16 / 3, np.nan, 0.5], equal_nan=True)


def test_stats_count_undirected_edges_and_density_with_diagonal():
    stats = graph_stats(coexpression_adjacency(RHO, P, EdgeRule()))
    assert stats["n_edges"] == 3 and stats["self_loops"] == 4
    assert stats["density"] == pytest.approx(10 / 16)
    assert stats["isolated_genes"] == 1 and stats["degree_max"] == 2


def _genes(counts: np.ndarray, depth: np.ndarray) -> ad.AnnData:
    """Selected genes as the coexpression stage reads them: cells x genes counts, residuals, depth, checks."""
    n_cells, n_genes = counts.shape
    rng = np.random.default_rng(9)
    return ad.AnnData(X=sp.csr_matrix(counts.astype(np.int32)),
                      obs=pd.DataFrame({"total_counts": depth.astype(float)}, index=[f"c{i}" for i in range(n_cells)]),
                      var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]),
                      layers={"residuals": rng.normal(size=(n_cells, n_genes)).astype(np.float32)},
                      uns={"checks": {"min_gene_table_frac": {"value": 1.0, "limit": 0.5, "bound": "min",
                                                              "flagged": False, "what": "x"}}})


def test_graph_file_from_real_cscore_run():
    rng = np.random.default_rng(0)
    latent = rng.gamma(2.0, 1.0, size=(300, 1))
    counts = rng.poisson(latent * np.array([1.0, 2.0, 0.5, 1.5, 1.0]) + rng.gamma(1.0, 0.3, size=(300, 5)))
    depth = counts.sum(1) + rng.integers(50, 100, size=300)
    genes = _genes(counts, depth)
    result = cscore(genes.X, depth, genes=list(genes.var_names))
    graph = coexpression_graph(genes, result, EdgeRule(signed=True))
    assert graph.uns["edge_types"] == ["coexpr", "coexpr_sign"]
    assert graph.varp["coexpr"].shape == (5, 5) and graph.varp["cscore_p"].dtype == np.float32
    assert graph.uns["graph"]["coexpr"]["stats"]["n_edges"] > 0  # a shared latent factor co-expresses them
    assert "device" not in graph.uns["graph"]["coexpr"]["rule"]
    sign = graph.varp["coexpr_sign"].toarray()
    assert set(np.unique(sign)) <= {-1.0, 0.0, 1.0}
    with pytest.raises(DataError, match="same order"):
        coexpression_graph(genes[:, ::-1].copy(), result, EdgeRule())


def test_degenerate_cscore_results_are_flagged(caplog):
    rng = np.random.default_rng(3)
    tiny = rng.poisson(1.0, size=(5, 40))  # 5 cells: variance estimates and correlations break down
    depth = tiny.sum(1) + 20
    result = cscore(sp.csr_matrix(tiny), depth, genes=[f"G{i}" for i in range(40)])
    graph = coexpression_graph(_genes(tiny, depth), result, EdgeRule(), max_invalid_variance_frac=0.1,
                               max_clipped_frac=0.01)
    checks = graph.uns["checks"]
    assert set(checks) == {"min_gene_table_frac", "max_invalid_variance_frac", "max_clipped_frac"}  # carried on
    invalid = float(np.mean(~(result.sigma2 > 0)))
    assert checks["max_invalid_variance_frac"]["value"] == pytest.approx(invalid) and invalid > 0.1
    assert checks["max_invalid_variance_frac"]["flagged"] and checks["max_clipped_frac"]["flagged"]
    assert result.clipped_frac > 0.01
    assert "check max_invalid_variance_frac" in caplog.text and "check max_clipped_frac" in caplog.text

    latent = rng.gamma(2.0, 1.0, size=(400, 40))  # independent genes
    healthy = rng.poisson(latent * rng.uniform(0.5, 2.0, size=(1, 40)))
    depth = healthy.sum(1) + 200
    result = cscore(sp.csr_matrix(healthy), depth, genes=[f"G{i}" for i in range(40)])
    graph = coexpression_graph(_genes(healthy, depth), result, EdgeRule(), max_invalid_variance_frac=0.1,
                               max_clipped_frac=0.01)
    assert not any(c["flagged"] for c in graph.uns["checks"].values())
