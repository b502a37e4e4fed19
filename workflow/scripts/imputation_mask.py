"""Rule imputation_mask: a spatial dataset's selected genes with a seeded share of all entries held out."""

import anndata as ad

from genegraph.io import write_h5ad
from genegraph.logs import rule_context
from genegraph.models.spaformer import check_counts, hold_out, imputation_settings, mask_adata
from genegraph.models.spaformer.data import select_genes

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], smk.wildcards.dataset, threads=smk.threads) as log:
    s = imputation_settings(smk.params.cfg)
    data = select_genes(ad.read_h5ad(smk.input[0]), s.genes)
    masked, heldout = hold_out(check_counts(data), s.mask.fraction, s.mask.seed, s.normalise.scale)
    out = mask_adata(data, masked, heldout, s.mask.fraction, s.mask.seed, s.normalise.scale)
    log.info("%d cells x %d genes; %d entries held out (%.1f %% of all entries, seed %d)", out.n_obs, out.n_vars,
             out.uns["mask"]["n_heldout"], 100 * out.uns["mask"]["share_of_entries"], s.mask.seed)
    write_h5ad(out, smk.output[0])
