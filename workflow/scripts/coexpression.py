"""Rule coexpression: CS-CORE on the raw counts of a dataset's selected genes; the gene graph by the edge rule."""

import anndata as ad

from genegraph.config import settings
from genegraph.graphs.coexpression import CoexpressionSettings, coexpression_graph
from genegraph.io import write_h5ad
from genegraph.logs import rule_context
from genegraph.stats.cscore import cscore
from genegraph.stats.sctransform.residuals import selected_genes

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
with rule_context(smk.log[0], smk.wildcards.dataset, threads=smk.threads) as log:
    rule = settings(CoexpressionSettings, "coexpression", p.cfg)
    genes = selected_genes(ad.read_h5ad(smk.input[0]))
    log.info("read %s: %d cells x %d selected genes", smk.input[0], genes.n_obs, genes.n_vars)
    result = cscore(genes.X, genes.obs[p.depth_key].to_numpy(), genes=list(genes.var_names), device=rule.device,
                    dtype=rule.dtype, num_threads=smk.threads)
    graph = coexpression_graph(genes, result, rule, max_invalid_variance_frac=p.max_invalid_variance_frac,
                               max_clipped_frac=p.max_clipped_frac)
    write_h5ad(graph, smk.output[0])
