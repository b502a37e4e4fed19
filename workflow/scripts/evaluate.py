"""Rule evaluate: the six metrics and the gene alignment for every method x seed (tidy table, with each
group's model budget: epochs and parameters) and their summary with Avg Score / Avg Rank per training group."""

import anndata as ad
import pandas as pd

from genegraph.evaluate.gene_embedding.metrics import evaluation_settings, score_runs, summarise
from genegraph.io import write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    graphs = [ad.read_h5ad(path) for path in smk.input.graphs]
    embeddings, budgets = {}, []
    for method, seed in smk.params.runs:
        # one embeddings file per training group: each group is scored with its own model
        parts = [ad.read_h5ad(p) for p in smk.input[f"{method}_seed{seed}"]]
        embeddings[(method, int(seed))] = ad.concat(parts, merge="first", uns_merge="first")
        budgets += [{"group": str(p.obs["group"].iloc[0]), "method": method, "seed": int(seed),
                     "epochs": int(p.uns.get("epochs", 0)), "n_parameters": int(p.uns.get("n_parameters", 0))}
                    for p in parts]
    scores = score_runs(embeddings, graphs, evaluation_settings(smk.params.cfg), group_by="group")
    scores = scores.merge(pd.DataFrame(budgets), on=["group", "method", "seed"], how="left")
    summary = summarise(scores)
    budget = scores.groupby(["group", "method"], sort=False)[["epochs", "n_parameters"]].first().reset_index()
    summary = summary.merge(budget, on=["group", "method"], how="left")
    write_tsv(scores, smk.output.scores)
    write_tsv(summary, smk.output.summary)
    log.info("summary:\n%s", summary.to_string(index=False))
