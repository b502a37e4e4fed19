"""The canonical dataset file: one AnnData per dataset, the input of every later stage.

Layout of ``results/{dataset}/dataset.h5ad``:

* ``X``: integer counts, CSR, cells x genes (int32, int64 if needed);
* ``var``: index = gene symbol, columns ``symbol``, ``ensembl`` (``;``-joined when features were merged),
  ``n_features``;
* ``obs``: the source's cell metadata (plus a joined metadata table), ``batch`` / ``celltype`` copies of
  the sheet's ``batch_key`` / ``celltype_key`` columns when given;
* ``obsm['spatial']`` (spots x 2, float) for spatial data; ``obsm['protein']`` (cells x proteins, a data
  frame of integer counts) for CITE-seq data when the source carries it;
* ``uns['dataset']``: the sheet row's values and provenance (source, sha256, origin), ``uns['gene_mapping']``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from genegraph.data.cell_filter import select_cells
from genegraph.data.checks import record
from genegraph.data.counts import to_integer_csr, validate_counts
from genegraph.data.genes import normalise_genes
from genegraph.data.readers import read_r_cell_table
from genegraph.errors import DataError

log = logging.getLogger(__name__)

MODALITIES = ("scrna", "spatial", "cite", "atac_gene_activity")


def read_metadata(path: Path) -> pd.DataFrame:
    """A per-cell table whose first column (or row names) is the cell id: csv or tsv, optionally gzipped, or an R
    data file (.rda/.RData/.rds: a data frame, or named vectors and factors such as a cell-type annotation)."""
    if path.suffix.lower() in (".rda", ".rdata", ".rds"):
        table = read_r_cell_table(path)
    else:
        sep = "\t" if ".tsv" in path.name or ".txt" in path.name else ","
        table = pd.read_csv(path, sep=sep, index_col=0, dtype=str, keep_default_na=False)
    table.index = table.index.astype(str)
    if table.index.duplicated().any():
        raise DataError(f"metadata {path.name} lists cell '{table.index[table.index.duplicated()][0]}' twice")
    return table


def join_metadata(adata: ad.AnnData, table: pd.DataFrame, name: str) -> None:
    """Add ``table``'s columns to ``adata.obs`` by cell id; every cell must have a row."""
    missing = ~adata.obs_names.isin(table.index)
    if missing.all():
        raise DataError(f"no cell id of the counts appears in metadata {name} (e.g. '{adata.obs_names[0]}')")
    if missing.any():
        raise DataError(f"{int(missing.sum())} of {adata.n_obs} cells have no row in metadata {name}")
    for col in table.columns:
        if col in adata.obs:
            raise DataError(f"metadata {name} column '{col}' clashes with an existing cell annotation")
        adata.obs[col] = table.loc[adata.obs_names, col].to_numpy()


def _clean_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """Obs columns that h5ad can store: numbers stay numbers, everything else becomes categorical text (a
    missing value stays missing)."""
    out = pd.DataFrame(index=obs.index.astype(str))
    for col in obs.columns:
        values = obs[col]
        if values.dtype.kind in "biuf":
            out[str(col)] = values.to_numpy()
        else:
            as_num = pd.to_numeric(values, errors="coerce")
            if as_num.notna().all() and values.dtype == object:
                out[str(col)] = as_num.to_numpy()
            else:
                text = values.astype(object).where(values.notna(), None)
                out[str(col)] = pd.Categorical([None if v is None else str(v) for v in text])
    return out


def build_canonical(
    raw: ad.AnnData,
    *,
    dataset: str,
    modality: str,
    gene_id: str,
    gene_table: pd.DataFrame,
    gene_prefix: str | None = None,
    metadata: pd.DataFrame | None = None,
    metadata_name: str = "metadata",
    subset: str | None = None,
    batch_key: str | None = None,
    celltype_key: str | None = None,
    provenance: dict[str, Any] | None = None,
    min_gene_table_frac: float = 0.0,
) -> ad.AnnData:
    """Turn a reader's output into the canonical dataset AnnData (see module docstring).

    Raises :class:`DataError` for non-integer, negative or NaN counts, an empty matrix, spatial data
    without coordinates or with coordinates that do not spread in 2-D, a ``cite`` dataset without proteins,
    unknown batch/celltype columns and a subset that selects no cell. Records the share of genes found in
    the gene table as the check ``min_gene_table_frac`` (flagged below that limit).
    """
    if modality not in MODALITIES:
        raise DataError(f"unknown modality '{modality}' (one of {', '.join(MODALITIES)})")
    adata = raw
    if adata.obs_names.has_duplicates:
        dup = adata.obs_names[adata.obs_names.duplicated()][0]
        raise DataError(f"cell id '{dup}' occurs more than once")
    if metadata is not None:
        join_metadata(adata, metadata, metadata_name)
    if subset:
        keep = select_cells(adata.obs, subset)
        if not keep.any():
            raise DataError(f"subset '{subset}' selects no cell")
        adata = adata[keep].copy()
        log.info("subset '%s' kept %d cells", subset, adata.n_obs)
    adata.X = to_integer_csr(adata.X, what="count matrix")
    if modality == "cite" and "protein" not in adata.obsm:
        raise DataError("a cite dataset needs protein (ADT) counts, and the source has none: set protein_key "
                        "(h5ad obsm key or R object) or give a source with antibody-capture features")
    if "protein" in adata.obsm:
        adata.obsm["protein"] = integer_frame(adata.obsm["protein"], what="protein counts")
    adata = normalise_genes(adata, gene_id=gene_id, table=gene_table, prefix=gene_prefix)
    if modality == "spatial":
        coords = adata.obsm.get("spatial")
        if coords is None:
            raise DataError("spatial dataset without coordinates (set spatial_key, or give a source with positions)")
        coords = np.asarray(coords, dtype=float)
        if coords.ndim != 2 or coords.shape[1] != 2 or not np.isfinite(coords).all():
            raise DataError(f"spatial coordinates must be finite, spots x 2 (got shape {coords.shape})")
        flat = [axis for axis, values in zip("xy", coords.T) if np.ptp(values) == 0]
        if adata.n_obs > 1 and flat:
            raise DataError(f"all {adata.n_obs} spots share one {' and '.join(flat)} coordinate "
                            f"({coords[0, 0]:g}, {coords[0, 1]:g}): the spatial statistics need spots spread in 2-D "
                            "(check spatial_key)")
    keys = {"batch": batch_key, "celltype": celltype_key}
    for std, key in keys.items():
        if key:
            if key not in adata.obs:
                raise DataError(f"{std}_key '{key}' is not a cell annotation "
                                f"(available: {', '.join(map(str, adata.obs.columns)) or 'none'})")
            values = adata.obs[key]
            adata.obs[std] = values.astype(object).where(values.notna(), None).to_numpy()
    adata.obs = _clean_obs(adata.obs)
    adata.uns["dataset"] = {"id": dataset, "modality": modality, **(provenance or {})}
    mapping = adata.uns["gene_mapping"]
    record(adata.uns, "min_gene_table_frac", mapping["n_mapped"] / max(mapping["n_features"], 1),
           min_gene_table_frac, "min", "share of the source's genes found in the species' gene table")
    log.info("dataset %s: %d cells x %d genes, %d non-zero counts", dataset, adata.n_obs, adata.n_vars, adata.X.nnz)
    return adata


def integer_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """``frame`` checked as counts and stored as int64."""
    values = frame.to_numpy(dtype=float)
    validate_counts(values, what=what)
    return pd.DataFrame(np.round(values).astype(np.int64), index=frame.index, columns=frame.columns)
