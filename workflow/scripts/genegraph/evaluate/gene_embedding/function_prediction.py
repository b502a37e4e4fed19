"""Gene-function prediction from gene representations (spec §4.5-4.6): a k-NN classifier of gene labels
(TF vs non-TF, dosage-sensitive vs -insensitive TFs, or any gene -> label table), accuracy mean ± sd over
seeds of stratified k-fold cross-validation, comparing embedding methods (MuSe-GNN, PCA, ...) with the raw
node features.

Labels (``kind`` of a task):

* ``tf_list``: TF vs non-TF. The file lists human TFs: Lambert et al. 2018's ``DatabaseExtract_v_1.01.csv``
  (rows with ``Is TF?`` = Yes), ``lambert2018_1639_TFs.tsv`` (column ``HGNC symbol``) or one symbol per
  line. Every gene of the run is labelled: 1 if listed, else 0.
* ``dosage``: ``dosage_sens_tf_labels.csv`` (Geneformer's task, Ni et al. 2019): 1 = ``dosage_sensitive``
  is Yes, 0 = ``dosage_insensitive`` is Yes; rows marked both or neither are dropped, and a symbol listed
  twice (two Ensembl ids: ZFP41, ZNF763 in the shipped file) is kept once when its labels agree. Only
  labelled genes of the run are used.
* ``table``: a csv/tsv whose first two columns are gene symbol and label (any values; multi-class works).

Features, the two **scopes** (the raw residual vectors of different datasets have different lengths -- one
entry per cell -- so they cannot be averaged across datasets):

* ``per_dataset``: for each dataset separately, its labelled genes; a method's feature is the gene's row in
  that dataset (``raw``: the gene's residual vector over the dataset's cells, i.e. its node feature).
  Every method is scored on exactly the same genes; the tables give each dataset and their mean.
* ``pooled``: a gene's embedding averaged over the datasets that contain it (one vector per gene), all
  labelled genes of the run. Embedding methods only (no fixed-length raw vector exists).

Protocol: sklearn ``KNeighborsClassifier(n_neighbors)`` (euclidean), ``StratifiedKFold(n_splits,
shuffle=True, random_state=seed)`` for each seed; a seed's score is the mean over its folds; reported as
mean and sample sd over seeds, with balanced accuracy and the majority-class rate beside accuracy (TFs are a
few percent of genes, so accuracy alone rewards predicting "non-TF"). ``balance: true`` instead
down-samples the larger classes to the smallest one, with each seed drawing its own subsample.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier

from genegraph.config import settings
from genegraph.errors import DataError
from genegraph.graphs.io import gene_features
from genegraph.graphs.io import genes as graph_genes
from genegraph.models.embeddings import embedding

log = logging.getLogger(__name__)

RAW = "raw"


# ---------------------------------------------------------------------------------------------------------
# label tables


def read_tf_list(path: str | Path) -> set[str]:
    """Human TF symbols from a Lambert 2018 table (database extract or the 1,639-TF list) or a plain list."""
    path = Path(path)
    try:
        head = path.read_text(encoding="utf-8").splitlines()[:1]
        if head and "HGNC symbol" in head[0]:
            table = pd.read_csv(path, sep="\t" if "\t" in head[0] else ",", dtype=str)
            if "Is TF?" in table:
                table = table[table["Is TF?"].str.strip().str.lower() == "yes"]
            symbols = table["HGNC symbol"]
        else:
            symbols = pd.Series(path.read_text(encoding="utf-8").split())
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot read the TF list ({err})") from err
    tfs = {s.strip() for s in symbols.dropna() if s.strip()}
    if not tfs:
        raise DataError(f"{path}: no TF symbol found")
    log.info("read %s: %d TFs", path.name, len(tfs))
    return tfs


def read_dosage_labels(path: str | Path) -> pd.Series:
    """gene_name -> 1 (dosage-sensitive) / 0 (insensitive) from ``dosage_sens_tf_labels.csv``."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot read the dosage label table ({err})") from err
    need = {"gene_name", "dosage_sensitive", "dosage_insensitive"}
    if not need <= set(table.columns):
        raise DataError(f"{path}: needs columns {sorted(need)}, has {list(table.columns)}")
    sens = table["dosage_sensitive"].fillna("").str.strip().str.lower() == "yes"
    insens = table["dosage_insensitive"].fillna("").str.strip().str.lower() == "yes"
    keep = (sens ^ insens) & table["gene_name"].notna()
    if (~keep).any():
        log.warning("%s: %d rows marked both or neither sensitive and insensitive are dropped", path.name,
                    int((~keep).sum()))
    labels = pd.Series(sens[keep].astype(int).to_numpy(), index=table.loc[keep, "gene_name"].str.strip())
    labels = _one_label_per_gene(labels, path)
    log.info("read %s: %d dosage-sensitive, %d insensitive", path.name, int(labels.sum()), int((labels == 0).sum()))
    return labels


