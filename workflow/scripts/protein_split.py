"""Rule protein_split: the train / val / test cells of one protein task for every seed (results/protein/<task>/
split.tsv: one row per cell, one column per seed), read by every method so that all share one split."""

import anndata as ad
import pandas as pd

from genegraph.io import write_tsv
from genegraph.logs import rule_context
from genegraph.models.protein_task import pipeline_task

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], smk.wildcards.task) as log:
    adatas = [ad.read_h5ad(p) for p in smk.input.adata]
    columns = {}
    for seed in smk.params.seeds:
        task = pipeline_task(adatas, smk.params.datasets, int(seed), smk.params.cfg)
        columns[f"seed{seed}"] = task.split
        counts = pd.Series(task.split).value_counts()
        log.info("seed %s: %d cells (%s), %d genes, %d proteins", seed, len(task.split), counts.to_dict(),
                 len(task.genes), len(task.proteins))
    table = pd.DataFrame(columns, index=pd.Index(task.cells, name="cell"))
    write_tsv(table.reset_index(), smk.output[0])
