"""The four relations of scMoFormer's heterogeneous graph (spec §3.2); there are no cell–cell and no
cell–protein edges.

- cell–gene: one edge per non-zero normalised expression value, weighted by it (used in both directions);
- gene–gene: STRING links between the data's genes, weight combined_score / 1000, symmetric;
- protein–protein: STRING links between the genes that two panel proteins map to, weight combined_score / 1000
  (the best over the gene pairs of a one-to-many protein), symmetric;
- gene–protein: weight 1 when the gene's symbol is one the protein maps to.

Symbols are compared upper-cased (the ADT table uses HGNC symbols). The STRING table comes already mapped to
gene symbols (columns ``gene_a, gene_b, combined_score``, scores on STRING's 0–1000 scale); the priors stage
drops proteins without a symbol.

Deviations:
- The reference maps panel proteins to STRING through STRING's preferred names and a curated CSV with wrong
  alias hits (IgM → CD40LG, CD25 → ISG20, TCR → TRBV20OR9-2) and keeps only the last protein of a symbol;
  here the project's ADT table is used and a symbol links every protein that maps to it.
- A pair of genes listed several times (several ENSPs of one symbol) keeps its highest score; a symmetric
  pair listed in one direction only is added in the other (STRING lists both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...errors import DataError

#: STRING's lowest combined score in its files (0–1000 scale).
STRING_FLOOR = 150


@dataclass(frozen=True)
class Relations:
    """The graph of one dataset, all CSR float32.

    ``cell_gene`` (n_cells, n_genes) expression weights; ``gene_gene`` (n_genes, n_genes) and
    ``protein_protein`` (n_proteins, n_proteins) symmetric STRING weights in (0, 1]; ``gene_protein``
    (n_genes, n_proteins) ones. The three prior relations are None without priors (``scmoformer_no_prior``).
    """

    cell_gene: sp.csr_matrix
    gene_gene: sp.csr_matrix | None
    protein_protein: sp.csr_matrix | None
    gene_protein: sp.csr_matrix | None

    @property
    def has_prior(self) -> bool:
        return self.gene_gene is not None


def _unique_upper(names: Sequence[str], what: str) -> dict[str, int]:
    """Upper-cased name → position; DataError on duplicates."""
    upper = pd.Index([str(n).upper() for n in names])
    if upper.has_duplicates:
        dup = sorted(set(upper[upper.duplicated()]))[:5]
        raise DataError(f"{what} names are not unique (upper-cased): {', '.join(dup)}")
    return {n: i for i, n in enumerate(upper)}


def _symmetric_max(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int) -> sp.csr_matrix:
    """(n, n) CSR with entries at (r, c) and (c, r), the maximum where a pair repeats; no diagonal."""
    r = np.concatenate([rows, cols])
    c = np.concatenate([cols, rows])
    v = np.concatenate([vals, vals]).astype(np.float32)
    off = r != c
    r, c, v = r[off], c[off], v[off]
    if r.size == 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    key = r.astype(np.int64) * n + c
    order = np.lexsort((-v, key))
    key, v = key[order], v[order]
    first = np.r_[True, key[1:] != key[:-1]]
    key, v = key[first], v[first]
    return sp.csr_matrix((v, (key // n, key % n)), shape=(n, n), dtype=np.float32)


def _string_table(edges: pd.DataFrame, min_score: int | None) -> pd.DataFrame:
    """``edges`` checked, upper-cased, with scores below ``min_score`` removed."""
    missing = [c for c in ("gene_a", "gene_b", "combined_score") if c not in edges.columns]
    if missing:
        raise DataError(f"STRING edge table lacks column(s) {', '.join(missing)} (need gene_a, gene_b, combined_score)")
    score = pd.to_numeric(edges["combined_score"], errors="coerce")
    if score.isna().any() or (score < 0).any() or (score > 1000).any():
        raise DataError("STRING combined_score must be numbers in 0–1000")
    out = pd.DataFrame({"a": edges["gene_a"].astype(str).str.upper(), "b": edges["gene_b"].astype(str).str.upper(),
                        "score": score.to_numpy(dtype=np.float64)})
    if min_score is not None:
        out = out[out["score"] >= min_score]
    return out


def cell_gene_relation(x: sp.spmatrix) -> sp.csr_matrix:
    """(n_cells, n_genes) CSR float32 of the non-zero normalised expression values (explicit zeros dropped)."""
    if not sp.issparse(x):
        raise DataError("the expression matrix must be sparse (CSR): a dense cells × genes matrix is not accepted")
    csr = sp.csr_matrix(x, dtype=np.float32, copy=True)
    if not np.isfinite(csr.data).all():
        raise DataError("the normalised expression matrix has NaN or infinite values")
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def gene_gene_relation(genes: Sequence[str], edges: pd.DataFrame, min_score: int | None = None) -> sp.csr_matrix:
    """(n_genes, n_genes) symmetric STRING weights combined_score / 1000 between ``genes``."""
    index = _unique_upper(genes, "gene")
    table = _string_table(edges, min_score)
    a = table["a"].map(index)
    b = table["b"].map(index)
    keep = a.notna() & b.notna()
    return _symmetric_max(a[keep].to_numpy(np.int64), b[keep].to_numpy(np.int64),
                          table["score"][keep].to_numpy() / 1000.0, len(genes))


def protein_protein_relation(
    proteins: Sequence[str], protein_genes: Mapping[str, Sequence[str]], edges: pd.DataFrame,
    min_score: int | None = None,
) -> sp.csr_matrix:
    """(n_proteins, n_proteins) symmetric STRING weights between panel proteins: proteins p ≠ q are linked when
    a gene of p and a gene of q are; the weight is the best combined_score / 1000 over those gene pairs."""
    table = _string_table(edges, min_score)
    gene_prots: dict[str, list[int]] = {}
    for i, p in enumerate(proteins):
        for g in {str(g).upper() for g in protein_genes.get(p, ())}:
            gene_prots.setdefault(g, []).append(i)
    table = table[table["a"].isin(gene_prots.keys()) & table["b"].isin(gene_prots.keys())]
    rows, cols, vals = [], [], []
    for a, b, s in table.itertuples(index=False):
        for i in gene_prots[a]:
            for j in gene_prots[b]:
                rows.append(i)
                cols.append(j)
                vals.append(s / 1000.0)
    return _symmetric_max(np.asarray(rows, np.int64), np.asarray(cols, np.int64), np.asarray(vals), len(proteins))


def gene_protein_relation(genes: Sequence[str], proteins: Sequence[str],
                          protein_genes: Mapping[str, Sequence[str]]) -> sp.csr_matrix:
    """(n_genes, n_proteins) ones where the gene's symbol is one the protein maps to."""
    index = _unique_upper(genes, "gene")
    rows, cols = [], []
    for j, p in enumerate(proteins):
        for g in {str(g).upper() for g in protein_genes.get(p, ())}:
            if g in index:
                rows.append(index[g])
                cols.append(j)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(genes), len(proteins)),
                         dtype=np.float32)


