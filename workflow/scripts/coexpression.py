"""Rule coexpression: CS-CORE on the raw counts of a dataset's selected genes; the gene graph by the edge rule."""

import anndata as ad

from genegraph.cscore import cscore
from genegraph.graphs import EdgeRule, coexpression_graph
from genegraph.io import write_h5ad
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
with rule_context(smk.log[0], smk.wildcards.dataset) as log:
    rule = EdgeRule(p_threshold=p.p_threshold, fdr=p.fdr, min_abs_rho=p.min_abs_rho, top_k=p.top_k,
                    signed=p.signed, keep_diag=p.keep_diag)
    features = ad.read_h5ad(smk.input[0])
    log.info("read %s: %d genes x %d cells", smk.input[0], features.n_obs, features.n_vars)
    result = cscore(features.layers["counts"].T.tocsr(), features.var["depth"].to_numpy(),
                    genes=list(features.obs_names), device=p.device, dtype=p.dtype, num_threads=smk.threads)
    graph = coexpression_graph(features, result, rule, max_invalid_variance_frac=p.max_invalid_variance_frac,
                               max_clipped_frac=p.max_clipped_frac)
    write_h5ad(graph, smk.output[0])
