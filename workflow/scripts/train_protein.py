"""Rules train_protein and protein_baseline: one method x seed on one protein task; the test cells' predicted
proteins (results/protein/<task>/<method>/seed<k>/predictions.h5ad) and, for trained models, the weights and
the per-epoch losses."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import anndata as ad  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from genegraph.device import resolve_device, torch_job  # noqa: E402
from genegraph.graphs.priors.hallmark import read_gmt  # noqa: E402
from genegraph.io import atomic_path, write_h5ad, write_json, write_tsv  # noqa: E402
from genegraph.logs import rule_context  # noqa: E402
from genegraph.models.protein_methods import predict  # noqa: E402
from genegraph.models.protein_task import pipeline_task, predictions_anndata, with_split  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)
torch_job(smk.threads)  # before any torch operation: its worker threads inherit the flush
wc = smk.wildcards
with rule_context(smk.log[0], wc.task, threads=smk.threads) as log:
    seed = int(wc.seed)
    adatas = [ad.read_h5ad(p) for p in smk.input.adata]
    table = pd.read_csv(smk.input.split, sep="\t", index_col="cell", dtype={"cell": str})
    task = with_split(pipeline_task(adatas, smk.params.datasets, seed, smk.params.cfg), table, seed)
    gene_sets = read_gmt(smk.input.gmt) if smk.input.get("gmt") else None
    edges = pd.read_csv(smk.input.string, sep="\t") if smk.input.get("string") else None
    device = resolve_device(smk.params.device)
    result = predict(task, wc.pmethod, seed, smk.params.cfg, gene_sets, edges, device)
    info = {"task": wc.task, "datasets": list(smk.params.datasets), "device": str(device), **result.info}
    write_h5ad(predictions_anndata(task, result.values, wc.pmethod, seed, info), smk.output.predictions)
    if result.model is not None:
        with atomic_path(smk.output.model) as tmp:
            torch.save({"state_dict": result.model.state_dict(), "method": wc.pmethod, "config": smk.params.cfg},
                       tmp)
        write_tsv(result.history, smk.output.losses)
    write_json({"method": wc.pmethod, "seed": seed, **info}, smk.output.run)
    log.info("%s seed %d on %s: wrote %d test cells x %d proteins", wc.pmethod, seed, wc.task,
             len(task.index("test")), len(task.proteins))
