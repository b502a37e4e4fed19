"""The report section of the CellPLM stage: pre-training (corpus, size, loss curve), the task scores of the
pre-trained model against the same model from scratch and the baselines, and a UMAP of the zero-shot embedding."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from genegraph.plots import plt
from genegraph.report.html import figure_png, img, table_html

#: Lower is better for these metrics; higher for every other one.
LOWER_IS_BETTER = ("rmse", "mae")


def loss_figure(history: pd.DataFrame):
    """Pre-training loss per epoch (total and its parts)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for column in [c for c in history.columns if c not in ("epoch", "seconds")]:
        ax.plot(history["epoch"], history[column], label=column)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def umap_figure(embeddings: ad.AnnData):
    """UMAP of each embedding of the first held-out dataset, coloured by cell type when known, else by batch."""
    import scanpy as sc

    keys = sorted(embeddings.obsm)
    colour = next((c for c in ("celltype", "batch") if c in embeddings.obs), None)
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        view = ad.AnnData(obs=embeddings.obs.copy(), obsm={"X": np.asarray(embeddings.obsm[key])})
        sc.pp.neighbors(view, use_rep="X", random_state=0)
        sc.tl.umap(view, random_state=0)
        xy = view.obsm["X_umap"]
        codes = pd.Categorical(view.obs[colour]).codes if colour else np.zeros(view.n_obs)
        ax.scatter(xy[:, 0], xy[:, 1], c=codes, s=4, cmap="tab20", rasterized=True)
        ax.set_title(key.removeprefix("X_"))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def section(paths: Mapping[str, str | Path]) -> tuple[str, str, str, str]:
    """(id, title, caption, body) of the CellPLM section."""
    run = json.loads(Path(paths["run"]).read_text())
    history = pd.read_csv(paths["history"], sep="\t")
    facts = pd.DataFrame([("datasets", ", ".join(run["datasets"])), ("cells", run["cells"]),
                          ("vocabulary (genes)", run["vocabulary"]), ("parameters", f"{run['n_parameters']:,}"),
                          ("epochs", run["epochs"]), ("training time (s)", f"{run['train_seconds']:.0f}"),
                          ("device", run["device"])], columns=["pre-training", "value"]).astype(str)
    body = table_html(facts) + img(figure_png(loss_figure(history)), "pre-training loss", "Pre-training loss.")
    if "summary" in paths:
        summary = pd.read_csv(paths["summary"], sep="\t")
        for task, part in summary.groupby("task", sort=False):
            shown = part.dropna(axis=1, how="all")
            shown = shown[[c for c in shown.columns if c in ("dataset", "method", "n_seeds")
                           or c.endswith(("_mean", "_sd")) and not c.startswith(("n_", "epochs"))]]
            best = {c: ("min" if c.startswith(LOWER_IS_BETTER) else "max") for c in shown.columns
                    if c.endswith("_mean")}
            body += f"<h3>{task}</h3>" + table_html(shown, best)
    else:
        body += "<p>No dataset is held out from pre-training (config cellplm.heldout): no downstream task ran.</p>"
    if "embedding" in paths:
        body += img(figure_png(umap_figure(ad.read_h5ad(paths["embedding"]))), "CellPLM embedding UMAP",
                    "Zero-shot embeddings of the first held-out dataset: CellPLM, the untrained model and PCA.")
    caption = ("CellPLM (cells as tokens), pre-trained here from scratch on the datasets not held out, then on each "
               "held-out dataset: zero-shot embedding (scored against cell types where known), denoising (a "
               "DeepImpute hold-out of non-zero counts; RMSE / MAE of log-normalised values), cell-type "
               "annotation (stratified split; macro F1) and spatial imputation (the imputation stage's hold-out, "
               "comparable with SpaFormer's scores). 'cellplm_scratch' is the same architecture and fine-tuning "
               "budget without pre-training; mean and sd over seeds.")
    return "cellplm", "CellPLM: pre-training and downstream tasks", caption, body
