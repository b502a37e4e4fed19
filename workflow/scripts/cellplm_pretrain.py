"""Rule cellplm_pretrain: one CellPLM pre-trained from scratch on the QC'd counts of every dataset not held out;
resumable from its checkpoints. Gene vocabulary: the union of the upper-cased gene names of every dataset, held
out ones included (their names only, never their counts), so that the downstream tasks can read and predict
all of a held-out dataset's genes; genes no pre-training dataset measures keep their initial embedding until
fine-tuning."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import anndata as ad  # noqa: E402

from genegraph.device import resolve_device, torch_job  # noqa: E402
from genegraph.io import write_json, write_tsv  # noqa: E402
from genegraph.logs import rule_context  # noqa: E402
from genegraph.models.cellplm import build_vocabulary, cellplm_settings, parameter_count, pretrain, save_model  # noqa: E402
from genegraph.models.cellplm.vocab import uppercase_genes  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)
torch_job(smk.threads)  # before any torch operation: its worker threads inherit the flush
with rule_context(smk.log[0], threads=smk.threads) as log:
    s = cellplm_settings(smk.params.cfg)
    data = {d: uppercase_genes(ad.read_h5ad(p)) for d, p in zip(smk.params.datasets, smk.input.adata, strict=True)}
    names = [ad.read_h5ad(p, backed="r").var_names for p in smk.input.heldout]
    vocab = build_vocabulary([*(a.var_names for a in data.values()), *(n.astype(str).str.upper() for n in names)])
    device = resolve_device(smk.params.device)
    res = pretrain(data, vocab, s, device, checkpoint_dir=smk.params.checkpoints)
    save_model(res.model, smk.output.model)
    write_tsv(res.history, smk.output.history)
    run = {"datasets": list(data), "cells": int(sum(a.n_obs for a in data.values())), "vocabulary": len(vocab),
           "n_parameters": parameter_count(res.model), "epochs": s.pretrain.epochs,
           "resumed_from_epoch": res.resumed_from_epoch, "train_seconds": res.train_seconds, "device": str(device)}
    write_json(run, smk.output.run)
    log.info("pre-trained CellPLM: %s", run)
