"""Rule qc_summary: one row per dataset with cells and genes before and after QC."""

import pandas as pd

from genegraph.io import write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    rows = []
    for dataset, path in zip(smk.params.datasets, smk.input):
        steps = pd.read_csv(path, sep="\t")
        rows.append({
            "dataset": dataset,
            **smk.params.annotation[dataset],
            "cells_input": int(steps["cells"].iloc[0]),
            "genes_input": int(steps["genes"].iloc[0]),
            "cells_qc": int(steps["cells"].iloc[-1]),
            "genes_qc": int(steps["genes"].iloc[-1]),
        })
    table = pd.DataFrame(rows)
    write_tsv(table, smk.output[0])
    log.info("QC summary of %d datasets:\n%s", len(table), table.to_string(index=False))
