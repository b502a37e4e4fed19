"""Rule evaluate_protein: scores of every protein task x method x seed on the test cells (RMSE, MAE, Pearson per
cell and per protein of the transformed proteins), their mean and sd over seeds, the per-protein errors, and
the tables of scMoGNN's matching and joint-embedding variants."""

import anndata as ad
import pandas as pd

from genegraph.evaluate.protein import per_protein_errors, prediction_scores
from genegraph.evaluate.seeds import over_seeds
from genegraph.io import write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    rows, proteins = [], []
    for (task, method, seed), path in zip(smk.params.runs, smk.input.predictions, strict=True):
        pred = ad.read_h5ad(path)
        meta = pred.uns["protein_prediction"]
        scores = prediction_scores(pred.layers["truth"], pred.X)
        rows.append({"dataset": task, "method": method, "seed": int(seed), **scores, "epochs": meta.get("epochs", 0),
                     "n_parameters": meta.get("n_parameters", 0), "seconds": meta.get("seconds", float("nan")),
                     "n_test": pred.n_obs, "n_proteins": pred.n_vars})
        errors = per_protein_errors(pred.layers["truth"], pred.X, pred.var_names)
        proteins.append(errors.assign(dataset=task, method=method, seed=int(seed)))
    scores = pd.DataFrame(rows)
    table = over_seeds(scores.drop(columns=["n_test", "n_proteins"]), ("dataset", "method"))
    per_protein = pd.concat(proteins, ignore_index=True)
    per_protein = per_protein.groupby(["dataset", "method", "protein"], sort=False)[["rmse", "mae", "pearson",
                                                                                    "mean_true"]].mean()
    write_tsv(scores, smk.output.scores)
    write_tsv(table, smk.output.summary)
    write_tsv(per_protein.reset_index(), smk.output.per_protein)
    for variant in ("matching", "joint_embedding"):
        paths = smk.input.get(variant) or []
        parts = [pd.read_csv(p, sep="\t") for p in ([paths] if isinstance(paths, str) else paths)]
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["task", "seed"])
        write_tsv(out, smk.output[variant])
    log.info("protein prediction, mean over seeds:\n%s",
             table[["dataset", "method", "n_seeds", "rmse_mean", "rmse_sd", "pearson_protein_mean"]].to_string(
                 index=False))
