"""Rule evaluate_cellplm: every CellPLM task score (dataset x task x method x seed) in one table, and its mean
and sd over seeds."""

import pandas as pd

from genegraph.evaluate.seeds import over_seeds
from genegraph.io import write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    scores = pd.concat([pd.read_csv(p, sep="\t") for p in smk.input.scores], ignore_index=True)
    table = over_seeds(scores, ("dataset", "task", "method"))
    write_tsv(scores, smk.output.scores)
    write_tsv(table, smk.output.summary)
    log.info("CellPLM tasks, mean over seeds:\n%s", table.to_string(index=False))
