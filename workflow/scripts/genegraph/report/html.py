"""The run's HTML report: one self-contained file (figures embedded as PNG data URIs, no external assets).

:func:`build_report` takes the tables and figures the stages wrote and returns the page; the figure
functions draw what no stage draws itself (loss curves, embedding UMAPs, graph coverage).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from genegraph.plots import plt

SECTIONS = ("overview", "datasets", "qc", "graphs", "training", "embeddings", "metrics", "modules", "function")
METRICS = ("ASW", "AUC", "iLISI", "GC", "CGR", "NO")
#: Shown after Avg Rank, not part of it (summary column prefix -> header).
ALIGNMENT_COLUMNS = {"align_MRR": "alignment MRR", "align_top1": "alignment top-1"}
BUDGET_COLUMNS = {"epochs": "epochs", "n_parameters": "parameters"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1f2328;background:#fff}
header{background:#24292f;color:#fff;padding:18px 32px} header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;color:#d0d7de} nav{padding:8px 32px;background:#f6f8fa;border-bottom:1px solid #d0d7de}
nav a{margin-right:14px;color:#0969da;text-decoration:none;font-size:14px} main{padding:8px 32px 40px;max-width:1400px}
section{margin-top:28px} h2{border-bottom:1px solid #d0d7de;padding-bottom:4px} h3{margin-bottom:6px}
p.caption{color:#57606a;font-size:14px;max-width:1000px} figure{margin:10px 0}
figure img{max-width:100%;border:1px solid #eaeef2}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th{background:#f6f8fa} td.text,th.text{text-align:left} td.best{font-weight:700;background:#dafbe1}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;font-size:13px;max-width:1000px}
"""


@dataclass
class ReportInputs:
    """Everything the report shows; tables as data frames, figures as PNG paths."""

    qc_summary: pd.DataFrame
    qc_figures: Mapping[str, Path]
    graphs_summary: pd.DataFrame
    losses: Mapping[str, pd.DataFrame]
    runs: Mapping[str, dict]
    embedding_rows: Sequence[ad.AnnData]
    summary: pd.DataFrame
    modules: pd.DataFrame
    function: pd.DataFrame
    config: dict = field(default_factory=dict)


# --- small HTML helpers ------------------------------------------------------------------------------


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def img(png: bytes, alt: str, caption: str) -> str:
    return (f'<figure><img src="{png_data_uri(png)}" alt="{html.escape(alt)}">'
            f'<figcaption><p class="caption">{html.escape(caption)}</p></figcaption></figure>')


def _fmt(value, digits: int = 3) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}" if abs(value) < 1e-3 and value \
            else f"{value:.{digits}f}"
    return html.escape(str(value))


