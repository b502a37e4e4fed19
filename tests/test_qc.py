"""QC filters, the metrics table and the error for a dataset QC empties."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from genegraph.config import settings
from genegraph.data.qc import QCSettings, mad_outliers, plot_qc, run_qc
from genegraph.errors import DataError


def qc(**values) -> QCSettings:
    return settings(QCSettings, "qc", values)


def dataset() -> ad.AnnData:
    """6 cells x 5 genes: an MT gene, a rare gene, one cell with few genes, one with many MT counts."""
    x = np.array([
        # MT-ND1 MTOR RARE  G1  G2
        [1, 3, 0, 5, 2],
        [2, 1, 0, 4, 1],
        [0, 0, 0, 7, 0],    # 1 gene detected
        [40, 1, 1, 1, 1],   # 91 % mitochondrial
        [1, 2, 0, 3, 3],
        [1, 1, 0, 2, 2],
    ], dtype=np.int32)
    genes = ["MT-ND1", "MTOR", "RARE", "G1", "G2"]
    return ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=[f"c{i}" for i in range(6)]),
                      var=pd.DataFrame({"symbol": genes}, index=genes))


def test_filters_in_order_and_depth_over_all_genes():
    out, steps, metrics = run_qc(dataset(), qc(min_genes=2, min_cells=2, max_pct_mt=50))
    assert list(out.obs_names) == ["c0", "c1", "c4", "c5"]
    assert list(out.var_names) == ["MTOR", "G1", "G2"]  # RARE in < 2 cells, MT-ND1 removed, MTOR kept
    assert out.obs.loc["c0", "total_counts"] == 11 and out.obs.loc["c0", "total_counts_qc"] == 10
    assert out.X.dtype == np.int32
    assert steps["step"].tolist() == ["input", "cells: n_genes >= 2", "cells: pct_counts_mt < 50",
                                      "genes: in >= 2 cells", "genes: not mitochondrial (MT-)"]
    assert steps["cells"].tolist() == [6, 5, 4, 4, 4] and steps["genes"].tolist() == [5, 5, 5, 4, 3]
    assert metrics["kept"].sum() == 4 and len(metrics) == 6
    assert np.isclose(metrics.loc["c3", "pct_counts_mt"], 100 * 40 / 44)


def test_max_genes_is_strict():
    out, _, _ = run_qc(dataset(), qc(min_genes=1, min_cells=1, max_genes=5))
    assert "c3" not in out.obs_names  # 5 genes detected: removed by n_genes < 5


def test_mad_rule():
    values = np.array([10.0, 11, 9, 10, 12, 100])
    assert mad_outliers(values, 5).tolist() == [False] * 5 + [True]
    assert not mad_outliers(np.ones(4), 3).any()


def test_empty_after_filter_names_the_filter():
    with pytest.raises(DataError, match=r"QC filter 'cells: n_genes >= 200' removed all 6 remaining cells "
                                        r"\(genes per cell range 1-5\)"):
        run_qc(dataset(), qc())
    with pytest.raises(DataError, match="QC filter 'genes: in >= 10 cells' removed all 5 genes"):
        run_qc(dataset(), qc(min_genes=1, min_cells=10))


def test_figure_draws():
    _, _, metrics = run_qc(dataset(), qc(min_genes=2, min_cells=1, max_pct_mt=50))
    fig = plot_qc(metrics, qc(min_genes=2, max_pct_mt=50), "toy")
    assert len(fig.axes) == 5  # 4 panels + colour bar


def test_too_few_cells_after_qc_is_an_error():
    with pytest.raises(DataError, match="only 4 cells remain after QC \\(of 6\\), fewer than "
                                        "checks.min_dataset_cells = 5"):
        run_qc(dataset(), qc(min_genes=2, min_cells=1, max_pct_mt=50), min_dataset_cells=5)
    out, _, _ = run_qc(dataset(), qc(min_genes=2, min_cells=1, max_pct_mt=50), min_dataset_cells=4)
    assert out.n_obs == 4
