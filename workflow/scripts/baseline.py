"""Rule baseline: one baseline method's gene embeddings (same graphs, same seed as MuSe-GNN)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from genegraph.device import torch_job  # noqa: E402
from genegraph.io import write_h5ad  # noqa: E402
from genegraph.logs import rule_context  # noqa: E402
from genegraph.models.baselines import baseline_settings, run_baseline  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)
torch_job(smk.threads)  # before any torch operation: its worker threads inherit the flush
with rule_context(smk.log[0], threads=smk.threads):
    emb = run_baseline(smk.wildcards.method, list(smk.input.graphs), int(smk.wildcards.seed),
                       baseline_settings(smk.params.cfg), device=smk.params.device, group=smk.wildcards.group,
                       equal_epochs=smk.params.equal_epochs)
    write_h5ad(emb, smk.output[0])
