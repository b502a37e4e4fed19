"""Gene sets (MSigDB hallmark GMT) and the hallmark gene-gene edges.

GMT: one set per line, tab-separated: name, description (a URL in MSigDB files), then the genes. Parsed by
column, never by whitespace token (DANCE's token parser breaks on ``https://`` descriptions). Empty gene
fields (tab padding) are ignored and a gene listed twice in one set counts once. A set with no gene, or a
set name used twice, makes the file invalid (:class:`DataError` naming the line): both signal a broken
file, and silently merging or dropping sets would change the edge weights.

Edges (:func:`hallmark_edges`), among a dataset's genes:

* ``weighting="count"`` (default): an edge between two genes that share at least one set, weight = the number
  of sets they share;
* ``weighting="cosine"``: the scMoGNN variant -- the same gene pairs, weighted by the cosine similarity of
  the two genes' expression profiles (rows of ``expression``, genes x cells), kept when
  |cosine| > ``min_cosine`` (scMoGNN: 0.1); the weight keeps its sign. scMoGNN adds one parallel edge per
  shared set; here a pair has one edge.

Gene symbols match exactly (case-sensitive). The MSigDB hallmark sets are human symbols; genes of another
species reach them through an ortholog gene map (:func:`genegraph.graphs.priors.orthologs.gene_map`): a gene belongs to
every set one of its orthologs belongs to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from genegraph.errors import DataError
from genegraph.graphs.adjacency import symmetric_csr, unique_genes

log = logging.getLogger(__name__)

MSIGDB_BASE_URL = "https://data.broadinstitute.org/gsea-msigdb/msigdb/release"
WEIGHTINGS = ("count", "cosine")


def msigdb_url(version: str, collection: str = "h.all", base_url: str = MSIGDB_BASE_URL) -> str:
    """URL of an MSigDB symbols GMT, e.g. ``version='7.5.1'`` or ``'2023.2.Hs'`` (``collection='mh.all'``
    with ``'2023.2.Mm'`` for the mouse hallmarks)."""
    return f"{base_url.rstrip('/')}/{version}/{collection}.v{version}.symbols.gmt"


def read_gmt(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Gene sets of a GMT file, in file order: ``{name: (gene, ...)}``."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the GMT file ({type(err).__name__}: {err})") from err
    sets: dict[str, tuple[str, ...]] = {}
    first_line: dict[str, int] = {}
    repeated_genes = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        name = fields[0].strip()
        if len(fields) < 2 or not name:
            raise DataError(f"{path}, line {number}: a GMT line is 'name<TAB>description<TAB>gene...'; "
                            f"this one has {'no name' if not name else 'no tab'}")
        if name in first_line:
            raise DataError(f"{path}, line {number}: gene set '{name}' is defined twice (first on line "
                            f"{first_line[name]}); set names must be unique")
        genes = [g.strip() for g in fields[2:] if g.strip()]
        unique = tuple(dict.fromkeys(genes))
        if not unique:
            raise DataError(f"{path}, line {number}: gene set '{name}' has no genes")
        repeated_genes += len(genes) - len(unique)
        sets[name] = unique
        first_line[name] = number
    if not sets:
        raise DataError(f"{path}: the GMT file holds no gene set")
    n_genes = len({g for genes in sets.values() for g in genes})
    log.info("read %s: %d gene sets, %d memberships, %d distinct genes%s", path.name, len(sets),
             sum(map(len, sets.values())), n_genes,
             f" ({repeated_genes} repeated genes within a set counted once)" if repeated_genes else "")
    return sets


def set_membership(genes: Sequence[str], gene_sets: Mapping[str, Sequence[str]],
                   gene_map: pd.DataFrame | None = None) -> sp.csr_matrix:
    """N x S 0/1 matrix (float32): gene i (through its ``gene_map`` rows) belongs to set s."""
    index = unique_genes(genes)
    names = list(gene_sets)
    long = pd.DataFrame({"set": np.repeat(np.arange(len(names)), [len(gene_sets[s]) for s in names]),
                         "resource_gene": [g for s in names for g in gene_sets[s]]})
    if gene_map is None:
        gene_map = pd.DataFrame({"index": np.arange(index.size), "resource_gene": index.to_numpy()})
    hits = gene_map[["index", "resource_gene"]].merge(long, on="resource_gene")[["index", "set"]].drop_duplicates()
    return sp.csr_matrix((np.ones(len(hits), dtype=np.float32), (hits["index"].to_numpy(), hits["set"].to_numpy())),
                         shape=(index.size, len(names)))


def pair_cosine(expression: np.ndarray | sp.spmatrix, i: np.ndarray, j: np.ndarray,
                block_rows: int = 2048) -> np.ndarray:
    """Cosine similarity of rows i[k] and j[k] of ``expression`` (genes x cells); 0 where a row is all zero.

    Computed as blocks of a Gram product over the rows involved (never N x N at once).
    """
    involved, inverse = np.unique(np.concatenate([i, j]), return_inverse=True)
    pi, pj = inverse[: len(i)], inverse[len(i):]
    rows = expression[involved]
    if sp.issparse(rows):
        rows = sp.csr_matrix(rows, dtype=np.float64)
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        rows = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ rows
    else:
        rows = np.asarray(rows, dtype=np.float64)
        norms = np.linalg.norm(rows, axis=1)
        rows = rows * np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)[:, None]
    out = np.zeros(len(i), dtype=np.float64)
    order = np.argsort(pi, kind="stable")
    bounds = np.searchsorted(pi[order], np.arange(0, involved.size + block_rows, block_rows))
    for b, start in enumerate(range(0, involved.size, block_rows)):
        sel = order[bounds[b]:bounds[b + 1]]
        if sel.size == 0:
            continue
        gram = rows[start:start + block_rows] @ rows.T
        gram = gram.toarray() if sp.issparse(gram) else gram
        out[sel] = gram[pi[sel] - start, pj[sel]]
    return out


def hallmark_edges(
    genes: Sequence[str],
    gene_sets: Mapping[str, Sequence[str]],
    *,
    weighting: str = "count",
    expression: np.ndarray | sp.spmatrix | None = None,
    min_cosine: float = 0.1,
    gene_map: pd.DataFrame | None = None,
) -> sp.csr_matrix:
    """Hallmark adjacency among ``genes`` (N x N CSR float32, symmetric, no self-loops); see the module
    docstring for the two weightings. ``expression``: N x cells (dense or sparse), rows in ``genes`` order,
    needed for ``weighting="cosine"``. Genes in no set are isolated nodes."""
    if weighting not in WEIGHTINGS:
        raise DataError(f"hallmark weighting must be one of {WEIGHTINGS}, not '{weighting}'")
    membership = set_membership(genes, gene_sets, gene_map)
    n = membership.shape[0]
    shared = sp.triu(membership @ membership.T, k=1).tocoo()
    i, j, count = shared.row, shared.col, shared.data
    if weighting == "count":
        weight = count.astype(np.float32)
    else:
        if expression is None or expression.shape[0] != n:
            raise DataError(f"hallmark weighting 'cosine' needs expression with one row per gene ({n} rows); got "
                            f"{'none' if expression is None else expression.shape[0]}")
        if not 0 <= min_cosine < 1:
            raise DataError(f"min_cosine must be in [0, 1), got {min_cosine}")
        cos = pair_cosine(expression, i, j)
        keep = np.abs(cos) > min_cosine
        i, j, weight = i[keep], j[keep], cos[keep].astype(np.float32)
    adjacency = symmetric_csr(i, j, weight, n)
    detail = f" with |cosine| > {min_cosine} (of {shared.nnz} pairs sharing a set)" if weighting == "cosine" else ""
    log.info("hallmark edges (%s): %d of %d genes in >= 1 of %d sets; %d undirected edges%s", weighting,
             int((np.diff(membership.indptr) > 0).sum()), n, membership.shape[1], len(weight), detail)
    return adjacency
