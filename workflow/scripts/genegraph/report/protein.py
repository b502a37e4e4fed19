"""The report section of the protein-prediction stage: the score summary, predicted against measured proteins for
a few proteins, per-protein errors, and the matching and joint-embedding variants."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from genegraph.plots import plt
from genegraph.report.html import figure_png, img, table_html

#: Proteins drawn in the predicted-against-measured figure (those of highest measured variance).
SCATTER_PROTEINS = 4


def scatter_figure(pred: ad.AnnData):
    """Measured against predicted (transformed) values of the test cells for the proteins of highest variance."""
    truth, values = np.asarray(pred.layers["truth"], dtype=float), np.asarray(pred.X, dtype=float)
    order = np.argsort(-truth.var(axis=0))[:SCATTER_PROTEINS]
    fig, axes = plt.subplots(1, len(order), figsize=(3.6 * len(order), 3.5), squeeze=False)
    for ax, j in zip(axes[0], order):
        ax.scatter(truth[:, j], values[:, j], s=5, alpha=0.5, rasterized=True)
        top = max(truth[:, j].max(), values[:, j].max(), 1e-9)
        ax.plot([0, top], [0, top], color="tab:red", lw=1, ls="--")
        r = np.corrcoef(truth[:, j], values[:, j])[0, 1] if truth[:, j].std() and values[:, j].std() else np.nan
        ax.set_title(f"{pred.var_names[j]} (r = {r:.2f})")
        ax.set_xlabel("measured")
    axes[0][0].set_ylabel(f"{pred.uns['protein_prediction']['method']} prediction")
    fig.tight_layout()
    return fig


def section(paths: Mapping[str, str | Path]) -> tuple[str, str, str, str]:
    """(id, title, caption, body) of the protein section."""
    summary = pd.read_csv(paths["summary"], sep="\t")
    shown = summary[[c for c in summary.columns if c in ("dataset", "method", "n_seeds")
                     or (c.endswith("_mean") and not c.startswith(("seconds", "n_parameters", "epochs")))
                     or c in ("rmse_sd", "pearson_protein_sd")]].copy()
    for column in ("epochs_mean", "n_parameters_mean", "seconds_mean"):
        if column in summary:
            shown[column.removesuffix("_mean")] = summary[column].round(1)
    best = {c: ("min" if c.startswith(("rmse", "mae")) else "max") for c in shown.columns
            if c.endswith("_mean")}
    pred = ad.read_h5ad(paths["predictions"])
    per_protein = pd.read_csv(paths["per_protein"], sep="\t")
    task = str(pred.uns["protein_prediction"].get("task", ""))
    method = str(pred.uns["protein_prediction"]["method"])
    worst = (per_protein[(per_protein["dataset"] == task) & (per_protein["method"] == method)]
             .sort_values("rmse", ascending=False).head(10))
    body = (table_html(shown, best)
            + img(figure_png(scatter_figure(pred)), "predicted against measured",
                  f"Test cells of {task}: measured against {method}'s prediction (first seed) for the proteins of "
                  "highest variance.")
            + f"<h3>Largest per-protein errors of {method} on {task} (mean over seeds)</h3>"
            + table_html(worst))
    for name, title in (("matching", "Modality matching (scMoGNN)"), ("joint_embedding", "Joint embedding (scMoGNN)")):
        table = pd.read_csv(paths[name], sep="\t")
        if len(table):
            metrics = [c for c in table.columns
                       if c not in ("task", "seed") and pd.api.types.is_numeric_dtype(table[c])]
            body += f"<h3>{title}, mean over seeds</h3>" + table_html(
                table.groupby("task", sort=False)[metrics].mean().reset_index())
    caption = ("Protein prediction from RNA: per CITE-seq dataset (test cells: a held-out batch when the dataset has "
               "two or more, else a seeded 20 %) and per cross-dataset task (train on one dataset, test on another "
               "over their shared proteins), every method on the same split and seeds. RMSE, MAE and Pearson per "
               "cell and per protein of the transformed proteins (CLR by default), mean and sd over seeds; epochs "
               "and parameters show each method's budget. svd_linear is the NeurIPS 2021 competition baseline, "
               "mean predicts the training cells' average. Matching: share of test cells matched to their own "
               "protein profile (chance = 1 / test cells).")
    return "protein", "Protein prediction: scMoGNN and scMoFormer against their baselines", caption, body