def table_html(df: pd.DataFrame, best: Mapping[str, str] | None = None, digits: int = 3) -> str:
    """An HTML table; ``best`` maps a column to ``max`` or ``min``: that column's best cells are marked."""
    best = best or {}
    marks = {}
    for col, how in best.items():
        values = pd.to_numeric(df[col], errors="coerce")
        if values.notna().any():
            target = values.max() if how == "max" else values.min()
            marks[col] = np.isclose(values.to_numpy(dtype=float), target, equal_nan=False)
    head = "".join(f'<th class="{"text" if df[c].dtype == object else ""}">{html.escape(str(c))}</th>'
                   for c in df.columns)
    rows = []
    for i in range(len(df)):
        cells = []
        for c in df.columns:  # value by column keeps its dtype (iterrows would turn ints into floats)
            cls = ["text"] if df[c].dtype == object else []
            if c in marks and marks[c][i]:
                cls.append("best")
            cells.append(f'<td class="{" ".join(cls)}">{_fmt(df[c].iat[i], digits)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def section(sid: str, title: str, caption: str, body: str) -> str:
    return (f'<section id="{sid}"><h2>{html.escape(title)}</h2><p class="caption">{html.escape(caption)}</p>'
            f"{body}</section>")


# --- figures -------------------------------------------------------------------------------------------


def loss_figure(losses: Mapping[str, pd.DataFrame]):
    """Per-epoch BCE, similarity, InfoNCE and total loss, one line per training group and seed."""
    cols = [("bce", "BCE (reconstruction)"), ("sim", "similarity"), ("infonce", "InfoNCE"), ("total", "total")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, (col, title) in zip(axes, cols):
        for seed, table in sorted(losses.items()):
            ax.plot(table["epoch"], table[col], lw=1.2, label=str(seed))
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend(frameon=False)
    fig.tight_layout()
    return fig


def umap_figure(groups: Sequence[ad.AnnData], colour_by: Sequence[str]):
    """UMAP of the gene embeddings (``obsm['X_umap']`` of each group's modules file): one row of panels per
    training group (each group has its own model, hence its own space), one panel per obs column in
    ``colour_by``."""
    fig, grid = plt.subplots(len(groups), len(colour_by), figsize=(5.2 * len(colour_by), 4.6 * len(groups)),
                             squeeze=False)
    for rows, axes in zip(groups, grid):
        _umap_row(rows, colour_by, axes)
    fig.tight_layout()
    return fig


def _umap_row(rows: ad.AnnData, colour_by: Sequence[str], axes) -> None:
    xy = np.asarray(rows.obsm["X_umap"])
    group = str(rows.obs["group"].iloc[0]) if "group" in rows.obs else "all"
    for ax, col in zip(axes, colour_by):
        values = rows.obs[col].astype(str)
        cats = sorted(pd.unique(values), key=lambda v: (len(v), v))
        cmap = plt.get_cmap("tab20" if len(cats) <= 20 else "nipy_spectral", max(len(cats), 1))
        for k, cat in enumerate(cats):
            sel = (values == cat).to_numpy()
            ax.scatter(xy[sel, 0], xy[sel, 1], s=3, color=cmap(k), label=cat, rasterized=True)
        ax.set_title(f"{group}: coloured by {col}")
        ax.set_xticks([])
        ax.set_yticks([])
        if len(cats) <= 12:
            ax.legend(markerscale=4, fontsize=7, frameon=False, loc="best")


def coverage_figure(graphs: pd.DataFrame):
    """Per dataset: co-expression density, and fraction of genes with a STRING edge / in a hallmark set."""
    bars = [("coexpr_density", "co-expression density"), ("string_frac_with_edge", "genes with a STRING edge"),
            ("hallmark_in_set_frac", "genes in a hallmark set")]
    bars = [(c, label) for c, label in bars if c in graphs]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(graphs)), 3.4))
    width = 0.8 / max(len(bars), 1)
    x = np.arange(len(graphs))
    for k, (col, label) in enumerate(bars):
        ax.bar(x + k * width, graphs[col].astype(float), width, label=label)
    ax.set_xticks(x + width * (len(bars) - 1) / 2, graphs["dataset"], rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


# --- sections ------------------------------------------------------------------------------------------


def metrics_table(summary: pd.DataFrame) -> str:
    """Per evaluation group: method x metric "mean ± sd" with Avg Score and Avg Rank, then the gene alignment
    (not aggregated) and each method's budget (epochs, parameters) when the summary has them; best marked."""
    parts = []
    for group, part in summary.groupby("group", sort=False):
        shown = pd.DataFrame({"method": part["method"].to_numpy(), "seeds": part["n_seeds"].to_numpy()})
        best = {}
        for m in METRICS:
            mean, sd = part[f"{m}_mean"].to_numpy(dtype=float), part[f"{m}_sd"].to_numpy(dtype=float)
            shown[m] = mean
            shown[f"{m} sd"] = sd
            best[m] = "max"
        shown["Avg Score"] = part["avg_score"].to_numpy(dtype=float)
        shown["Avg Rank"] = part["avg_rank"].to_numpy(dtype=float)
        best.update({"Avg Score": "max", "Avg Rank": "min"})
        for column, label in ALIGNMENT_COLUMNS.items():
            if f"{column}_mean" in part:
                shown[label] = part[f"{column}_mean"].to_numpy(dtype=float)
                best[label] = "max"
        for column, label in BUDGET_COLUMNS.items():
            if column in part:
                shown[label] = part[column].to_numpy()
        table = table_html(shown, best)
        parts.append(f"<h3>group: {html.escape(str(group))}</h3>{table}")
    return "".join(parts)


def build_report(inp: ReportInputs, title: str = "genegraph report",
                 tasks: Sequence[tuple[str, str, str, str]] = ()) -> str:
    """The whole page: the gene-level sections of :data:`SECTIONS`, in order, then one section per cell-level
    task stage, each given as (id, title, caption, body HTML) by that stage's report module."""
    cfg = inp.config
    seeds = sorted(inp.runs)
    first = inp.runs[seeds[0]] if seeds else {}
    overview = pd.DataFrame([
        ("datasets", len(inp.qc_summary)),
        ("modalities", ", ".join(sorted(inp.qc_summary["modality"].astype(str).unique()))),
        ("tissues", ", ".join(sorted(inp.qc_summary["tissue"].astype(str).unique()))),
        ("methods", ", ".join(pd.unique(inp.summary["method"]))),
        ("training runs (group, seed)", "; ".join(map(str, seeds))),
        ("MuSe-GNN epochs", first.get("epochs", "–")),
        ("MuSe-GNN parameters", f"{first['n_parameters']:,}" if "n_parameters" in first else "–"),
        ("training device", first.get("device_name", first.get("device", "–"))),
        ("training time per run (s)", ", ".join(f"{inp.runs[s].get('train_time_s', float('nan')):.0f}"
                                               for s in seeds)),
        ("versions", ", ".join(f"{k} {v}" for k, v in first.get("versions", {}).items())),
    ], columns=["item", "value"]).astype(str)
    sections = [
        section("overview", "Run overview", "What was run: datasets, methods, seeds and the training setup.",
                table_html(overview)),
        section("datasets", "Datasets",
                "Every dataset of the sheet with its modality, tissue and species, and its cells and genes before and "
                "after quality control.", table_html(inp.qc_summary)),
        section("qc", "Quality control",
                "Per dataset: distributions of total counts, genes per cell and percent mitochondrial counts (red "
                "dashed lines: thresholds; grey: removed cells), and genes versus counts per cell.",
                "".join(img(Path(p).read_bytes(), f"QC {d}", f"QC of dataset {d}.")
                        for d, p in inp.qc_figures.items())),
        section("graphs", "Gene graphs",
                "Per dataset: the CS-CORE co-expression graph (genes, edges, density with the diagonal, degree) and "
                "the coverage of the prior-knowledge edge types (fraction of genes with at least one STRING edge, in "
                "at least one hallmark set; edges per type). The data checks (config 'checks'): share "
                "of genes found in the species' gene table, of genes with an invalid CS-CORE variance and of "
                "clipped co-expression estimates; a dataset past a limit shows the check's name in the flags "
                "column (and its job log has a WARNING).",
                img(figure_png(coverage_figure(inp.graphs_summary)), "graph coverage",
                    "Co-expression density and STRING / hallmark coverage per dataset.")
                + table_html(_graph_columns(inp.graphs_summary))),
        section("training", "MuSe-GNN training",
                "Loss components per epoch: reconstruction BCE on the adjacency, the Jaccard-weighted cosine "
                "similarity of common genes across graphs, InfoNCE on different genes, and the weighted total.",
                img(figure_png(loss_figure(inp.losses)), "loss curves",
                    "Training losses per epoch, training group and seed.")
                + table_html(pd.DataFrame([{"run": s, **{k: inp.runs[s].get("final_losses", {}).get(k, np.nan)
                                                           for k in ("bce", "sim", "infonce", "total")},
                                            "epochs": inp.runs[s].get("epochs", np.nan),
                                            "training time (s)": inp.runs[s].get("train_time_s", np.nan)}
                                           for s in seeds]))),
        section("embeddings", "Gene embeddings",
                "UMAP of the MuSe-GNN gene embeddings of each training group (one point per gene per dataset, first "
                "seed; each group has its own model, hence its own panel row), coloured by "
                "dataset, tissue, modality and gene module (Leiden cluster).",
                img(figure_png(umap_figure(inp.embedding_rows, ["dataset", "tissue", "modality", "module"])),
                    "embedding UMAP", "UMAP of the gene embeddings.")),
        section("metrics", "Metrics: MuSe-GNN against the baselines",
                "Mean and standard deviation over seeds of the six metrics (higher is better), per evaluation group, "
                "with Avg Score (each metric min-max scaled across methods, then averaged; a constant metric gives 0) "
                "and Avg Rank (1 = best). Best values are highlighted. – : not defined for the group (e.g. a group "
                "with one dataset has no cross-dataset mixing). Then, outside Avg Score and Avg Rank, the gene "
                "alignment: for each gene shared by two datasets, the reciprocal rank of its own row among the other "
                "dataset's rows by cosine similarity (MRR) and the share ranked first (top-1). None of the six checks "
                "that a gene lands in the same place in every dataset, so embeddings made per dataset (PCA) can "
                "score well on them without being comparable across datasets; alignment shows it. Last, each "
                "method's budget (config baselines.budget): training epochs and trainable parameters of one "
                "group's model (Gene2vec / GIANT: Word2Vec epochs and vectors; PCA: none).",
                metrics_table(inp.summary)),
        section("modules", "Gene modules",
                "Leiden modules of the MuSe-GNN embeddings: size, datasets, and the most over-represented hallmark "
                "gene sets (hypergeometric test, Benjamini-Hochberg q; background = all genes of the run).",
                table_html(inp.modules)),
        section("function", "Gene-function prediction",
                "k-NN classification of gene labels (stratified cross-validation, several seeds): accuracy and "
                "balanced accuracy, mean and sd over seeds, per dataset and pooled, for MuSe-GNN, PCA and the raw "
                "residual features; 'majority' is the accuracy of always guessing the largest class.",
                table_html(_function_columns(inp.function))),
    ]
    sections += [section(*task) for task in tasks]
    nav = "".join(f'<a href="#{s}">{s}</a>' for s in [*SECTIONS, *(t[0] for t in tasks)])
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{html.escape(title)}</h1><p>MuSe-GNN gene embeddings "
            f"across {len(inp.qc_summary)} datasets</p></header><nav>{nav}</nav><main>{''.join(sections)}</main>"
            f"<script type=\"application/json\" id=\"config\">{html.escape(json.dumps(cfg, default=str))}</script>"
            "</body></html>")


def _graph_columns(graphs: pd.DataFrame) -> pd.DataFrame:
    wanted = ["dataset", "coexpr_n_genes", "coexpr_n_edges", "coexpr_density", "coexpr_degree_median",
              "coexpr_isolated_genes", "string_edges", "string_frac_with_edge", "hallmark_edges",
              "hallmark_in_set_frac", "with_ortholog_frac"]
    table = graphs[[c for c in wanted + sorted(c for c in graphs if c.startswith("check_")) if c in graphs]].copy()
    table["flags"] = graphs["flags"].fillna("").astype(str) if "flags" in graphs else ""
    return table


def _function_columns(table: pd.DataFrame) -> pd.DataFrame:
    wanted = ["task", "scope", "dataset", "method", "n_genes", "majority", "accuracy_mean", "accuracy_sd",
              "balanced_accuracy_mean", "balanced_accuracy_sd"]
    return table[[c for c in wanted if c in table]]


def section_ids(page: str) -> list[str]:
    """The section ids present in a rendered page, in order (for tests)."""
    import re

    return re.findall(r'<section id="([a-z]+)"', page)
