"""The report section of the spatial-imputation stage: the score summary, held-out truth against the
imputation, and one gene in space (measured, masked, imputed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from genegraph.models.spaformer import read_heldout
from genegraph.plots import plt
from genegraph.report.html import figure_png, img, table_html

#: Points drawn in the scatter of held-out entries (a seeded subsample).
SCATTER_POINTS = 6000


def _normalised(counts: sp.csr_matrix, library: np.ndarray, scale: float) -> np.ndarray:
    x = np.asarray(sp.csr_matrix(counts).toarray(), dtype=np.float64)
    return np.log1p(x / library[:, None] * scale)


def spatial_figure(mask: ad.AnnData, imputed: ad.AnnData, scale: float):
    """One gene (the held-out gene of highest truth variance) on the section: measured (all counts), masked
    input (what the methods saw) and imputed, on one colour scale."""
    held = read_heldout(mask)
    full = sp.csr_matrix(mask.X, dtype=np.float64) + sp.csr_matrix(
        (held.counts.astype(np.float64), (held.rows, held.cols)), shape=mask.shape)
    variance = pd.Series(held.truth).groupby(held.cols).var()
    gene = int(variance.idxmax())
    measured = _normalised(full[:, gene], held.library, scale)[:, 0]
    masked_library = np.asarray(mask.X.sum(axis=1), dtype=np.float64).ravel()
    masked = _normalised(mask.X[:, gene], np.maximum(masked_library, 1), scale)[:, 0]
    pred = np.asarray(imputed.X[:, gene], dtype=np.float64).ravel()
    xy = np.asarray(mask.obsm["spatial"], dtype=float)
    top = max(measured.max(), pred.max(), 1e-9)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    for ax, values, title in zip(axes, (measured, masked, pred), ("measured", "masked input", "imputed")):
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=6, cmap="viridis", vmin=0, vmax=top, rasterized=True)
        ax.set_title(f"{mask.var_names[gene]}: {title}")
        ax.set_aspect("equal")
        ax.invert_yaxis()
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes, shrink=0.8, label="ln(1 + count / library x scale)")
    return fig


def scatter_figure(mask: ad.AnnData, imputed: ad.AnnData):
    """Held-out truth against the imputed value at the same entries (a seeded subsample)."""
    held = read_heldout(mask)
    pick = np.random.default_rng(0).permutation(held.rows.size)[:SCATTER_POINTS]
    truth = held.truth[pick]
    pred = np.asarray(imputed.X[held.rows[pick], held.cols[pick]]).ravel()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.scatter(truth, pred, s=3, alpha=0.3, rasterized=True)
    top = max(truth.max(), pred.max(), 1e-9)
    ax.plot([0, top], [0, top], color="tab:red", lw=1, ls="--")
    ax.set_xlabel("held-out truth (log-normalised)")
    ax.set_ylabel(f"{imputed.uns['imputation']['method']} imputation")
    fig.tight_layout()
    return fig


def section(paths: Mapping[str, str | Path]) -> tuple[str, str, str, str]:
    """(id, title, caption, body) of the imputation section."""
    summary = pd.read_csv(paths["summary"], sep="\t")
    mask, imputed = ad.read_h5ad(paths["mask"]), ad.read_h5ad(paths["imputed"])
    scale = float(mask.uns["mask"]["scale"])
    shown = summary[[c for c in summary.columns if c in ("dataset", "method", "n_seeds") or c.endswith(("_mean", "_sd"))
                     and not c.startswith(("epochs", "best_epoch", "seconds"))]]
    best = {c: ("min" if c.startswith("rmse") else "max") for c in shown.columns if c.endswith("_mean")}
    dataset = str(mask.uns.get("dataset", {}).get("id", ""))
    body = (table_html(shown, best)
            + img(figure_png(scatter_figure(mask, imputed)), "held-out scatter",
                  f"Held-out entries of {dataset}: truth against the imputation.")
            + img(figure_png(spatial_figure(mask, imputed, scale)), "gene in space",
                  f"One gene of {dataset} in space: measured, as the methods saw it (masked), imputed."))
    caption = ("Spatial imputation: a seeded 30 % of all count entries (zeros included) of each spatial dataset is "
               "held out and every method is trained on the rest only. RMSE, Pearson and cosine over the pooled "
               "held-out entries (log-normalised, truth with the unmasked library size), the median per-gene "
               "Pearson and, where cells are labelled, NMI/ARI of a Leiden sweep to the number of labels; mean "
               "and sd over seeds. raw is the masked input itself (0 at every held-out entry).")
    return "imputation", "Spatial imputation: SpaFormer against its baselines", caption, body
