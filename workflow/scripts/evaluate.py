"""Rule evaluate: the six metrics for every method x seed (tidy table) and their summary with Avg Score /
Avg Rank per evaluation group."""

import anndata as ad
from genegraph.evaluate.gene_embedding.metrics import evaluation_settings, score_runs, summarise
from genegraph.io import write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    graphs = [ad.read_h5ad(path) for path in smk.input.graphs]
    embeddings = {(method, int(seed)): ad.read_h5ad(smk.input[f"{method}_seed{seed}"])
                  for method, seed in smk.params.runs}
    scores = score_runs(embeddings, graphs, evaluation_settings(smk.params.cfg), group_by=smk.params.group_by)
    summary = summarise(scores)
    write_tsv(scores, smk.output.scores)
    write_tsv(summary, smk.output.summary)
    log.info("summary:\n%s", summary.to_string(index=False))
