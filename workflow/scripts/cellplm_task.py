"""Rule cellplm_task: one CellPLM downstream task (embedding, denoising, annotation or spatial imputation) on one
held-out dataset and seed; a tidy score table (results/cellplm/<dataset>/<task>/seed<k>.tsv) and, for the
embedding task, the embeddings (obsm X_<method> of an .h5ad)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import anndata as ad  # noqa: E402
import pandas as pd  # noqa: E402

from genegraph.device import resolve_device, torch_job  # noqa: E402
from genegraph.evaluate import cellplm_tasks as tasks  # noqa: E402
from genegraph.io import write_h5ad, write_tsv  # noqa: E402
from genegraph.logs import rule_context  # noqa: E402
from genegraph.models.cellplm import cellplm_settings, load_model  # noqa: E402
from genegraph.models.cellplm.vocab import uppercase_genes  # noqa: E402
from genegraph.models.spaformer import imputation_settings  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)
torch_job(smk.threads)  # before any torch operation: its worker threads inherit the flush
wc = smk.wildcards
with rule_context(smk.log[0], wc.dataset, threads=smk.threads) as log:
    seed, task = int(wc.seed), smk.params.task
    s = cellplm_settings(smk.params.cfg)
    device = resolve_device(smk.params.device)
    model = load_model(smk.input.model, device)
    adata = uppercase_genes(ad.read_h5ad(smk.input.adata))
    label_key = smk.params.label_key
    if task == "embedding":
        rows, z = tasks.embedding_task(model, adata, seed, label_key, device)
        out = ad.AnnData(obs=adata.obs.copy(), obsm={f"X_{m}": x for m, x in z.items()})
        write_h5ad(out, smk.output.embeddings)
        if not rows:
            log.warning("no obs['%s'] labels: the embeddings are written but not scored", label_key)
    elif task == "denoising":
        rows = tasks.denoising_task(model, adata, s, seed, device)
    elif task == "annotation":
        rows = tasks.annotation_task(model, adata, s, seed, label_key, device)
        if not rows:
            log.warning("no obs['%s'] labels (sheet column celltype_key): nothing to annotate", label_key)
    else:
        spatial = imputation_settings(smk.params.imputation).spatial
        rows = tasks.imputation_task(model, ad.read_h5ad(smk.input.mask), s, spatial, seed, device)
    table = pd.DataFrame(rows, columns=None if rows else ["method"])
    table.insert(0, "seed", seed)
    table.insert(0, "task", task)
    table.insert(0, "dataset", wc.dataset)
    write_tsv(table, smk.output.scores)
    log.info("%s of %s, seed %d:\n%s", task, wc.dataset, seed, table.to_string(index=False))
