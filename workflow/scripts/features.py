"""Rule features: SCTransform-v2 of one dataset; the selected genes (variable genes, or the top SPARK-X genes of
spatial data) flagged in var['highly_variable'] and their residuals in layers['residuals']."""

import anndata as ad
import pandas as pd

from genegraph.io import write_h5ad
from genegraph.logs import rule_context
from genegraph.stats.sctransform.residuals import feature_file, sctransform

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
with rule_context(smk.log[0], smk.wildcards.dataset, threads=smk.threads) as log:
    qc = ad.read_h5ad(smk.input.qc)
    ranked = None
    if smk.input.get("spatial_genes"):  # (`in` on snakemake inputs tests the paths, not the names)
        ranked = pd.read_csv(smk.input.spatial_genes, sep="\t")["gene"].astype(str).head(p.n_genes).tolist()
        log.info("residual features: the top %d SPARK-X genes", len(ranked))
    sct = sctransform(qc, n_genes=p.n_genes, residual_features=ranked, seed=p.seed, depth_key=p.depth_key)
    write_h5ad(feature_file(qc, sct), smk.output[0])
