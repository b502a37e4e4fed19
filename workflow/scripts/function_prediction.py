"""Rule function_prediction: k-NN gene-function prediction from MuSe-GNN, PCA and raw features."""

import anndata as ad
from genegraph.evaluate.gene_embedding.function_prediction import function_settings, predict_functions
from genegraph.io import write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    graphs = {g.uns["dataset"]["id"]: g for g in (ad.read_h5ad(p) for p in smk.input.graphs)}
    embeddings = {m: ad.read_h5ad(smk.input[m]) for m in smk.params.methods}
    table = predict_functions(embeddings, graphs, function_settings(smk.params.cfg))
    write_tsv(table, smk.output[0])
    log.info("function prediction:\n%s", table.to_string(index=False))
