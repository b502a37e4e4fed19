"""Inputs and splits of the protein-prediction task (RNA -> surface proteins, CITE-seq), shared by every method.

A QC'd CITE-seq dataset is an AnnData with integer RNA counts in ``X`` (cells x genes, CSR) and the protein
(ADT) counts in ``obsm['protein']`` (a DataFrame, cells x proteins). :func:`build_task` turns it into a
:class:`ProteinTask`: transformed RNA and protein matrices, obs-aligned split labels and the names needed to
write predictions. :func:`build_cross_task` does the same for "train on dataset X, test on dataset Y" over the
genes and proteins the two share.

Transforms (config ``transforms``):
- RNA ``log_size_factor`` (default): ln(1 + counts / s_i). s_i = ``obs['size_factors']`` when the data provide
  it (the NeurIPS 2021 files carry scran size factors, and with them this reproduces their ``.X`` exactly),
  else the library size L_i divided by the mean library size over the dataset's cells. ``log1p_cp10k``:
  ln(1 + 10^4 counts / L_i). ``none``: counts as floats.
- Protein ``clr`` (default): the per-cell centred log-ratio of Seurat's ``NormalizeData(method='CLR',
  margin=2)``: y_ip = ln(1 + x_ip / g_i), g_i = exp(mean_p ln(1 + x_ip)) over the cell's proteins. Per cell
  (not per protein) because it removes each cell's antibody-capture depth the way the library size does for
  RNA, and because it is what the NeurIPS 2021 ADT ``.X`` is: on the BMMC starter it matches their values to
  within 0.1 (Pearson 0.99993), whereas the per-protein CLR does not (0.75). ``log1p_cp10k`` and ``none`` as
  for RNA.

Splits (config ``split``), as obs-aligned labels ``'train'`` / ``'val'`` / ``'test'``:
- test: a whole batch when ``obs['batch']`` has >= 2 values (``test_batch``, default the last batch in sorted
  order, e.g. s1d2 of the NeurIPS starter: the competition setting), else a seeded ``test_fraction`` of cells;
- val: a seeded ``val_fraction`` of the remaining cells (int(n * fraction), as the reference; at least one).
  Methods with early stopping fit on 'train' and select on 'val'; the baselines fit on both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..config import SCHEMA_DIR, from_schema, load_schema, subschema
from ..errors import DataError

#: The schema fragment with every protein-task setting (split, transforms, baselines, scmognn, ...).
SCHEMA = SCHEMA_DIR / "config" / "protein.schema.yaml"
SPLIT_LABELS = ("train", "val", "test")
RNA_TRANSFORMS = ("log_size_factor", "log1p_cp10k", "none")
PROTEIN_TRANSFORMS = ("clr", "log1p_cp10k", "none")

T = TypeVar("T")


@dataclass(frozen=True)
class SplitSettings:
    """How cells are split into train / val / test (config ``split``)."""

    test_batch: str
    test_fraction: float
    val_fraction: float


@dataclass(frozen=True)
class TransformSettings:
    """Input and target transforms (config ``transforms``)."""

    rna: str
    protein: str


def load_settings(cls: type[T], group: str, values: Mapping[str, Any] | None = None,
                  schema: str | Path = SCHEMA) -> T:
    """Settings ``cls`` of the schema group ``group`` (``split``, ``transforms``, ``scmognn``, ...) with
    ``values`` over the schema defaults."""
    return from_schema(cls, subschema(load_schema(schema), group), values, where=group)


@dataclass
class ProteinTask:
    """One protein-prediction problem: every cell of the graph, with its split label.

    ``x`` (n_cells, n_genes) CSR float32: transformed RNA. ``y`` (n_cells, n_proteins) float32: transformed
    proteins (the test rows are the truth for scoring; methods must read only the train and val rows, see
    :meth:`masked_y`). ``split`` (n_cells,) str. ``cells``, ``genes``, ``proteins``: names. ``batch``
    (n_cells,) str: batch labels ('' when the dataset has none).
    """

    x: sp.csr_matrix
    y: np.ndarray
    split: np.ndarray
    cells: np.ndarray
    genes: np.ndarray
    proteins: np.ndarray
    batch: np.ndarray

    def index(self, label: str) -> np.ndarray:
        """Positions of the cells labelled ``label`` ('train', 'val', 'test'), ascending."""
        return np.flatnonzero(self.split == label)

    def masked_y(self) -> np.ndarray:
        """``y`` with the test rows set to NaN: what a method may see."""
        out = self.y.copy()
        out[self.split == "test"] = np.nan
        return out

    def subset(self, cells: np.ndarray) -> ProteinTask:
        """The task restricted to the cell positions ``cells`` (in that order)."""
        return dataclasses.replace(
            self, x=self.x[cells], y=self.y[cells], split=self.split[cells], cells=self.cells[cells],
            batch=self.batch[cells],
        )


def predictions_anndata(task: ProteinTask, predictions: np.ndarray, method: str, seed: int,
                        extra: Mapping[str, Any] | None = None):
    """Predictions as an AnnData (test cells x proteins): ``X`` (float32) the predicted transformed proteins,
    ``layers['truth']`` the measured ones, ``obs['batch']``, ``uns['protein_prediction']`` = {method, seed,
    n_train, n_val, plus ``extra``}."""
    import anndata as ad

    test = task.index("test")
    pred = np.asarray(predictions, dtype=np.float32)
    if pred.shape != (len(test), len(task.proteins)):
        raise DataError(f"predictions have shape {pred.shape}, expected {(len(test), len(task.proteins))}")
    meta = {"method": method, "seed": int(seed), "n_train": int((task.split == "train").sum()),
            "n_val": int((task.split == "val").sum()), **dict(extra or {})}
    return ad.AnnData(
        X=pred, obs=pd.DataFrame({"batch": task.batch[test]}, index=pd.Index(task.cells[test], dtype=str)),
        var=pd.DataFrame(index=pd.Index(task.proteins, dtype=str)), layers={"truth": task.y[test]},
        uns={"protein_prediction": meta},
    )


# --- validation of the data contract -----------------------------------------------------------------------


def protein_counts(adata) -> pd.DataFrame:
    """``obsm['protein']`` as a float DataFrame (cells x proteins), checked: present, numeric, no NaN, not
    negative, at least one protein. Raises :class:`DataError` naming the problem."""
    if "protein" not in adata.obsm:
        raise DataError("a CITE-seq dataset needs protein counts in obsm['protein'], but there are none")
    prot = adata.obsm["protein"]
    if isinstance(prot, pd.DataFrame):
        names = prot.columns.astype(str)
        try:
            values = prot.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(f"obsm['protein'] has non-numeric columns: {err}") from err
    else:
        values = prot.toarray() if sp.issparse(prot) else np.asarray(prot, dtype=np.float64)
        names = pd.Index([f"protein_{i}" for i in range(values.shape[1])])
    if values.ndim != 2 or values.shape[1] == 0:
        raise DataError("obsm['protein'] has no protein columns")
    nan = np.isnan(values)
    if nan.any():
        bad = names[nan.any(axis=0)].tolist()
        raise DataError(f"obsm['protein'] contains {int(nan.sum())} NaN value(s), in protein(s) "
                        f"{', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''}")
    if (values < 0).any():
        bad = names[(values < 0).any(axis=0)].tolist()
        raise DataError(f"obsm['protein'] has negative counts, in protein(s) {', '.join(bad[:10])}")
    if names.duplicated().any():
        raise DataError(f"obsm['protein'] has duplicated protein names: {names[names.duplicated()].tolist()[:10]}")
    return pd.DataFrame(values, index=adata.obs_names, columns=names)


def rna_counts(adata) -> sp.csr_matrix:
    """The raw RNA counts of ``adata`` (``X``) as CSR float32; DataError on NaN or negative values."""
    x = adata.X
    if x is None:
        raise DataError("the dataset has no RNA counts in X")
    x = sp.csr_matrix(x, dtype=np.float32)
    if x.nnz and (np.isnan(x.data).any() or (x.data < 0).any()):
        raise DataError("RNA counts in X contain NaN or negative values")
    return x


# --- transforms ------------------------------------------------------------------------------------------------


def size_factors(library_size: np.ndarray, given: np.ndarray | None = None) -> np.ndarray:
    """Per-cell size factors (n_cells,): ``given`` (``obs['size_factors']``) when provided, else
    library size / mean library size."""
    if given is not None:
        s = np.asarray(given, dtype=np.float64)
        if s.shape != library_size.shape or not np.all(np.isfinite(s)) or (s <= 0).any():
            raise DataError("obs['size_factors'] must be finite and positive for every cell")
        return s
    _check_library(library_size)
    return library_size / library_size.mean()


def _check_library(library_size: np.ndarray) -> None:
    if (library_size <= 0).any():
        raise DataError(f"{int((library_size <= 0).sum())} cell(s) have no RNA counts (library size 0)")


def transform_rna(counts: sp.csr_matrix, method: str, given_size_factors: np.ndarray | None = None,
                  library_size: np.ndarray | None = None) -> sp.csr_matrix:
    """Transformed RNA (n_cells, n_genes) CSR float32; see the module docstring. ``library_size`` (n_cells,)
    replaces the row sums of ``counts`` (used when genes were subset after counting)."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    if method == "none":
        return counts.astype(np.float32)
    lib = np.asarray(counts.sum(axis=1)).ravel() if library_size is None else np.asarray(library_size, float)
    if method == "log_size_factor":
        scale = 1.0 / size_factors(lib, given_size_factors)
    elif method == "log1p_cp10k":
        _check_library(lib)
        scale = 1e4 / lib
    else:
        raise DataError(f"unknown RNA transform {method!r} (known: {', '.join(RNA_TRANSFORMS)})")
    out = sp.csr_matrix(sp.diags(scale) @ counts)
    out.data = np.log1p(out.data)
    return out.astype(np.float32)


