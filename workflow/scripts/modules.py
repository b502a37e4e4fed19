"""Rule modules: Leiden gene modules of the MuSe-GNN embeddings (first seed), their hallmark
over-representation, and a UMAP layout of the embeddings for the report."""

import anndata as ad

from genegraph.evaluate.gene_embedding.modules import module_analysis, module_settings, ortholog_gene_map
from genegraph.graphs.priors.hallmark import read_gmt
from genegraph.graphs.priors.orthologs import load_orthologs
from genegraph.io import write_h5ad, write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    emb = ad.read_h5ad(smk.input.embeddings)
    # genes of another species than the hallmark sets (a mouse group) are tested through their human orthologs
    mapping = ortholog_gene_map(emb, smk.params.taxa, smk.params.hallmark_taxon, load_orthologs(smk.input.orthologs))
    rows, enrichment, table = module_analysis(emb, read_gmt(smk.input.gmt), module_settings(smk.params.cfg), mapping)
    write_h5ad(rows, smk.output.rows)
    write_tsv(enrichment, smk.output.enrichment)
    write_tsv(table, smk.output.table)
    log.info("%d modules over %d rows; %d enriched for a hallmark set", len(table), rows.n_obs,
             int((table["n_enriched"] > 0).sum()))
