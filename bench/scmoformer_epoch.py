"""scMoFormer: seconds per epoch and peak memory at a CITE-like synthetic scale, and the sparse gene
initialisation h_g = Xᵀ·h_c against the dense product the reference code uses (same process).

Scale 1 is GEX2ADT-like: 66,175 cells × 13,953 genes at 9.6 % non-zero (≈ 89 M cell–gene edges), 134 proteins,
a synthetic STRING gene graph of mean degree 200 and a protein graph of mean degree 97 (the reference's 11,644
edges among 120 proteins); batches of 10,000 cells. ``--scale`` multiplies the cells, genes and batch size
(default 0.02 on CPU). The model uses the reference sizes unless ``--hidden``/``--layers`` say otherwise.

    python bench/scmoformer_epoch.py                       # CPU, reduced scale, small model
    python bench/scmoformer_epoch.py --device cuda --scale 0.3 --hidden 512 --layers 3 --epochs 3
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from genegraph.device import torch_job
from genegraph.models.protein_task import ProteinTask
from genegraph.models.scmoformer import load_settings, prepare_graph, train_scmoformer
from genegraph.models.scmoformer.encodings import gene_features

FULL_CELLS, FULL_GENES, DENSITY, N_PROTEINS, BATCH = 66_175, 13_953, 0.096, 134, 10_000
PANEL = ["CD4", "CD8", "CD14", "CD16", "CD19", "CD20", "CD3", "CD56", "CD45RA", "CD25"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_rna(n_cells: int, n_genes: int, rng: np.random.Generator) -> sp.csr_matrix:
    """(n_cells, n_genes) CSR float32, about DENSITY non-zero, log-normalised-looking values."""
    per_row = rng.binomial(n_genes, DENSITY, n_cells)
    indptr = np.concatenate([[0], np.cumsum(per_row)])
    cols = rng.integers(0, n_genes, indptr[-1]).astype(np.int32)
    vals = np.log1p(rng.gamma(1.0, 2.0, indptr[-1])).astype(np.float32) + 0.1
    x = sp.csr_matrix((vals, cols, indptr), shape=(n_cells, n_genes))
    x.sum_duplicates()
    return x


def synthetic(n_cells: int, n_genes: int, rng: np.random.Generator) -> tuple[ProteinTask, pd.DataFrame]:
    """Sparse RNA, random targets, a STRING-like gene table over the genes (panel genes linked densely)."""
    x = synthetic_rna(n_cells, n_genes, rng)
    proteins = PANEL + [f"P{i}" for i in range(N_PROTEINS - len(PANEL))]
    panel_genes = ["CD4", "CD8A", "CD14", "FCGR3A", "FCGR3B", "CD19", "MS4A1", "CD3E", "CD3D", "CD3G", "NCAM1",
                   "PTPRC", "IL2RA"]
    genes = [f"G{i}" for i in range(n_genes - len(panel_genes))] + panel_genes
    n_links = n_genes * 100
    a, b = rng.integers(0, n_genes, n_links), rng.integers(0, n_genes, n_links)
    links = pd.DataFrame({"gene_a": np.asarray(genes)[a], "gene_b": np.asarray(genes)[b],
                          "combined_score": rng.integers(150, 1000, n_links)})
    pa, pb = rng.integers(0, len(panel_genes), 600), rng.integers(0, len(panel_genes), 600)
    panel_links = pd.DataFrame({"gene_a": np.asarray(panel_genes)[pa], "gene_b": np.asarray(panel_genes)[pb],
                                "combined_score": rng.integers(150, 1000, 600)})
    links = pd.concat([links, panel_links], ignore_index=True)
    y = rng.normal(size=(n_cells, N_PROTEINS)).astype(np.float32)
    split = rng.choice(["train", "val", "test"], size=n_cells, p=[0.7, 0.15, 0.15])
    task = ProteinTask(x=x, y=y, split=split, cells=np.arange(n_cells).astype(str), genes=np.asarray(genes),
                       proteins=np.asarray(proteins), batch=np.full(n_cells, ""))
    return task, links


def gene_init_comparison(max_dense_bytes: float, rng: np.random.Generator) -> None:
    """Time and peak traced memory of the sparse Xᵀ·h against the reference's dense product, on a GEX2ADT-wide
    X (13,953 genes, 9.6 % non-zero) with as many cells as a dense float32 copy within ``max_dense_bytes``
    allows, and h the (cells, 128) SVD features."""
    rows = int(max_dense_bytes // (4 * FULL_GENES))
    x = synthetic_rna(rows, FULL_GENES, rng)
    h = rng.normal(size=(rows, 128)).astype(np.float32)
    results = {}
    for name in ("sparse", "dense"):
        tracemalloc.start()
        t0 = time.perf_counter()
        if name == "sparse":
            out = gene_features(x, h)
        else:
            out = (x.toarray().T @ h).astype(np.float32)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        results[name] = (seconds, peak, out)
    (ts, ms, sparse_out), (td, md, dense_out) = results["sparse"], results["dense"]
    diff = np.abs(sparse_out - dense_out).max() / np.abs(dense_out).max()
    print(f"gene init, {rows} cells x {FULL_GENES} genes ({x.nnz} non-zeros), d 128: sparse {ts:.3f} s, "
          f"{ms:.0f} MiB traced; dense as the reference {td:.3f} s, {md:.0f} MiB traced; dense/sparse: time "
          f"{td / ts:.1f}x, memory {md / ms:.1f}x; max relative difference {diff:.1e}")
    print(f"(the reference's dense X at GEX2ADT scale, {FULL_CELLS} x {FULL_GENES}, is "
          f"{FULL_CELLS * FULL_GENES * 4 / 1e9:.1f} GB float32; CITE's 71k x 22k is "
          f"{70_988 * 22_050 * 4 / 1e9:.1f} GB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--pe", default="rw", choices=["rw", "lap", "none"])
    parser.add_argument("--dense-mb", type=float, default=400.0, help="size cap of the dense gene-init baseline")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    args = parser.parse_args()
    torch_job(args.threads)  # as the pipeline's training jobs: threads, denormals flushed
    threadpool_limits(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    n_cells, n_genes = max(200, round(FULL_CELLS * args.scale)), max(100, round(FULL_GENES * args.scale))
    t0 = time.perf_counter()
    task, links = synthetic(n_cells, n_genes, rng)
    print(f"data: {n_cells} cells x {n_genes} genes, {task.x.nnz} cell-gene edges, {len(links)} STRING rows "
          f"({time.perf_counter() - t0:.1f} s)")
    settings = load_settings({
        "model": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads},
        "encodings": {"pe": args.pe},
        "train": {"max_epochs": args.epochs, "patience": args.epochs + 1, "log_every": 1,
                  "batch_size": max(2, round(BATCH * args.scale))},
    })
    t0 = time.perf_counter()
    prepared = prepare_graph(task.x, task.genes, task.proteins, settings, edges=links, device=device)
    rel = prepared.relations
    print(f"prepare (relations, SVD-{prepared.cell_features.shape[1]}, gene init, {args.pe} PE): "
          f"{time.perf_counter() - t0:.1f} s; gene-gene {rel.gene_gene.nnz}, protein-protein "
          f"{rel.protein_protein.nnz}, gene-protein {rel.gene_protein.nnz} edges; peak RSS {peak_rss_mb():.0f} MiB")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = train_scmoformer(task, settings, seed=0, prepared=prepared, device=device)
    seconds = np.diff(np.concatenate([[0.0], result.history["seconds"].to_numpy()]))
    steady = seconds[1:].mean() if len(seconds) > 1 else seconds[0]
    print(f"parameters: {result.n_parameters}; seconds per epoch (train + full-graph eval): "
          f"{', '.join(f'{s:.2f}' for s in seconds)}; mean after the first {steady:.2f}")
    print(f"peak RSS {peak_rss_mb():.0f} MiB", end="")
    if device.type == "cuda":
        print(f"; CUDA max allocated {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB", end="")
    print()
    gene_init_comparison(args.dense_mb * 2**20, rng)


if __name__ == "__main__":
    main()