def transform_protein(counts: np.ndarray, method: str) -> np.ndarray:
    """Transformed protein counts (n_cells, n_proteins) float32; see the module docstring."""
    x = np.asarray(counts, dtype=np.float64)
    if method == "none":
        return x.astype(np.float32)
    if method == "clr":
        geo = np.exp(np.log1p(x).mean(axis=1, keepdims=True))
        return np.log1p(x / geo).astype(np.float32)
    if method == "log1p_cp10k":
        lib = x.sum(axis=1, keepdims=True)
        if (lib <= 0).any():
            raise DataError(f"{int((lib <= 0).sum())} cell(s) have no protein counts")
        return np.log1p(1e4 * x / lib).astype(np.float32)
    raise DataError(f"unknown protein transform {method!r} (known: {', '.join(PROTEIN_TRANSFORMS)})")


# --- splits ------------------------------------------------------------------------------------------------------


def _batches(obs: pd.DataFrame) -> np.ndarray:
    if "batch" not in obs:
        return np.full(len(obs), "", dtype=object)
    batch = obs["batch"]
    if batch.isna().any():
        raise DataError(f"obs['batch'] has {int(batch.isna().sum())} missing value(s)")
    return batch.astype(str).to_numpy(dtype=object)


def protein_split(obs: pd.DataFrame, seed: int, settings: SplitSettings) -> np.ndarray:
    """Split labels (n_cells,) of 'train' / 'val' / 'test' for the cells of ``obs`` (see module docstring)."""
    n = len(obs)
    rng = np.random.default_rng(seed)
    batch = _batches(obs)
    names = sorted(set(batch.tolist()))
    labels = np.full(n, "train", dtype=object)
    if len(names) >= 2:
        test_batch = settings.test_batch or names[-1]
        if test_batch not in names:
            raise DataError(f"split.test_batch {test_batch!r} is not a batch of this dataset "
                            f"(batches: {', '.join(names)})")
        labels[batch == test_batch] = "test"
    else:
        n_test = round(settings.test_fraction * n)
        if not 0 < n_test < n:
            raise DataError(f"cannot hold out {settings.test_fraction:.0%} of {n} cells as a test set")
        labels[rng.permutation(n)[:n_test]] = "test"
    fit = np.flatnonzero(labels == "train")
    n_val = max(1, int(len(fit) * settings.val_fraction))
    if len(fit) - n_val < 1:
        raise DataError(f"too few training cells ({len(fit)}) to hold out a validation set")
    labels[fit[rng.permutation(len(fit))[:n_val]]] = "val"
    return labels.astype(str)


