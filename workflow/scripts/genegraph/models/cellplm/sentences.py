"""Data assembly: datasets → sentences (the cells of one sample, encoded together) → model inputs.

A sentence is one dataset, or one batch of it when ``obs[batch_key]`` exists (a tissue section, a FOV, a
sample). Its counts cover the dataset's measured vocabulary genes only (:func:`.vocab.measured_genes`), so
unmeasured genes never enter the input or the loss. :func:`sentence_input` turns (a subset of) a sentence
into tensors: log1p counts as a CSR tensor and its transpose (for the bag-of-genes product and its backward),
with chosen entries zeroed by a mask.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ...errors import DataError
from .vocab import GeneVocabulary, count_matrix, measured_genes

UNKNOWN = -1  # covariate code of a dataset or batch the model has not seen


@dataclass(frozen=True)
class Covariates:
    """Datasets and batches the decoder has embeddings for (a batch is named ``"<dataset>/<batch>"``)."""

    datasets: tuple[str, ...]
    batches: tuple[str, ...]

    def dataset_code(self, dataset: str) -> int:
        return self.datasets.index(dataset) if dataset in self.datasets else UNKNOWN

    def batch_code(self, dataset: str, batch: str) -> int:
        name = f"{dataset}/{batch}"
        return self.batches.index(name) if name in self.batches else UNKNOWN


@dataclass(frozen=True)
class Sentence:
    """One sample: ``counts`` (n × m float32 CSR raw counts over the measured genes), ``genes`` (m,) vocabulary
    rows, covariate codes, ``coords`` (n × 2, NaN rows = no position) or None, ``cells`` (n,) source rows."""

    name: str
    counts: sp.csr_matrix
    genes: np.ndarray
    dataset: int
    batch: int
    coords: np.ndarray | None
    cells: np.ndarray

    @property
    def n_cells(self) -> int:
        return self.counts.shape[0]


@dataclass
class SentenceInput:
    """Tensors of one forward pass over n cells and m measured genes.

    ``x``: sparse CSR (n, m) log1p counts with masked entries zeroed; ``xt``: the same values as a CSR (m, n);
    ``genes`` (m,) int64 vocabulary rows; ``batch``/``dataset`` (n,) int64 codes (−1 unknown); ``coords``
    (n, 2) float32 with NaN rows for cells without a position, or None."""

    x: torch.Tensor
    xt: torch.Tensor
    genes: torch.Tensor
    batch: torch.Tensor
    dataset: torch.Tensor
    coords: torch.Tensor | None

    @property
    def n_cells(self) -> int:
        return int(self.x.shape[0])


def batch_labels(adata: ad.AnnData, batch_key: str | None) -> list[str] | None:
    """The batch label of every cell as strings, or None when ``batch_key`` is None or not in ``obs``."""
    if batch_key is None or batch_key not in adata.obs:
        return None
    labels = adata.obs[batch_key]
    if labels.isna().any():
        raise DataError(f"obs['{batch_key}'] has missing values")
    return [str(v) for v in labels]


def build_covariates(datasets: Mapping[str, ad.AnnData], batch_key: str | None = "batch") -> Covariates:
    """Covariate names of a pre-training panel: every dataset, and every (dataset, batch) pair."""
    batches: list[str] = []
    for name, adata in datasets.items():
        labels = batch_labels(adata, batch_key)
        for label in pd.unique(pd.Series(labels if labels is not None else [name])):
            batches.append(f"{name}/{label}")
    return Covariates(tuple(datasets), tuple(batches))


def _coordinates(adata: ad.AnnData, spatial_key: str | None) -> np.ndarray | None:
    if spatial_key is None or spatial_key not in adata.obsm:
        return None
    xy = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise DataError(f"obsm['{spatial_key}'] must be n × 2 coordinates, got shape {xy.shape}")
    xy = xy[:, :2].copy()
    if np.isinf(xy).any():
        raise DataError(f"obsm['{spatial_key}'] has infinite coordinates")
    return xy


def dataset_sentences(name: str, adata: ad.AnnData, vocab: GeneVocabulary, covariates: Covariates | None = None,
                      batch_key: str | None = "batch", spatial_key: str | None = "spatial",
                      layer: str | None = None) -> list[Sentence]:
    """The sentences of one dataset: one per batch label (in order of appearance), or one for all cells.

    ``adata``: cells × genes raw counts (``X`` or ``layers[layer]``), optional ``obs[batch_key]`` and
    ``obsm[spatial_key]``. Covariate codes come from ``covariates`` (−1 for names it does not hold)."""
    if adata.n_obs == 0:
        raise DataError("the dataset has no cells")
    cols, rows = measured_genes(adata.var_names, vocab)
    counts = count_matrix(adata, layer)[:, cols]
    coords = _coordinates(adata, spatial_key)
    labels = batch_labels(adata, batch_key)
    groups = pd.Series(labels if labels is not None else [name] * adata.n_obs)
    dataset_code = covariates.dataset_code(name) if covariates is not None else UNKNOWN
    out = []
    for label in pd.unique(groups):
        idx = np.flatnonzero((groups == label).to_numpy())
        out.append(Sentence(
            name=f"{name}/{label}" if labels is not None else name,
            counts=_sorted(counts[idx]), genes=rows,
            dataset=dataset_code,
            batch=covariates.batch_code(name, label) if covariates is not None else UNKNOWN,
            coords=None if coords is None else coords[idx], cells=idx.astype(np.int64)))
    return out


def _sorted(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sort_indices()
    return m


def _csr_tensor(m: sp.csr_matrix, values: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)),
                                       torch.from_numpy(values), size=m.shape, check_invariants=False)


def sentence_input(sentence: Sentence, device: torch.device, cells: np.ndarray | None = None,
                   keep: np.ndarray | None = None, counts: sp.csr_matrix | None = None) -> SentenceInput:
    """Tensors for ``sentence`` restricted to ``cells`` (row positions; all when None).

    ``keep``: bool per stored entry of the restricted counts (CSR order); False entries are zeroed (masked).
    ``counts``: the restricted counts when the caller already built them (must match ``cells``)."""
    if counts is None:
        counts = sentence.counts if cells is None else sentence.counts[cells]
    counts = counts.tocsr()
    values = np.log1p(counts.data.astype(np.float32))
    if keep is not None:
        values = np.where(keep, values, np.float32(0.0)).astype(np.float32)
    # the transpose's structure, with a permutation mapping its entries to ours
    order = sp.csr_matrix((np.arange(counts.nnz, dtype=np.int64), counts.indices, counts.indptr),
                          shape=counts.shape).T.tocsr()
    x = _csr_tensor(counts, values).to(device)
    xt = _csr_tensor(order, values[order.data]).to(device)
    n = counts.shape[0]
    sel = np.arange(sentence.n_cells) if cells is None else cells
    coords = None
    if sentence.coords is not None:
        coords = torch.as_tensor(sentence.coords[sel], dtype=torch.float32, device=device)
    return SentenceInput(
        x=x, xt=xt, genes=torch.as_tensor(sentence.genes, device=device),
        batch=torch.full((n,), sentence.batch, dtype=torch.int64, device=device),
        dataset=torch.full((n,), sentence.dataset, dtype=torch.int64, device=device),
        coords=coords)


def subset_sentence(sentence: Sentence, cells: np.ndarray, counts: sp.csr_matrix | None = None) -> Sentence:
    """``sentence`` restricted to the row positions ``cells`` (optionally with replaced counts)."""
    return Sentence(name=sentence.name, counts=_sorted(sentence.counts[cells] if counts is None else counts),
                    genes=sentence.genes, dataset=sentence.dataset, batch=sentence.batch,
                    coords=None if sentence.coords is None else sentence.coords[cells],
                    cells=sentence.cells[cells])


def dense_counts(counts: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """(n, m) float32 dense counts for the loss (n is capped by the sentence length)."""
    return torch.from_numpy(counts.toarray().astype(np.float32)).to(device)


def concat_cells(sentences: Sequence[Sentence], n_obs: int, values: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of per-sentence results (``values[i]`` for ``sentences[i]``) placed back in the source order."""
    width = values[0].shape[1:]
    out = np.zeros((n_obs, *width), dtype=values[0].dtype)
    for s, v in zip(sentences, values):
        out[s.cells] = v
    return out
