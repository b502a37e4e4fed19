"""The HTML report: built from small tables, every section present, self-contained, rendered by Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from genegraph.plots import plt, save_figure
from genegraph.report.html import SECTIONS, ReportInputs, build_report, section_ids, table_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def small_inputs(tmp_path: Path) -> ReportInputs:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, tmp_path / "qc.png")
    rng = np.random.default_rng(0)
    metrics = {f"{m}_{s}": rng.random(2) for m in ("ASW", "AUC", "iLISI", "GC", "CGR", "NO") for s in ("mean", "sd")}
    return ReportInputs(
        qc_summary=pd.DataFrame({"dataset": ["a", "b"], "modality": ["scrna", "spatial"], "tissue": ["blood", "brain"],
                                 "species": ["human", "mouse"], "cells_input": [10, 20], "cells_qc": [9, 18]}),
        qc_figures={"a": tmp_path / "qc.png", "b": tmp_path / "qc.png"},
        graphs_summary=pd.DataFrame({"dataset": ["a", "b"], "coexpr_density": [0.2, 0.1],
                                     "string_frac_with_edge": [0.1, 0.0], "hallmark_in_set_frac": [0.4, 0.2]}),
        losses={"blood, seed 0": pd.DataFrame({"epoch": [1, 2], "bce": [0.7, 0.5], "sim": [0, -0.1], "infonce": [5, 4],
                                 "total": [0.8, 0.4]})},
        runs={"blood, seed 0": {"epochs": 2, "n_parameters": 1234, "train_time_s": 3.0, "final_losses": {"bce": 0.5}}},
        embedding_rows=[ad.AnnData(obs=pd.DataFrame({"dataset": ["a"] * 5 + ["b"] * 5,
                                                     "tissue": ["blood"] * 5 + ["brain"] * 5, "group": "blood",
                                                     "modality": ["scrna"] * 5 + ["spatial"] * 5,
                                                     "module": [0, 1] * 5},
                                                    index=[f"r{k}" for k in range(10)]),
                                   obsm={"X_umap": rng.normal(size=(10, 2))})],
        summary=pd.DataFrame({"group": ["all", "all"], "method": ["musegnn", "pca"], "n_seeds": [1, 1], **metrics,
                              "avg_score": [0.9, 0.1], "avg_rank": [1.0, 2.0]}),
        modules=pd.DataFrame({"module": [0, 1], "n_genes": [3, 2], "top_sets": ["HALLMARK_X (q=0.01, 2/5)", ""]}),
        function=pd.DataFrame({"task": ["tf"], "scope": ["pooled"], "dataset": ["all"], "method": ["musegnn"],
                               "accuracy_mean": [0.6], "accuracy_sd": [0.05]}),
    )


def test_every_section_with_embedded_figures(tmp_path):
    page = build_report(small_inputs(tmp_path))
    assert section_ids(page) == list(SECTIONS)
    assert page.count("data:image/png;base64,") == 2 + 1 + 1 + 1  # 2 QC, coverage, losses, UMAP
    assert "http://" not in page and "https://" not in page  # self-contained


def test_best_values_are_marked():
    html = table_html(pd.DataFrame({"method": ["a", "b"], "score": [0.2, 0.9], "rank": [2.0, 1.0]}),
                      best={"score": "max", "rank": "min"})
    assert html.count('class="best"') == 2 and '<td class="best">0.900</td>' in html


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_chromium_renders_the_page(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(build_report(small_inputs(tmp_path)))
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert section_ids(dom) == list(SECTIONS)
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    pixels = plt.imread(shot)
    assert pixels.shape[0] == 2000 and pixels[:400].std() > 0.05  # the header and tables are drawn