# --- tasks -------------------------------------------------------------------------------------------------------


def _transformed(adata, transforms: TransformSettings, genes: pd.Index | None = None,
                 proteins: pd.Index | None = None) -> tuple[sp.csr_matrix, np.ndarray, pd.Index, pd.Index]:
    """(x, y, genes, proteins) of one dataset, optionally restricted to ``genes`` / ``proteins``; size factors
    and library sizes are taken over all of the dataset's genes before the restriction."""
    prot = protein_counts(adata)
    counts = rna_counts(adata)
    if counts.shape[0] == 0:
        raise DataError("the dataset has no cells")
    given = adata.obs["size_factors"].to_numpy() if "size_factors" in adata.obs else None
    lib = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    var = pd.Index(adata.var_names.astype(str))
    if genes is not None:
        counts = counts[:, var.get_indexer(genes)]
        var = pd.Index(genes)
    x = transform_rna(counts, transforms.rna, given, library_size=lib)
    y = transform_protein(prot.to_numpy(), transforms.protein)
    cols = prot.columns
    if proteins is not None:
        y = y[:, cols.get_indexer(proteins)]
        cols = pd.Index(proteins)
    return x, y, var, cols


def build_task(adata, seed: int, split: SplitSettings, transforms: TransformSettings) -> ProteinTask:
    """The :class:`ProteinTask` of one CITE-seq dataset (the data contract of the module docstring)."""
    x, y, genes, proteins = _transformed(adata, transforms)
    labels = protein_split(adata.obs, seed, split)
    return ProteinTask(
        x=x, y=y, split=labels, cells=adata.obs_names.astype(str).to_numpy(), genes=genes.to_numpy(),
        proteins=proteins.to_numpy(), batch=_batches(adata.obs).astype(str),
    )