def _one_label_per_gene(labels: pd.Series, path: Path) -> pd.Series:
    """Collapse genes listed several times (e.g. two Ensembl ids of one symbol): kept once when the labels
    agree, dropped when they conflict."""
    n_labels = labels.groupby(level=0).nunique()
    conflicting = n_labels.index[n_labels > 1]
    if len(conflicting):
        log.warning("%s: %d genes with conflicting labels are dropped, e.g. %s", path.name, len(conflicting),
                    list(conflicting[:3]))
    labels = labels[~labels.index.isin(conflicting)]
    return labels[~labels.index.duplicated()]


def read_label_table(path: str | Path) -> pd.Series:
    """gene -> label from a csv/tsv (first column gene, second label; tab-separated if the name says so)."""
    path = Path(path)
    sep = "\t" if path.name.endswith((".tsv", ".tsv.gz", ".txt")) else ","
    try:
        table = pd.read_csv(path, sep=sep, dtype=str)
    except (OSError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot read the label table ({err})") from err
    if table.shape[1] < 2:
        raise DataError(f"{path}: a label table needs a gene column and a label column")
    table = table.iloc[:, :2].dropna()
    return _one_label_per_gene(pd.Series(table.iloc[:, 1].to_numpy(), index=table.iloc[:, 0].str.strip()), path)


@dataclass(frozen=True)
class LabelTask:
    """One prediction task (an entry of ``function_prediction.tasks``): name, kind (``tf_list``,
    ``dosage`` or ``table``) and path of the label file."""

    name: str
    kind: str
    path: str

    def labels(self, universe: Sequence[str]) -> pd.Series:
        """gene -> label over the genes of ``universe`` that the task labels."""
        universe = pd.Index(pd.unique(np.asarray(universe, dtype=str)))
        if self.kind == "tf_list":
            tfs = read_tf_list(self.path)
            return pd.Series(universe.isin(list(tfs)).astype(int), index=universe)
        labels = read_dosage_labels(self.path) if self.kind == "dosage" else read_label_table(self.path)
        return labels[labels.index.isin(universe)]


@dataclass(frozen=True)
class FunctionPredictionSettings:
    """The config section ``function_prediction``: label tasks, k, folds, seeds, class balancing and scopes
    (types, defaults and meanings: the config schema)."""

    tasks: tuple[LabelTask, ...]
    n_neighbors: int
    n_splits: int
    seeds: tuple[int, ...]
    balance: bool
    scopes: tuple[str, ...]

    def validate(self) -> None:
        if len({t.name for t in self.tasks}) != len(self.tasks):
            raise DataError("function_prediction.tasks: task names repeat")


def function_settings(values: Mapping[str, Any] | None = None) -> FunctionPredictionSettings:
    """:class:`FunctionPredictionSettings` from (part of) the config section, over the schema's defaults."""
    return settings(FunctionPredictionSettings, "function_prediction", values)


# ---------------------------------------------------------------------------------------------------------
# features and cross-validation


def pooled_features(emb: ad.AnnData) -> pd.DataFrame:
    """genes x d: each gene's embedding rows averaged over the datasets containing it."""
    frame = pd.DataFrame(embedding(emb).astype(np.float64), index=emb.obs["gene"].astype(str).to_numpy())
    return frame.groupby(level=0, sort=True).mean()


def dataset_features(emb: ad.AnnData, dataset: str) -> pd.DataFrame:
    """genes x d: the embedding rows of one dataset."""
    rows = emb.obs["dataset"].astype(str).to_numpy() == dataset
    return pd.DataFrame(embedding(emb)[rows].astype(np.float64), index=emb.obs["gene"].astype(str).to_numpy()[rows])


def raw_features(graph: ad.AnnData) -> pd.DataFrame:
    """genes x cells: a graph's node features (the residuals)."""
    return pd.DataFrame(gene_features(graph).astype(np.float64), index=graph_genes(graph))


def knn_cv(x: np.ndarray, y: np.ndarray, seeds: Sequence[int], n_neighbors: int = 5, n_splits: int = 5,
           balance: bool = False) -> dict[str, Any]:
    """Cross-validated k-NN of labels ``y`` (n,) from features ``x`` (n, d). Returns n_genes, n_classes,
    min_class, majority (share of the largest class) and, per seed, ``accuracy`` and ``balanced_accuracy``
    ((n_seeds,) arrays of the mean over folds); these are NaN when a class has fewer than ``n_splits``
    members or the training folds fewer than ``n_neighbors`` genes."""
    classes, counts = np.unique(y, return_counts=True)
    min_class = int(counts.min()) if len(counts) else 0
    out: dict[str, Any] = {"n_genes": len(y), "n_classes": len(classes), "min_class": min_class,
                           "majority": float(counts.max() / len(y)) if len(y) else float("nan")}
    used = min_class * len(classes) if balance else len(y)
    if len(classes) < 2 or min_class < n_splits or used * (n_splits - 1) // n_splits < n_neighbors:
        log.warning("k-NN: %d genes, class sizes %s: too few for %d-fold CV with k = %d; NaN", len(y),
                    counts.tolist(), n_splits, n_neighbors)
        nan = np.full(len(seeds), np.nan)
        return {**out, "accuracy": nan, "balanced_accuracy": nan}
    acc, bal = [], []
    for seed in seeds:
        idx = np.arange(len(y))
        if balance:
            rng = np.random.default_rng(seed)
            idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), min_class, replace=False)
                                          for c in classes]))
        xs, ys = x[idx], y[idx]
        fa, fb = [], []
        for train, test in StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(xs, ys):
            pred = KNeighborsClassifier(n_neighbors=n_neighbors).fit(xs[train], ys[train]).predict(xs[test])
            fa.append(accuracy_score(ys[test], pred))
            fb.append(balanced_accuracy_score(ys[test], pred))
        acc.append(np.mean(fa))
        bal.append(np.mean(fb))
    return {**out, "accuracy": np.array(acc), "balanced_accuracy": np.array(bal)}


