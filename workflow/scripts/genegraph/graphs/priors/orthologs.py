"""Gene maps between a dataset's genes and the genes of a resource (STRING network, hallmark sets).

A resource of the dataset's own species is used as it is (each gene maps to itself). A resource of another
species is reached through an ortholog table: the embedded one is Ensembl 105 human -> mouse gene symbols
(``resources/priors/orthologs/Ensembl105_Human2Mouse_Genes.csv.gz``, from the celltypist 1.7.1 wheel, MIT;
two columns, no header, an empty cell = no ortholog). Orthology is many-to-many: a mouse gene with two
human orthologs carries the edges and set memberships of both. A gene without an ortholog is an isolated
node for that resource.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genegraph.errors import DataError
from genegraph.graphs.adjacency import unique_genes

log = logging.getLogger(__name__)

#: Columns of the embedded ortholog table, by NCBI taxon id.
ORTHOLOG_TAXA = {9606: "human", 10090: "mouse"}


def load_orthologs(path: str | Path) -> pd.DataFrame:
    """The ortholog table: columns ``human``, ``mouse`` (gene symbols), one row per ortholog pair."""
    try:
        table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    except (OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the ortholog table ({type(err).__name__}: {err})") from err
    if table.shape[1] != 2:
        raise DataError(f"{path}: an ortholog table has two columns (human symbol, mouse symbol), "
                        f"this one has {table.shape[1]}")
    table.columns = ["human", "mouse"]
    table = table.apply(lambda c: c.str.strip())
    pairs = table[(table["human"] != "") & (table["mouse"] != "")].drop_duplicates(ignore_index=True)
    if pairs.empty:
        raise DataError(f"{path}: the ortholog table has no pair with both symbols")
    log.info("ortholog table %s: %d human-mouse pairs (%d human, %d mouse genes)", Path(path).name, len(pairs),
             pairs["human"].nunique(), pairs["mouse"].nunique())
    return pairs


def gene_map(genes: Sequence[str], *, from_taxon: int, to_taxon: int,
             orthologs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows ``index`` (position in ``genes``), ``gene``, ``resource_gene``: which resource genes stand for
    each dataset gene. Same taxon: the identity. Otherwise through ``orthologs`` (see :func:`load_orthologs`);
    genes without an ortholog have no row."""
    index = unique_genes(genes)
    positions = pd.DataFrame({"index": np.arange(index.size), "gene": index.to_numpy()})
    if from_taxon == to_taxon:
        return positions.assign(resource_gene=positions["gene"])
    if from_taxon not in ORTHOLOG_TAXA or to_taxon not in ORTHOLOG_TAXA:
        raise DataError(f"no ortholog table from taxon {from_taxon} to taxon {to_taxon}: the ortholog table "
                        f"covers {', '.join(f'{n} ({t})' for t, n in ORTHOLOG_TAXA.items())}")
    if orthologs is None:
        raise DataError(f"genes of taxon {from_taxon} need an ortholog table to use a resource of taxon {to_taxon}")
    src, dst = ORTHOLOG_TAXA[from_taxon], ORTHOLOG_TAXA[to_taxon]
    pairs = orthologs[[src, dst]].rename(columns={src: "gene", dst: "resource_gene"}).drop_duplicates()
    mapped = positions.merge(pairs, on="gene", how="inner").sort_values(["index", "resource_gene"], ignore_index=True)
    per_gene = mapped.groupby("index").size()
    log.info("orthologs %s -> %s: %d of %d genes have one (%d have several); %d resource genes",
             src, dst, per_gene.size, index.size, int((per_gene > 1).sum()), mapped["resource_gene"].nunique())
    return mapped
