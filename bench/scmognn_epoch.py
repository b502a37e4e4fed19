#!/usr/bin/env python
"""Seconds per scMoGNN training epoch on a synthetic GEX2ADT-shaped graph, and the SpMM ratio behind it.

The full GEX2ADT task (spec §2.3): 66,175 cells x 13,953 genes with 9.6 % non-zero (~89 M cell-feature edges
per direction), 134 proteins, 50 hallmark sets. ``--scale s`` keeps the density and uses s x the cells and
sqrt(s) x the genes (edges scale as s^1.5; the default 0.02 gives 1,324 cells x 1,973 genes, ~250 k edges, about
the NeurIPS starter's size). Gene sets: 50 random sets of 32-200 genes (scaled by sqrt(s)), cosine weights with
threshold 0.1 as the model computes them.

In one process it times
1. one forward + backward of A·X (A = the cells x genes matrix, X = genes x hidden) through PyTorch's built-in
   sparse autograd (``torch.sparse.mm`` on a COO tensor) and through the cached-transpose SpMM of
   :mod:`genegraph.models.layers.sparse`, and prints their ratio;
2. ``--epochs`` full-batch training epochs of scMoGNN (the training code itself, transductive, default
   settings unless overridden: hidden 256, 4 layers, pathway on), after one warm-up epoch;
and prints seconds per epoch, peak memory (process RSS; on CUDA also ``torch.cuda.max_memory_allocated``) and
the parameter count.

    python bench/scmognn_epoch.py                        # CPU, scale 0.02
    python bench/scmognn_epoch.py --scale 1 --device cuda --epochs 5
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from genegraph.device import torch_job

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))  # the library, also when it is not installed

FULL_CELLS, FULL_GENES, DENSITY, PROTEINS = 66175, 13953, 0.096, 134


def synthetic_task(scale: float, seed: int):
    """(ProteinTask, gene sets) shaped like GEX2ADT at ``scale``."""
    from genegraph.models.protein_task import ProteinTask

    rng = np.random.default_rng(seed)
    n, g = max(50, int(FULL_CELLS * scale)), max(50, int(FULL_GENES * np.sqrt(scale)))
    x = sp.random(n, g, density=DENSITY, format="csr", dtype=np.float32, random_state=seed,
                  data_rvs=lambda k: np.log1p(rng.gamma(1.0, 2.0, k)).astype(np.float32) + 0.1)
    y = rng.gamma(2.0, 0.5, (n, PROTEINS)).astype(np.float32)
    split = np.full(n, "train", dtype=object)
    split[rng.permutation(n)[: n // 6]] = "test"
    train = np.flatnonzero(split == "train")
    split[train[: int(len(train) * 0.15)]] = "val"
    genes = np.array([f"g{i}" for i in range(g)])
    shrink = min(1.0, np.sqrt(scale) * 7)
    sizes = np.maximum(2, (rng.integers(32, 201, 50) * shrink).astype(int))
    sets = {f"set{i}": list(rng.choice(genes, k, replace=False)) for i, k in enumerate(sizes)}
    batch = np.where(np.arange(n) < n // 2, "b1", "b2")
    task = ProteinTask(x=x, y=y, split=split.astype(str), cells=np.array([f"c{i}" for i in range(n)]),
                       genes=genes, proteins=np.array([f"p{i}" for i in range(PROTEINS)]), batch=batch)
    return task, sets


def time_spmm(x: sp.csr_matrix, hidden: int, device: torch.device, reps: int) -> dict[str, float]:
    """Milliseconds of one forward + backward of A·X, built-in autograd vs the cached-transpose SpMM."""
    from genegraph.models.layers.sparse import SparseAdjacency, builtin_spmm, spmm

    adj = SparseAdjacency.from_scipy(x, device=device)
    h = torch.randn(x.shape[1], hidden, device=device, requires_grad=True)
    out = {}
    for name, fn in (("builtin", builtin_spmm), ("cached_transpose", spmm)):
        for i in range(reps + 1):
            if i == 1:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            h.grad = None
            fn(adj, h).square().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[name] = (time.perf_counter() - start) / reps
    return out


def main() -> None:
    from genegraph.models.protein_task import load_settings
    from genegraph.models.scmognn import ScMoGNNSettings, train_predict

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--spmm-reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch_job(args.threads)  # as the pipeline's training jobs: threads, denormals flushed
    device = torch.device(args.device)

    t0 = time.perf_counter()
    task, sets = synthetic_task(args.scale, args.seed)
    build_s = time.perf_counter() - t0
    spmm_s = time_spmm(task.x, args.hidden, device, args.spmm_reps)

    settings = load_settings(ScMoGNNSettings, "scmognn", {"hidden": args.hidden, "epochs": args.epochs + 1,
                                                         "log_every": 10**6, "restore_best": False})
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    res = train_predict(task, args.seed, settings, sets, device)
    total_s = time.perf_counter() - t0
    per_epoch = float(np.diff(res.history["seconds"].to_numpy()).mean()) if args.epochs else float("nan")
    report = {
        "device": str(device), "scale": args.scale, "cells": task.x.shape[0], "genes": task.x.shape[1],
        "cell_feature_edges": int(task.x.nnz), "pathway_edges": res.n_pathway_edges, "hidden": args.hidden,
        "parameters": sum(p.numel() for p in res.model.parameters()),
        "data_build_s": round(build_s, 2),
        "spmm_fwd_bwd_ms": {k: round(v * 1e3, 3) for k, v in spmm_s.items()},
        "spmm_speedup_builtin_over_cached": round(spmm_s["builtin"] / spmm_s["cached_transpose"], 2),
        "s_per_epoch": round(per_epoch, 4), "epochs_timed": args.epochs,
        "train_predict_total_s": round(total_s, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == "cuda":
        report["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
