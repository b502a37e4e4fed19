"""Rule train: MuSe-GNN across the dataset graphs of one training group; embeddings, loss table, run metadata.

A checkpoint is written under the output folder every `checkpoint_every` epochs and is deliberately not
an output of the rule (Snakemake would delete it with the outputs of a killed job): rerunning a killed job
resumes from it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads stall shared CPU nodes

from pathlib import Path  # noqa: E402

from genegraph.device import torch_job  # noqa: E402
from genegraph.logs import rule_context  # noqa: E402
from genegraph.models.musegnn.train import train_musegnn, train_settings  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)
torch_job(smk.threads)  # before any torch operation: its worker threads inherit the flush
with rule_context(smk.log[0], threads=smk.threads):
    out_dir = Path(smk.output.embeddings).parent
    train_musegnn(list(smk.input.graphs), train_settings(smk.params.cfg), out_dir, seed=int(smk.wildcards.seed),
                  device=smk.params.device, checkpoint_dir=out_dir / "checkpoint", threads=smk.threads,
                  group=smk.wildcards.group)
