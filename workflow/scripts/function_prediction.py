"""Rule function_prediction: k-NN gene-function prediction from MuSe-GNN, PCA and raw features."""

import anndata as ad
import pandas as pd

from genegraph.evaluate.gene_embedding.function_prediction import function_settings, predict_functions
from genegraph.io import write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    graphs = {g.uns["dataset"]["id"]: g for g in (ad.read_h5ad(p) for p in smk.input.graphs)}
    cfg = function_settings(smk.params.cfg)
    by_group = {}  # each training group's embeddings live in their own space: scored group by group
    for method in smk.params.methods:
        for path in smk.input[method]:
            emb = ad.read_h5ad(path)
            by_group.setdefault(str(emb.obs["group"].iloc[0]), {})[method] = emb
    parts = []
    for group, embeddings in by_group.items():
        datasets = set(next(iter(embeddings.values())).obs["dataset"].astype(str))
        part = predict_functions(embeddings, {d: g for d, g in graphs.items() if d in datasets}, cfg)
        parts.append(part.assign(group=group))
    table = pd.concat(parts, ignore_index=True)
    write_tsv(table, smk.output[0])
    log.info("function prediction:\n%s", table.to_string(index=False))
