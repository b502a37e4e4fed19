"""Rule spatial_genes: SPARK-X on the QC'd counts of a spatial dataset; genes ranked, most variable first.

A short job, so its fixed costs count: only the counts, coordinates and gene names are read from the .h5ad (no
AnnData, no anndata import), the table is computed and written without pandas (its import alone is about 0.3 s),
and the process ends without the interpreter's final garbage collections over every object it loaded.
bench/sparkx.py times this script as a whole process.
"""

import gc

from genegraph.logs import rule_context
from genegraph.stats.sparkx import read_h5ad_counts, sparkx_columns, write_ranked

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], smk.wildcards.dataset, threads=smk.threads) as log:
    counts, coords, genes = read_h5ad_counts(smk.input[0])
    names, cols, _ = sparkx_columns(counts, coords, genes)
    write_ranked(names, cols, smk.output[0])
    log.info("SPARK-X: %d spots x %d genes tested, %d with BY-adjusted p < 0.05", counts.shape[0], len(names),
             int((cols["adjusted_pval"] < 0.05).sum()))
gc.freeze()  # all done: the memory goes back to the OS at exit, so skip collecting it object by object
