"""Antibody (ADT) names → gene symbols, through the curated table ``resources/proteins/adt_gene_symbols.tsv``.

The table has one row per (antibody, gene) pair, so one-to-many antigens are explicit (CD16 → FCGR3A and
FCGR3B); isotype controls and hashtags are ``control`` rows without a gene. Its columns and provenance are in
``resources/proteins/README.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from ...errors import DataError

#: The curated table of this checkout.
ADT_TABLE = Path(__file__).resolve().parents[5] / "resources" / "proteins" / "adt_gene_symbols.tsv"
#: Row kinds: the antigen is the gene's product, one chain of a complex, a glycan the gene makes, no gene.
KINDS = ("gene", "complex", "glycan", "control")
COLUMNS = ("antibody", "gene_symbol", "kind", "note")

_PREFIX = re.compile(r"^ADT[_-]", re.IGNORECASE)
_SUFFIX = re.compile(r"[_-]TotalSeq[_-]?[ABC]?$", re.IGNORECASE)
_PAREN = re.compile(r"^(?P<outer>[^()]+?)\s*\((?P<inner>[^()]+)\)$")
_HASHTAG = re.compile(r"^(HTO|HASHTAG)[_-]?\d", re.IGNORECASE)


def normalise_adt_name(name: str) -> str:
    """The table key of an antibody name: ``ADT_`` prefix and ``_TotalSeqB`` / ``-TotalSeqB`` (A, B, C) suffix
    removed, surrounding space stripped, inner runs of space collapsed, upper case (``'CD8a_TotalSeqB'`` →
    ``'CD8A'``)."""
    s = _SUFFIX.sub("", _PREFIX.sub("", str(name).strip())).strip()
    return re.sub(r"\s+", " ", s).upper()


def read_adt_table(path: str | Path = ADT_TABLE) -> pd.DataFrame:
    """The curated table (columns :data:`COLUMNS`; empty ``gene_symbol`` for control rows), checked."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError as err:
        raise DataError(f"ADT → gene table {path} does not exist") from err
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"ADT → gene table {path} lacks column(s) {', '.join(missing)}")
    bad_kind = sorted(set(table["kind"]) - set(KINDS))
    if bad_kind:
        raise DataError(f"ADT → gene table {path}: unknown kind(s) {', '.join(bad_kind)} (known: {', '.join(KINDS)})")
    control = table["kind"] == "control"
    if (table.loc[control, "gene_symbol"] != "").any() or (table.loc[~control, "gene_symbol"] == "").any():
        raise DataError(f"ADT → gene table {path}: control rows must have no gene and other rows one gene")
    if (table["antibody"] != table["antibody"].map(normalise_adt_name)).any():
        raise DataError(f"ADT → gene table {path}: antibody names must be normalised (normalise_adt_name)")
    if table.duplicated(["antibody", "gene_symbol"]).any():
        raise DataError(f"ADT → gene table {path}: duplicated (antibody, gene_symbol) rows")
    return table[list(COLUMNS)]


def _lookup_key(name: str, keys: set[str]) -> str | None:
    """The table key that names ``name``: the normalised name, else for ``'A (B)'`` A then B."""
    key = normalise_adt_name(name)
    if key in keys:
        return key
    match = _PAREN.match(key)
    if match:
        for part in (match["outer"], match["inner"]):
            if part.strip() in keys:
                return part.strip()
    return None


def match_adt_names(names: Sequence[str], table: pd.DataFrame) -> pd.DataFrame:
    """One row per (panel name, gene) for the panel ``names``: columns ``protein`` (the name as given), ``key``
    (the table row it matched; '' when none), ``gene_symbol`` ('' for control and unmatched) and ``kind``
    (a table kind, or ``unmatched``). Names of the form ``'A (B)'`` match A, else B; hashtag names (``HTO…``)
    are controls."""
    keys = set(table["antibody"])
    by_key = {k: g for k, g in table.groupby("antibody", sort=False)}
    rows = []
    for name in names:
        key = _lookup_key(name, keys)
        if key is not None:
            for gene, kind in by_key[key][["gene_symbol", "kind"]].itertuples(index=False):
                rows.append((name, key, gene, kind))
        elif _HASHTAG.match(normalise_adt_name(name)):
            rows.append((name, "", "", "control"))
        else:
            rows.append((name, "", "", "unmatched"))
    return pd.DataFrame(rows, columns=["protein", "key", "gene_symbol", "kind"])


def protein_genes(
    names: Sequence[str], table: pd.DataFrame, kinds: Iterable[str] = ("gene", "complex", "glycan"),
) -> dict[str, tuple[str, ...]]:
    """Panel name → the gene symbols it stands for (rows of ``kinds`` only; ``()`` for controls, unmatched
    names and other kinds). Every name of ``names`` is a key, in order."""
    kinds = set(kinds)
    matched = match_adt_names(names, table)
    keep = matched[matched["kind"].isin(kinds)]
    genes = {p: tuple(g) for p, g in keep.groupby("protein", sort=False)["gene_symbol"]}
    return {name: genes.get(name, ()) for name in names}
