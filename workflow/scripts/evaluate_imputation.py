"""Rule evaluate_imputation: every method x seed scored on its dataset's held-out entries (RMSE, Pearson, cosine,
per-gene Pearson) and, where the dataset has cell labels, the clustering check; mean and sd over seeds."""

import anndata as ad
import pandas as pd

from genegraph.evaluate.imputation import (
    METRICS,
    clustering_check,
    evaluation_settings,
    imputation_scores,
)
from genegraph.evaluate.seeds import over_seeds
from genegraph.io import write_tsv
from genegraph.logs import rule_context
from genegraph.models.spaformer import read_heldout

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    ev = evaluation_settings(smk.params.cfg)
    masks = dict(zip(smk.params.datasets, smk.input.masks))
    rows = []
    for (dataset, method, seed), path in zip(smk.params.runs, smk.input.imputed):
        mask = ad.read_h5ad(masks[dataset])
        pred = ad.read_h5ad(path).X
        row = {"dataset": dataset, "method": method, "seed": int(seed), **imputation_scores(pred, read_heldout(mask))}
        labels = mask.obs.get(ev.label_key)
        if labels is not None and labels.nunique() > 1:  # cells without a label are left out of the check
            known = labels.notna().to_numpy()
            row.update(clustering_check(pred[known], labels[known].astype(str).to_numpy(), ev.clustering))
        rows.append(row)
        log.info("%s %s seed %s: %s", dataset, method, seed, {k: round(row[k], 4) for k in METRICS})
    scores = pd.DataFrame(rows)
    metrics = [c for c in scores.columns if c not in ("dataset", "method", "seed", "resolution", "n_clusters")]
    summary = over_seeds(scores, ("dataset", "method"), metrics)
    write_tsv(scores, smk.output.scores)
    write_tsv(summary, smk.output.summary)
    log.info("imputation summary:\n%s", summary.to_string(index=False))