def build_cross_task(train_adata, test_adata, seed: int, split: SplitSettings, transforms: TransformSettings,
                     names: tuple[str, str] = ("train", "test")) -> ProteinTask:
    """Train on every cell of ``train_adata`` (a seeded ``val_fraction`` as validation), test on every cell of
    ``test_adata``, over their shared genes and shared proteins (in ``train_adata``'s order). Cell names are
    prefixed ``'<name>:'`` with ``names``; batches are '<name>:<batch>' so that the two datasets never share
    a batch. Raises :class:`DataError` when fewer than 2 proteins (or no genes) are shared."""
    prot_a = protein_counts(train_adata).columns
    prot_b = protein_counts(test_adata).columns
    shared_prot = prot_a[prot_a.isin(prot_b)]
    if len(shared_prot) < 2:
        raise DataError(f"datasets '{names[0]}' and '{names[1]}' share {len(shared_prot)} protein(s) "
                        f"({', '.join(shared_prot[:5])}); a cross-dataset task needs at least 2")
    genes_a = pd.Index(train_adata.var_names.astype(str))
    genes_b = pd.Index(test_adata.var_names.astype(str))
    for label, idx in ((names[0], genes_a), (names[1], genes_b)):
        if idx.duplicated().any():
            raise DataError(f"dataset '{label}' has duplicated gene names")
    shared_genes = genes_a[genes_a.isin(genes_b)]
    if len(shared_genes) == 0:
        raise DataError(f"datasets '{names[0]}' and '{names[1]}' share no gene names")
    xa, ya, genes, proteins = _transformed(train_adata, transforms, shared_genes, shared_prot)
    xb, yb, _, _ = _transformed(test_adata, transforms, shared_genes, shared_prot)
    rng = np.random.default_rng(seed)
    labels_a = np.full(xa.shape[0], "train", dtype=object)
    n_val = max(1, int(xa.shape[0] * split.val_fraction))
    if xa.shape[0] - n_val < 1:
        raise DataError(f"too few cells in '{names[0]}' ({xa.shape[0]}) to hold out a validation set")
    labels_a[rng.permutation(xa.shape[0])[:n_val]] = "val"
    batch_a = np.array([f"{names[0]}:{b}" for b in _batches(train_adata.obs)], dtype=object)
    batch_b = np.array([f"{names[1]}:{b}" for b in _batches(test_adata.obs)], dtype=object)
    cells = [f"{names[0]}:{c}" for c in train_adata.obs_names] + [f"{names[1]}:{c}" for c in test_adata.obs_names]
    return ProteinTask(
        x=sp.vstack([xa, xb], format="csr"), y=np.vstack([ya, yb]),
        split=np.concatenate([labels_a, np.full(xb.shape[0], "test", dtype=object)]).astype(str),
        cells=np.asarray(cells), genes=genes.to_numpy(), proteins=proteins.to_numpy(),
        batch=np.concatenate([batch_a, batch_b]).astype(str),
    )


def pipeline_task(adatas, names, seed: int, cfg: Mapping[str, Any] | None = None) -> ProteinTask:
    """The task of the pipeline's ``protein`` config ``cfg`` for one seed: one QC'd CITE-seq dataset (a
    within-dataset split) or two (train on the first, test on the second; ``names`` prefix their cells)."""
    cfg = cfg or {}
    split = load_settings(SplitSettings, "split", cfg.get("split"))
    transforms = load_settings(TransformSettings, "transforms", cfg.get("transforms"))
    if len(adatas) == 1:
        return build_task(adatas[0], seed, split, transforms)
    if len(adatas) != 2:
        raise DataError(f"a protein task has one dataset or two (train, test), got {len(adatas)}")
    return build_cross_task(adatas[0], adatas[1], seed, split, transforms, names=tuple(names))


def with_split(task: ProteinTask, table: pd.DataFrame, seed: int) -> ProteinTask:
    """``task`` with the split labels of column ``seed<k>`` of a split table (index: cell names, in the task's
    order), so that every method of a seed reads one recorded split."""
    column = f"seed{seed}"
    if column not in table:
        raise DataError(f"the split table has no column {column} (has: {', '.join(table.columns)})")
    if not np.array_equal(table.index.astype(str).to_numpy(), task.cells.astype(str)):
        raise DataError("the split table's cells differ from the task's: rerun protein_split")
    labels = table[column].astype(str).to_numpy()
    if not set(labels) <= set(SPLIT_LABELS):
        raise DataError(f"split labels must be {', '.join(SPLIT_LABELS)}, got {sorted(set(labels))}")
    return dataclasses.replace(task, split=labels)
