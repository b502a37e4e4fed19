"""Rule features: SCTransform-v2 residuals of the variable genes (or of the top SPARK-X genes for spatial
data), written gene-centric: genes x cells residuals, raw counts of those genes, per-cell depth."""

import anndata as ad
import pandas as pd

from genegraph.features import gene_centric, sctransform
from genegraph.io import write_h5ad
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
with rule_context(smk.log[0], smk.wildcards.dataset) as log:
    qc = ad.read_h5ad(smk.input.qc)
    ranked = None
    if "spatial_genes" in smk.input.keys():
        ranked = pd.read_csv(smk.input.spatial_genes, sep="\t")["gene"].astype(str).head(p.n_genes).tolist()
        log.info("residual features: the top %d SPARK-X genes", len(ranked))
    sct = sctransform(qc, n_genes=p.n_genes, residual_features=ranked, seed=p.seed, depth_key=p.depth_key)
    write_h5ad(gene_centric(qc, sct, depth_key=p.depth_key), smk.output[0])
