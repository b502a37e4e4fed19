"""Rule spatial_genes: SPARK-X on the QC'd counts of a spatial dataset; genes ranked, most variable first."""

import anndata as ad
from genegraph.io import write_tsv
from genegraph.logs import rule_context
from genegraph.stats.sparkx import rank_spatial_genes, sparkx_adata

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], smk.wildcards.dataset, threads=smk.threads) as log:
    adata = ad.read_h5ad(smk.input[0])
    result = sparkx_adata(adata)
    ranked = rank_spatial_genes(result)
    table = result.loc[ranked].rename_axis("gene").reset_index()
    table.insert(1, "rank", range(1, len(table) + 1))
    write_tsv(table, smk.output[0])
    log.info("SPARK-X: %d spots x %d genes tested, %d with BY-adjusted p < 0.05", adata.n_obs, len(result),
             int((result["adjusted_pval"] < 0.05).sum()))
