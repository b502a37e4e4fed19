"""Rule qc: filter cells and genes of one dataset; write the QC'd AnnData, the step table and the figure."""

import anndata as ad

from genegraph.config import settings
from genegraph.data.qc import QCSettings, plot_qc, run_qc
from genegraph.io import write_h5ad, write_tsv
from genegraph.logs import rule_context
from genegraph.plots import save_figure

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
dataset = smk.wildcards.dataset
with rule_context(smk.log[0], dataset, threads=smk.threads) as log:
    params = settings(QCSettings, "qc", p.qc)
    adata = ad.read_h5ad(smk.input[0])
    log.info("read %s: %d cells x %d genes; %s", smk.input[0], adata.n_obs, adata.n_vars, params)
    qcd, steps, metrics = run_qc(adata, params, min_dataset_cells=p.min_dataset_cells)
    save_figure(plot_qc(metrics, params, title=dataset), smk.output.figure)
    write_tsv(steps.assign(dataset=dataset), smk.output.metrics)
    write_h5ad(qcd, smk.output.h5ad)
