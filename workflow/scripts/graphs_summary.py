"""Rule graphs_summary: per dataset, the co-expression graph statistics and the prior edge-type coverage."""

import json
from pathlib import Path

import pandas as pd

from genegraph.data.checks import flat
from genegraph.io import write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    rows = []
    for path in smk.input:
        figures = json.loads(Path(path).read_text())
        stats = figures.pop("coexpr_stats")
        checks = figures.pop("checks", {})
        rows.append({**{f"coexpr_{k}": v for k, v in stats.items()}, **figures, **flat(checks)})
    table = pd.DataFrame(rows).set_index("dataset").reset_index()
    write_tsv(table, smk.output[0])
    cols = ["dataset", "coexpr_n_genes", "coexpr_density", "string_frac_with_edge", "hallmark_in_set_frac", "flags"]
    log.info("gene graphs of %d datasets:\n%s", len(table),
             table[[c for c in cols if c in table]].to_string(index=False))