def build_relations(
    x: sp.spmatrix, genes: Sequence[str], proteins: Sequence[str], *,
    edges: pd.DataFrame | None, protein_genes: Mapping[str, Sequence[str]] | None, min_score: int | None = None,
) -> Relations:
    """The heterogeneous graph of ``x`` (n_cells, n_genes) normalised expression, genes ``genes`` and the target
    panel ``proteins``. With ``edges`` None (and ``protein_genes`` None) only the cell–gene relation is built
    (``scmoformer_no_prior``).

    Raises DataError when no gene of the data has a STRING link, or fewer than two panel proteins map to a gene.
    """
    if x.shape[1] != len(genes):
        raise DataError(f"expression has {x.shape[1]} genes but {len(genes)} gene names were given")
    _unique_upper(proteins, "protein")
    cell_gene = cell_gene_relation(x)
    if edges is None:
        return Relations(cell_gene, None, None, None)
    if protein_genes is None:
        raise DataError("STRING priors need the protein → gene mapping (protein_genes)")
    gene_gene = gene_gene_relation(genes, edges, min_score)
    if gene_gene.nnz == 0:
        raise DataError(f"no STRING link joins two of the data's {len(genes)} genes "
                        "(no shared genes with STRING, or different gene naming)")
    mapped = [p for p in proteins if protein_genes.get(p)]
    if len(mapped) < 2:
        raise DataError(f"only {len(mapped)} of {len(proteins)} panel proteins map to a gene symbol; scMoFormer's "
                        "protein graph needs at least 2 (check the ADT → gene table)")
    return Relations(cell_gene, gene_gene, protein_protein_relation(proteins, protein_genes, edges, min_score),
                     gene_protein_relation(genes, proteins, protein_genes))
