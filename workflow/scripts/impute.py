"""Rules train_imputation and impute_baseline: one method x seed on a dataset's masked counts; the imputed
log-normalised expression of every cell (and, for SpaFormer methods, the model and its loss table)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time  # noqa: E402

import anndata as ad  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from genegraph.device import resolve_device, torch_job  # noqa: E402
from genegraph.io import atomic_path, write_h5ad, write_json, write_tsv  # noqa: E402
from genegraph.logs import rule_context  # noqa: E402
from genegraph.models.spaformer import imputation_settings, impute, spatial_input  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)
torch_job(smk.threads)  # before any torch operation: its worker threads inherit the flush
wc = smk.wildcards
with rule_context(smk.log[0], wc.dataset, threads=smk.threads) as log:
    s = imputation_settings(smk.params.cfg)
    mask = ad.read_h5ad(smk.input[0])
    inp = spatial_input(mask, mask.X, s.normalise.scale, s.spatial)
    device = resolve_device(smk.params.device)
    start = time.perf_counter()
    result = impute(inp, wc.imethod, s, int(wc.seed), device)
    out = ad.AnnData(X=result.expression, obs=mask.obs.copy(), var=mask.var.copy(),
                     obsm={k: v for k, v in mask.obsm.items() if k == "spatial"},
                     uns={"imputation": {"method": wc.imethod, "seed": int(wc.seed), **result.info}})
    if result.latent is not None:
        out.obsm[f"X_{wc.imethod}"] = result.latent
    write_h5ad(out, smk.output.imputed)
    run = {"dataset": wc.dataset, "method": wc.imethod, "seed": int(wc.seed), "device": str(device),
           "seconds": time.perf_counter() - start, "sections": list(inp.section_names), **result.info}
    if result.fitted is not None:
        with atomic_path(smk.output.model) as tmp:
            torch.save({"state_dict": result.fitted.model.state_dict(), "settings": smk.params.cfg}, tmp)
        write_tsv(pd.DataFrame(result.fitted.history), smk.output.losses)
    else:
        run["deterministic"] = "the baseline does not depend on the seed"
    write_json(run, smk.output.run)
    log.info("%s seed %s on %s: %d cells x %d genes in %.1f s (%s)", wc.imethod, wc.seed, wc.dataset, out.n_obs,
             out.n_vars, run["seconds"], {k: v for k, v in result.info.items() if isinstance(v, (int, float))})
