"""Quality control of one dataset: cell and gene filters, the metrics table and the QC figure.

Order (every step is a row of the metrics table):

1. per-cell metrics on **all** input genes, under scanpy's ``calculate_qc_metrics`` names: ``total_counts``
   (CS-CORE and SCTransform use this depth, taken before any gene is removed), ``n_genes_by_counts`` and
   ``pct_counts_mt`` (percent of counts in genes whose symbol starts with the mitochondrial prefix,
   case-insensitive);
2. cell filters: ``n_genes_by_counts >= min_genes``; optional ``n_genes_by_counts < max_genes``,
   ``pct_counts_mt < max_pct_mt`` (strict, as the MuSe-GNN scripts) and the MAD-outlier rule: a cell is dropped
   when log1p(total_counts) or log1p(n_genes_by_counts) is more than ``mad_outliers`` median absolute deviations
   from the median (either side), or pct_counts_mt more than that above its median;
3. gene filters: genes detected in ``>= min_cells`` of the remaining cells, then mitochondrial genes removed;
4. ``total_counts_qc``: total counts per cell over the genes that remain (the depth the MuSe-GNN code used).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from genegraph.data.genes import is_mitochondrial
from genegraph.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QCSettings:
    """QC thresholds: the config section ``qc`` (a sheet column of the same name overrides a key for one
    dataset; ``None`` switches an optional filter off). Types, defaults and meanings: the config schema."""

    min_genes: int
    min_cells: int
    mt_prefix: str
    max_genes: int | None
    max_pct_mt: float | None
    mad_outliers: float | None


def cell_metrics(x: sp.csr_matrix, mito: np.ndarray) -> pd.DataFrame:
    """Per-cell ``total_counts``, ``n_genes_by_counts`` and ``pct_counts_mt`` of a cells x genes count matrix."""
    depth = np.asarray(x.sum(axis=1)).ravel()
    n_genes = np.diff(x.indptr)
    mt = np.asarray(x[:, mito].sum(axis=1)).ravel() if mito.any() else np.zeros_like(depth)
    pct = np.divide(100.0 * mt, depth, out=np.zeros(depth.shape, dtype=float), where=depth > 0)
    return pd.DataFrame({"total_counts": depth.astype(np.int64), "n_genes_by_counts": n_genes.astype(np.int64),
                         "pct_counts_mt": pct})


def mad_outliers(values: np.ndarray, k: float, upper_only: bool = False) -> np.ndarray:
    """True where ``values`` lie more than ``k`` (unscaled) MADs from their median."""
    med = np.median(values)
    mad = np.median(np.abs(values - med))
    dev = values - med if upper_only else np.abs(values - med)
    return dev > k * mad if mad > 0 else np.zeros(values.shape, dtype=bool)


def _cell_filters(metrics: pd.DataFrame, p: QCSettings) -> list[tuple[str, np.ndarray]]:
    """(step name, keep mask) for each active cell filter, in order."""
    steps = [(f"cells: n_genes >= {p.min_genes}", metrics["n_genes_by_counts"].to_numpy() >= p.min_genes)]
    if p.max_genes is not None:
        steps.append((f"cells: n_genes < {p.max_genes}", metrics["n_genes_by_counts"].to_numpy() < p.max_genes))
    if p.max_pct_mt is not None:
        steps.append((f"cells: pct_counts_mt < {p.max_pct_mt:g}", metrics["pct_counts_mt"].to_numpy() < p.max_pct_mt))
    if p.mad_outliers is not None:
        k = p.mad_outliers
        out = (mad_outliers(np.log1p(metrics["total_counts"].to_numpy()), k)
               | mad_outliers(np.log1p(metrics["n_genes_by_counts"].to_numpy()), k)
               | mad_outliers(metrics["pct_counts_mt"].to_numpy(), k, upper_only=True))
        steps.append((f"cells: within {k:g} MADs", ~out))
    return steps


def run_qc(adata: ad.AnnData, params: QCSettings, min_dataset_cells: int = 1
           ) -> tuple[ad.AnnData, pd.DataFrame, pd.DataFrame]:
    """Filter ``adata`` (canonical dataset: integer CSR counts, symbol var_names).

    Returns the QC'd AnnData, the step table (one row per filter: cells/genes before and after) and the
    per-cell metrics of **all** input cells with a ``kept`` column (for the figure). A filter that leaves
    no cell or no gene raises :class:`DataError` naming it, and so does a result with fewer than
    ``min_dataset_cells`` cells.
    """
    x = sp.csr_matrix(adata.X)
    mito = is_mitochondrial(adata.var_names, params.mt_prefix)
    metrics = cell_metrics(x, mito)
    metrics.index = adata.obs_names
    rows = [{"step": "input", "cells": adata.n_obs, "genes": adata.n_vars}]

    keep = np.ones(adata.n_obs, dtype=bool)
    for name, mask in _cell_filters(metrics, params):
        before = int(keep.sum())
        keep &= mask
        if not keep.any():
            raise DataError(f"QC filter '{name}' removed all {before} remaining cells ({_hint(name, metrics)})")
        rows.append({"step": name, "cells": int(keep.sum()), "genes": adata.n_vars})
    xc = x[keep]
    n_cells = np.bincount(xc.indices, minlength=adata.n_vars)
    gene_keep = n_cells >= params.min_cells
    if not gene_keep.any():
        raise DataError(f"QC filter 'genes: in >= {params.min_cells} cells' removed all {adata.n_vars} genes")
    rows.append({"step": f"genes: in >= {params.min_cells} cells", "cells": int(keep.sum()),
                 "genes": int(gene_keep.sum())})
    gene_keep &= ~mito
    if not gene_keep.any():
        raise DataError("QC filter 'genes: not mitochondrial' removed all remaining genes")
    rows.append({"step": f"genes: not mitochondrial ({params.mt_prefix})", "cells": int(keep.sum()),
                 "genes": int(gene_keep.sum())})

    if keep.sum() < min_dataset_cells:
        raise DataError(f"only {int(keep.sum())} cells remain after QC (of {adata.n_obs}), fewer than "
                        f"checks.min_dataset_cells = {min_dataset_cells}: too few for co-expression statistics")
    out = adata[keep, gene_keep].copy()
    out.X = sp.csr_matrix(xc[:, gene_keep])
    for col in metrics.columns:
        out.obs[col] = metrics[col].to_numpy()[keep]
    out.obs["total_counts_qc"] = np.asarray(out.X.sum(axis=1)).ravel().astype(np.int64)
    out.var["n_cells_by_counts"] = n_cells[gene_keep].astype(np.int64)
    steps = pd.DataFrame(rows)
    out.uns["qc"] = {"params": {k: v for k, v in asdict(params).items() if v is not None},
                     "steps": steps.to_dict(orient="list"), "n_mt_genes": int(mito.sum())}
    metrics["kept"] = keep
    log.info("QC: %d -> %d cells, %d -> %d genes (%d mitochondrial genes removed)",
             adata.n_obs, out.n_obs, adata.n_vars, out.n_vars, int((mito & (n_cells >= params.min_cells)).sum()))
    return out, steps, metrics


def _hint(name: str, metrics: pd.DataFrame) -> str:
    if "n_genes" in name:
        return f"genes per cell range {metrics['n_genes_by_counts'].min()}-{metrics['n_genes_by_counts'].max()}"
    if "pct_counts_mt" in name:
        return f"pct_counts_mt range {metrics['pct_counts_mt'].min():.1f}-{metrics['pct_counts_mt'].max():.1f}"
    return "check the thresholds"


def plot_qc(metrics: pd.DataFrame, params: QCSettings, title: str):
    """Histograms of depth, genes per cell and % mitochondrial counts with the thresholds, and a
    depth-vs-genes scatter; removed cells in grey. Returns a matplotlib Figure."""
    from genegraph.plots import plt

    kept = metrics["kept"].to_numpy()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    panels = [
        ("total_counts", "total counts (log10)", np.log10(np.maximum(metrics["total_counts"], 1)), []),
        ("n_genes_by_counts", "genes per cell", metrics["n_genes_by_counts"], [params.min_genes, params.max_genes]),
        ("pct_counts_mt", "% mitochondrial counts", metrics["pct_counts_mt"], [params.max_pct_mt]),
    ]
    for ax, (_, label, values, lines) in zip(axes, panels):
        values = np.asarray(values, dtype=float)
        bins = np.histogram_bin_edges(values, bins=40)
        ax.hist(values[kept], bins=bins, color="tab:blue", label="kept")
        if (~kept).any():
            ax.hist(values[~kept], bins=bins, color="lightgrey", label="removed")
        for v in lines:
            if v is not None:
                ax.axvline(v, color="tab:red", ls="--", lw=1)
        ax.set_xlabel(label)
        ax.set_ylabel("cells")
    ax = axes[3]
    ax.scatter(metrics["total_counts"][~kept], metrics["n_genes_by_counts"][~kept], s=4, c="lightgrey", label="removed")
    sc = ax.scatter(metrics["total_counts"][kept], metrics["n_genes_by_counts"][kept], s=4,
                    c=metrics["pct_counts_mt"][kept],
                    cmap="viridis", label="kept")
    fig.colorbar(sc, ax=ax, label="% mitochondrial")
    ax.set_xscale("log")
    ax.set_xlabel("total counts")
    ax.set_ylabel("genes per cell")
    axes[0].legend(frameon=False)
    fig.suptitle(f"{title}: {int(kept.sum())} of {len(kept)} cells kept")
    fig.tight_layout()
    return fig
