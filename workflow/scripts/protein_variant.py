"""Rule protein_variant: scMoGNN's modality matching or joint embedding on one within-dataset protein task and
seed, with the task's recorded split; one row of scores (results/protein/<task>/<variant>/seed<k>.tsv)."""

import anndata as ad
import numpy as np
import pandas as pd

from genegraph.device import resolve_device, torch_job
from genegraph.evaluate.protein import joint_embedding_scores, matching_score
from genegraph.io import write_tsv
from genegraph.logs import rule_context
from genegraph.models.protein_task import load_settings, pipeline_task, rna_counts, with_split
from genegraph.models.scmognn import JointEmbeddingSettings, MatchingSettings, train_embed, train_match

smk = snakemake  # noqa: F821 (injected by Snakemake)
torch_job(smk.threads)  # before any torch operation: its worker threads inherit the flush
wc = smk.wildcards
with rule_context(smk.log[0], wc.task, threads=smk.threads) as log:
    seed, cfg = int(wc.seed), smk.params.cfg
    adata = ad.read_h5ad(smk.input.adata)
    table = pd.read_csv(smk.input.split, sep="\t", index_col="cell", dtype={"cell": str})
    task = with_split(pipeline_task([adata], [wc.task], seed, cfg), table, seed)
    counts = rna_counts(adata)
    device = resolve_device(smk.params.device)
    row = {"task": wc.task, "seed": seed, "n_cells": len(task.split), "n_test": int((task.split == "test").sum())}
    if wc.variant == "matching":
        s = load_settings(MatchingSettings, "matching", cfg.get("matching"))
        res = train_match(counts, task.y, task.split, task.batch, seed, s, device)
        row.update(matching_score=matching_score(res.matrix), chance=1.0 / max(row["n_test"], 1),
                   epochs=len(res.history))
    else:
        s = load_settings(JointEmbeddingSettings, "joint_embedding", cfg.get("joint_embedding"))
        key = smk.params.label_key
        labels = adata.obs[key].astype(str).to_numpy() if key in adata.obs else None
        res = train_embed(counts, task.y, task.split, task.batch, seed, s, celltype=labels, device=device)
        row["epochs"] = len(res.history)
        if labels is None:
            log.warning("no obs['%s'] cell-type labels: the joint embedding is trained without them and not scored",
                        key)
        else:
            batch = task.batch if len(np.unique(task.batch)) > 1 else None
            row.update(joint_embedding_scores(res.embedding, labels, batch, seed=seed))
    write_tsv(pd.DataFrame([row]), smk.output[0])
    log.info("%s of %s, seed %d: %s", wc.variant, wc.task, seed, row)
