"""Gene vocabulary of a CellPLM model and the measured genes of each dataset.

The vocabulary is an ordered list of gene names (rows of the gene embedding table and columns of the decoder);
the caller gives it (the union of the panel's genes, or a vocabulary file such as the released checkpoint's
19,374 Ensembl ids). A dataset *measures* the vocabulary genes among its ``var_names``: only those enter its
input and its loss (the reference's per-dataset gene mask); its other genes are ignored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from ...errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneVocabulary:
    """Ordered, duplicate-free gene names; ``index[name]`` is the row of ``name``."""

    genes: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.genes:
            raise DataError("the gene vocabulary is empty")
        index = {g: i for i, g in enumerate(self.genes)}
        if len(index) != len(self.genes):
            dup = sorted({g for g in self.genes if self.genes.count(g) > 1})[:5]
            raise DataError(f"the gene vocabulary has duplicate names, e.g. {dup}")
        object.__setattr__(self, "index", index)

    def __len__(self) -> int:
        return len(self.genes)


def build_vocabulary(gene_lists: Iterable[Sequence[str]]) -> GeneVocabulary:
    """The sorted union of ``gene_lists`` (e.g. the ``var_names`` of every dataset of the panel)."""
    union: set[str] = set()
    for genes in gene_lists:
        union.update(str(g) for g in genes)
    return GeneVocabulary(tuple(sorted(union)))


def read_vocabulary(path: str | Path) -> GeneVocabulary:
    """A vocabulary file: one gene per line, or a JSON object with a ``gene_list`` (the released CellPLM config)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".json":
        try:
            genes = json.loads(text)["gene_list"]
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path}: expected a JSON object with a 'gene_list' array ({err})") from None
    else:
        genes = [line.strip() for line in text.splitlines() if line.strip()]
    return GeneVocabulary(tuple(str(g) for g in genes))


def measured_genes(var_names: Sequence[str], vocab: GeneVocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Columns of a dataset that are in ``vocab``, and their vocabulary rows.

    Returns ``(columns, rows)``: int64 arrays of equal length m, columns in increasing order. Raises
    :class:`DataError` on duplicate gene names or when no gene is in the vocabulary."""
    names = [str(g) for g in var_names]
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = sorted({g for g in names if g in seen or seen.add(g)})[:5]
        raise DataError(f"duplicate gene names in var_names, e.g. {dup}; make them unique first")
    cols = [j for j, g in enumerate(names) if g in vocab.index]
    if not cols:
        raise DataError(f"none of the {len(names)} genes is in the {len(vocab)}-gene vocabulary "
                        f"(first genes: {names[:3]}, vocabulary starts {list(vocab.genes[:3])})")
    if len(cols) < len(names):
        log.info("%d of %d genes are outside the vocabulary and are ignored", len(names) - len(cols), len(names))
    rows = [vocab.index[names[j]] for j in cols]
    return np.asarray(cols, dtype=np.int64), np.asarray(rows, dtype=np.int64)


def gene_mask(var_names: Sequence[str], vocab: GeneVocabulary) -> np.ndarray:
    """Boolean (len(vocab),): True for the vocabulary genes a dataset measures."""
    mask = np.zeros(len(vocab), dtype=bool)
    mask[measured_genes(var_names, vocab)[1]] = True
    return mask


def count_matrix(adata: ad.AnnData, layer: str | None = None) -> sp.csr_matrix:
    """``adata.X`` (or a layer) as a float32 CSR of raw counts; :class:`DataError` unless finite non-negative
    integers."""
    x = adata.X if layer is None else adata.layers[layer]
    if x is None:
        raise DataError("the AnnData has no expression matrix X")
    x = sp.csr_matrix(x, dtype=np.float32) if not sp.issparse(x) else x.tocsr().astype(np.float32)
    data = x.data
    if data.size:
        if not np.isfinite(data).all():
            raise DataError("the count matrix has NaN or infinite values")
        if (data < 0).any():
            raise DataError("the count matrix has negative values; CellPLM needs raw counts")
        if (data != np.round(data)).any():
            raise DataError("the count matrix has non-integer values (normalised data?); CellPLM needs raw counts")
    x.eliminate_zeros()
    x.sort_indices()
    return x


def uppercase_genes(adata: ad.AnnData) -> ad.AnnData:
    """``adata`` (a view-free copy) with upper-cased gene names, so that one vocabulary serves human and mouse
    symbols (``Gapdh`` and ``GAPDH`` become one token); of genes that then share a name the first is kept."""
    names = adata.var_names.astype(str).str.upper()
    keep = ~names.duplicated()
    out = adata[:, np.asarray(keep)].copy()
    out.var_names = names[np.asarray(keep)]
    return out
