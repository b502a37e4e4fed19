"""Small synthetic fixtures written by the tests themselves (no copies of ../shared)."""

from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp


def random_counts(n_cells: int, n_genes: int, seed: int = 0, density: float = 0.3) -> sp.csr_matrix:
    """Seeded sparse integer counts, cells x genes."""
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(2, 0.4, size=(n_cells, n_genes)) * (rng.random((n_cells, n_genes)) < density)
    return sp.csr_matrix(x.astype(np.int32))


def write_10x_h5_v3(path: Path, x: sp.csr_matrix, barcodes, ids, names, types=None) -> None:
    """A Cell Ranger v3 HDF5 file (genes x cells CSC inside)."""
    csc = sp.csc_matrix(x.T)
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"] = csc.data, csc.indices, csc.indptr
        g["shape"] = np.array(csc.shape, dtype=np.int32)
        g["barcodes"] = np.array(barcodes, dtype="S")
        feat = g.create_group("features")
        feat["id"], feat["name"] = np.array(ids, dtype="S"), np.array(names, dtype="S")
        feat["feature_type"] = np.array(types or ["Gene Expression"] * len(ids), dtype="S")
        feat["genome"] = np.array(["GRCh38"] * len(ids), dtype="S")


def write_10x_mtx(folder: Path, x: sp.csr_matrix, barcodes, ids, names, v3: bool = True) -> None:
    """A Cell Ranger mtx folder: v3 (gzipped, features.tsv.gz) or v2 (genes.tsv)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if v3 else ""
    opener = gzip.open if v3 else open
    with opener(folder / f"matrix.mtx{suffix}", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(x.T))
    feats = pd.DataFrame({"id": ids, "name": names})
    if v3:
        feats["type"] = "Gene Expression"
    feats.to_csv(folder / ("features.tsv.gz" if v3 else "genes.tsv"), sep="\t", header=False, index=False)
    pd.Series(barcodes).to_csv(folder / f"barcodes.tsv{suffix}", sep="\t", header=False, index=False)


def write_h5ad(path: Path, x, genes, cells=None, **kw) -> ad.AnnData:
    cells = cells if cells is not None else [f"c{i}" for i in range(x.shape[0])]
    a = ad.AnnData(X=x, obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes), **kw)
    a.write_h5ad(path)
    return a


def gene_table() -> pd.DataFrame:
    """A tiny GENCODE-like table: ensembl, symbol, version, length, biotype."""
    rows = [
        ("ENSG00000000001", "GENEA"), ("ENSG00000000002", "GENEB"), ("ENSG00000000003", "GENEC"),
        ("ENSG00000000004", "DUP"), ("ENSG00000000005", "DUP"), ("ENSG00000198888", "MT-ND1"),
        ("ENSG00000000006", "MTOR"),
    ]
    return pd.DataFrame([(e, s, "1", "100", "protein_coding") for e, s in rows],
                        columns=["ensembl", "symbol", "version", "length", "biotype"])
