"""Rule report: the self-contained HTML report of the run (results/report.html)."""

import importlib
import json
from pathlib import Path

import anndata as ad
import pandas as pd

from genegraph.io import atomic_path
from genegraph.logs import rule_context
from genegraph.report.html import ReportInputs, build_report, section_ids

smk = snakemake  # noqa: F821 (injected by Snakemake)
i = smk.input
with rule_context(smk.log[0], threads=smk.threads) as log:

    def tsv(path):
        return pd.read_csv(path, sep="\t")

    inputs = ReportInputs(
        qc_summary=tsv(i.qc_summary),
        qc_figures=dict(zip(smk.params.datasets, map(Path, i.qc_figures))),
        graphs_summary=tsv(i.graphs_summary),
        losses=dict(zip(smk.params.runs, map(tsv, i.losses))),
        runs={s: json.loads(Path(p).read_text()) for s, p in zip(smk.params.runs, i.runs)},
        embedding_rows=[ad.read_h5ad(p) for p in i.embedding_rows],
        summary=tsv(i.summary),
        modules=pd.concat([tsv(p).assign(group=g) for g, p in zip(smk.params.groups, i.modules)], ignore_index=True),
        function=tsv(i.function),
        config=dict(smk.config),
    )
    tasks = {}
    for key, value in i.items():  # task-stage inputs are named "<stage>__<name>"
        if "__" in key:
            stage, name = key.split("__", 1)
            tasks.setdefault(stage, {})[name] = value
    page = build_report(inputs, tasks=[importlib.import_module(f"genegraph.report.{stage}").section(paths)
                                       for stage, paths in tasks.items()])
    with atomic_path(smk.output[0]) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("report: %d sections (%s), %.1f MB", len(section_ids(page)), ", ".join(section_ids(page)),
             len(page) / 1e6)