def _mean_sd(per_seed: np.ndarray) -> tuple[float, float]:
    """Mean and sample sd (0 for one seed) over seeds."""
    if np.isnan(per_seed).any():
        return float("nan"), float("nan")
    return float(per_seed.mean()), float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0


def _score(features: pd.DataFrame, labels: pd.Series, cfg: FunctionPredictionSettings) -> dict[str, Any]:
    """:func:`knn_cv` on the labelled genes of ``features`` (genes x d)."""
    genes = features.index[features.index.isin(labels.index)]
    return knn_cv(features.loc[genes].to_numpy(), labels.loc[genes].to_numpy(), cfg.seeds, cfg.n_neighbors,
                  cfg.n_splits, cfg.balance)


def _row(task: str, scope: str, dataset: str, method: str, res: dict[str, Any]) -> dict[str, Any]:
    row = {"task": task, "scope": scope, "dataset": dataset, "method": method,
           **{k: v for k, v in res.items() if k not in ("accuracy", "balanced_accuracy")}}
    for key in ("accuracy", "balanced_accuracy"):
        row[f"{key}_mean"], row[f"{key}_sd"] = _mean_sd(res[key])
    return row


def predict_functions(embeddings: Mapping[str, ad.AnnData], graphs: Mapping[str, ad.AnnData],
                      cfg: FunctionPredictionSettings | dict) -> pd.DataFrame:
    """Score every task x scope x method (the ``embeddings`` keys, plus ``raw`` in the per-dataset scope).

    ``embeddings``: method -> embeddings AnnData over the datasets of ``graphs`` (dataset id -> graph
    AnnData). Returns one row per (task, scope, dataset, method): task, scope, dataset (``all`` in the
    pooled scope), method, n_genes, n_classes, min_class, majority, accuracy_mean, accuracy_sd,
    balanced_accuracy_mean, balanced_accuracy_sd. The per-dataset scope adds a ``dataset = mean`` row
    per task and method: per seed the mean over the datasets where the task could be scored, then mean
    and sd over seeds (n_genes: their total).
    """
    cfg = cfg if isinstance(cfg, FunctionPredictionSettings) else function_settings(cfg)
    universe = np.concatenate([graph_genes(g) for g in graphs.values()])
    rows = []
    for task in cfg.tasks:
        labels = task.labels(universe)
        log.info("task %s: %d labelled genes of the run, classes %s", task.name, len(labels),
                 labels.value_counts().to_dict())

        if "per_dataset" in cfg.scopes:
            methods = {RAW: None, **embeddings}
            per_method: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
            for ds, graph in graphs.items():
                for method, emb in methods.items():
                    res = _score(raw_features(graph) if emb is None else dataset_features(emb, ds), labels, cfg)
                    per_method[method].append(res)
                    rows.append(_row(task.name, "per_dataset", ds, method, res))
            for method, results in per_method.items():
                ok = [r for r in results if not np.isnan(r["accuracy"]).any()]
                mean = {"n_genes": sum(r["n_genes"] for r in ok), "n_classes": np.nan, "min_class": np.nan,
                        "majority": np.mean([r["majority"] for r in ok]) if ok else np.nan}
                for key in ("accuracy", "balanced_accuracy"):
                    mean[key] = np.mean([r[key] for r in ok], axis=0) if ok else np.full(len(cfg.seeds), np.nan)
                rows.append(_row(task.name, "per_dataset", "mean", method, mean))
        if "pooled" in cfg.scopes:
            for method, emb in embeddings.items():
                rows.append(_row(task.name, "pooled", "all", method, _score(pooled_features(emb), labels, cfg)))
    return pd.DataFrame(rows)
