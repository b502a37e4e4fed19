"""Check and normalise resources/proteins/adt_gene_symbols.tsv (the hand-curated ADT name → gene table).

What it does, in order:
1. reads the table, normalises antibody names (``normalise_adt_name``) and sorts rows (kind, then antibody in
   natural order, keeping the written gene order within an antibody);
2. checks every gene symbol against org.Hs.eg.db 3.16.0 (``orghs_genes.tsv.gz``); a symbol that is only an
   alias there is replaced by its current symbol when the alias is unambiguous, and the run fails otherwise;
3. prints, for each antibody name that org.Hs.eg.db also knows as an alias, the genes the alias table would
   give and whether the curated row agrees (the review list; e.g. CD25 → IL2RA, ISG20);
4. with ``--panel``, prints the panel names the table does not match;
5. writes the table (``--write``) and prints its sha256 (record it in README.md).

    python resources/proteins/build_adt_table.py --orghs ../shared/data/gene_annotation_human \
        --panel ../shared/data/neurips2021_multimodal_starter/bmmc_cite_starter.adt.h5ad \
        --panel resources/demo/pbmc_5k_protein_v3.h5ad:protein_expression [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import anndata as ad
import pandas as pd

from genegraph.models.scmoformer.proteins import (
    KINDS,
    match_adt_names,
    normalise_adt_name,
    read_adt_table,
)

HERE = Path(__file__).resolve().parent
TABLE = HERE / "adt_gene_symbols.tsv"


def natural_key(name: str) -> tuple[object, ...]:
    """'CD2' < 'CD11': text and numbers alternate, numbers compared as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def panel_names(spec: str) -> list[str]:
    """Column names of ``obsm[key]`` for ``file.h5ad:key``, else the file's ``var_names``."""
    path, _, key = spec.partition(":")
    adata = ad.read_h5ad(path, backed="r")
    return list(adata.obsm[key].columns) if key else list(adata.var_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orghs", type=Path, required=True, help="folder with orghs_genes/orghs_alias .tsv.gz")
    parser.add_argument("--panel", action="append", default=[], help="h5ad[:obsm_key] whose ADT names to check")
    parser.add_argument("--write", action="store_true", help="write the normalised, sorted table back")
    args = parser.parse_args()

    table = pd.read_csv(TABLE, sep="\t", dtype=str, keep_default_na=False)
    table["antibody"] = table["antibody"].map(normalise_adt_name)
    rank = {k: i for i, k in enumerate(KINDS)}
    order = sorted(range(len(table)), key=lambda i: (rank[table["kind"][i]], natural_key(table["antibody"][i]), i))
    table = table.iloc[order].reset_index(drop=True)

    genes = pd.read_csv(args.orghs / "orghs_genes.tsv.gz", sep="\t", dtype=str)
    alias = pd.read_csv(args.orghs / "orghs_alias.tsv.gz", sep="\t", dtype=str)
    symbols = set(genes["symbol"])
    alias_to = alias.groupby("alias")["symbol"].apply(lambda s: sorted(set(s)))
    failed = False
    for i, sym in table["gene_symbol"].items():
        if not sym or sym in symbols:
            continue
        current = alias_to.get(sym, [])
        if len(current) == 1:
            print(f"alias {sym} → current symbol {current[0]}")
            table.loc[i, "gene_symbol"] = current[0]
        else:
            print(f"ERROR: {sym} is not an org.Hs.eg.db symbol (alias of: {current or 'nothing'})")
            failed = True

    print("\nantibody names that are also gene aliases (alias table → curated):")
    for name, rows in table[table["kind"] != "control"].groupby("antibody", sort=False):
        hits = alias_to.get(name.replace("-", ""), []) or alias_to.get(name, [])
        if hits:
            curated = list(rows["gene_symbol"])
            flag = "agrees" if set(hits) == set(curated) else "DIFFERS"
            print(f"  {name}: {', '.join(hits)} → {', '.join(curated)} ({flag})")

    for spec in args.panel:
        names = panel_names(spec)
        unmatched = match_adt_names(names, table)
        unmatched = list(unmatched.loc[unmatched["kind"] == "unmatched", "protein"])
        print(f"\npanel {spec}: {len(names)} names, unmatched: {unmatched or 'none'}")
        failed |= bool(unmatched)

    if args.write and not failed:
        table.to_csv(TABLE, sep="\t", index=False, lineterminator="\n")
        read_adt_table(TABLE)
    digest = hashlib.sha256(TABLE.read_bytes()).hexdigest()
    print(f"\n{len(table)} rows, {table['antibody'].nunique()} antibodies; sha256 {TABLE.name} {digest}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
