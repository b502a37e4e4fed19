"""The gene-embeddings file every gene-level method writes (MuSe-GNN and its baselines).

One row per gene per dataset, the rows of a dataset in its graph's gene order: an AnnData whose ``obs`` holds
``gene``, ``dataset``, ``group`` (the training group: one model per group), ``share_key``, ``modality``,
``tissue``, ``species`` and ``in_all_datasets`` (within the group; index ``dataset:gene``) and whose
``obsm['X_emb']`` holds the (rows, d) float32 embedding; ``uns`` holds the method, the seed and what the
method records about its run. Later stages add ``obs['module']`` and ``obsm['X_umap']`` to the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from genegraph.errors import DataError

#: obsm key of the embedding.
EMBEDDING_KEY = "X_emb"


def embedding_rows(datasets: Sequence[Mapping[str, Any]], genes: Sequence[Sequence[str]],
                   share_keys: Sequence[str], group: str = "all") -> pd.DataFrame:
    """The ``obs`` table of an embeddings file: ``datasets`` are the graphs' ``uns['dataset']`` (id, modality,
    tissue, species), ``genes`` their gene orders, ``share_keys`` one key per dataset and ``group`` the name of
    the training group."""
    genes = [np.asarray(g, dtype=str) for g in genes]
    n = [len(g) for g in genes]
    everything = np.concatenate(genes) if genes else np.array([], dtype=str)
    counts = pd.Series(everything).value_counts()

    def column(key: str) -> np.ndarray:
        return np.repeat([str(m.get(key, "")) for m in datasets], n)

    obs = pd.DataFrame({
        "gene": everything, "dataset": column("id"), "group": str(group),
        "share_key": np.repeat([str(k) for k in share_keys], n),
        "modality": column("modality"), "tissue": column("tissue"), "species": column("species"),
        "in_all_datasets": (pd.Series(everything).map(counts) == len(genes)).to_numpy(),
    })
    for col in ("dataset", "group", "share_key", "modality", "tissue", "species"):
        obs[col] = pd.Categorical(obs[col], categories=list(dict.fromkeys(obs[col])))
    obs.index = (obs["dataset"].astype(str) + ":" + obs["gene"]).to_numpy()
    return obs


def embeddings_adata(rows: pd.DataFrame, z: np.ndarray, uns: Mapping[str, Any]) -> ad.AnnData:
    """The embeddings file of ``rows`` (:func:`embedding_rows`) and their (rows, d) embedding ``z``."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or z.shape[0] != len(rows):
        raise DataError(f"{z.shape} embedding for {len(rows)} rows")
    if not np.isfinite(z).all():
        raise DataError(f"{uns.get('method', 'the method')}: the embedding holds NaN or infinite values")
    return ad.AnnData(obs=rows, obsm={EMBEDDING_KEY: z}, uns=dict(uns))


def embedding(adata: ad.AnnData) -> np.ndarray:
    """(rows, d) float32 embedding of an embeddings file."""
    if EMBEDDING_KEY not in adata.obsm:
        raise DataError(f"not an embeddings file: obsm[{EMBEDDING_KEY!r}] is missing")
    return np.asarray(adata.obsm[EMBEDDING_KEY], dtype=np.float32)
