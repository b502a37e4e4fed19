#!/usr/bin/env python
"""Seconds per MuSe-GNN training epoch on a synthetic panel shaped like the paper's heart run.

The panel: 15 graphs x 1000 genes with the cell counts (3,698-57,867; 410,048 in all) and edge densities
(0.45-0.82) of the heart datasets in spec §1.4, residual-like Gaussian features, one share key, genes drawn
from a 3,000-gene pool (so pairs share ~1/3 of their genes). ``--scale 0.1`` divides the cell counts by 10
(the CPU version); the number of genes stays 1000 (the row-MLP decoder is tied to it).

It times :func:`genegraph.models.musegnn.train.run_epoch` -- the training code itself -- after ``--warmup``
epochs (all pair tables are built before timing), and prints seconds per epoch, peak memory (CPU: the
process's peak RSS; CUDA: max allocated) and the parameter count next to the closed form of spec §2.2.

    python bench/train_epoch.py                                   # 1/10 scale on the CPU
    python bench/train_epoch.py --scale 1 --device cuda --amp bf16 --epochs 20
    python bench/train_epoch.py --scale 1 --device cpu --epochs 1 --warmup 0 --max-steps 3

``--max-steps k`` times only the first k steps of an epoch and extrapolates to 15 steps (said so in the
output). Reference: the paper reports 3.64 s per epoch for heart on one A100; the project's goal is
<= 0.36 s on an H100.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from genegraph.device import resolve_device, torch_job  # noqa: E402
from genegraph.models.musegnn.model import musegnn_parameter_count  # noqa: E402
from genegraph.models.musegnn.train import (  # noqa: E402
    TrainSettings,
    init_state,
    make_graph,
    pair_tensors,
    run_epoch,
    train_settings,
    train_step,
)

#: spec §1.4: cells and edge density of the 15 heart graphs (D4 ... G19).
HEART_CELLS = [26997, 20506, 31455, 57867, 42226, 30963, 12443, 23195, 14958, 22449, 24889, 35064, 26004,
               37334, 3698]
HEART_DENSITY = [.791, .611, .709, .812, .824, .729, .601, .631, .727, .704, .663, .775, .661, .718, .446]
PAPER_S_PER_EPOCH = 3.64
GOAL_S_PER_EPOCH = 0.36


def synthetic_panel(scale: float, n_genes: int, cfg: TrainSettings, device: torch.device, seed: int = 0):
    """The 15 graphs on ``device``: (N, C) standard-normal features, symmetric adjacency with self-loops."""
    rng = np.random.default_rng(seed)
    pool = np.array([f"G{k}" for k in range(3 * n_genes)])
    graphs = []
    for k, (cells, density) in enumerate(zip(HEART_CELLS, HEART_DENSITY)):
        c = max(1, round(cells * scale))
        genes = np.sort(rng.choice(pool, n_genes, replace=False))
        upper = np.triu(rng.random((n_genes, n_genes)) < density, 1)
        adj = sp.csr_matrix(upper | upper.T | np.eye(n_genes, dtype=bool))
        x = rng.standard_normal((n_genes, c), dtype=np.float32)
        graphs.append(make_graph(f"heart_{k}", "scrna", "heart", "human", genes, x, adj, {}, cfg, device))
        del x
    return graphs


def peak_memory_gb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9, "CUDA max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "CPU peak RSS"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1, help="fraction of the heart cell counts (default 0.1)")
    ap.add_argument("--genes", type=int, default=1000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", choices=["off", "bf16"], default=None, help="default: bf16 on CUDA, off on CPU")
    ap.add_argument("--attn-impl", choices=["auto", "dense", "pyg"], default="auto")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs")
    ap.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    ap.add_argument("--max-steps", type=int, default=None, help="time only this many steps per epoch")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    torch_job(args.threads or torch.get_num_threads())  # as the pipeline's training jobs (denormals flushed)
    amp = args.amp or ("bf16" if device.type == "cuda" else "off")
    cfg = train_settings({"amp": amp, "model": {"attn_impl": args.attn_impl, "edge_types": []}})
    t0 = time.perf_counter()
    graphs = synthetic_panel(args.scale, args.genes, cfg, device)
    state = init_state(graphs, cfg, 0, device)
    for i in range(len(graphs)):
        for j in range(len(graphs)):
            if i != j:
                pair_tensors(state, i, j)
    setup_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in state.model.parameters())
    formula = musegnn_parameter_count([g.n_cells for g in graphs], [g.n_genes for g in graphs], 1)
    cells = sum(g.n_cells for g in graphs)
    print(f"panel: 15 graphs x {args.genes} genes, {cells:,} cells (scale {args.scale}), "
          f"features {4 * args.genes * cells / 1e9:.2f} GB float32; setup {setup_s:.1f} s")
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"{torch.get_num_threads()} threads), amp {amp}, attention {'dense' if graphs[0].inputs.dense else 'pyg'}")
    print(f"parameters: {n_params:,} (spec §2.2 formula: {formula:,}; "
          f"{'equal' if n_params == formula else 'DIFFERENT'})")

    steps = args.max_steps or len(graphs)

    def one_epoch() -> None:
        if args.max_steps:
            state.model.train()
            losses = [train_step(state, i) for i in range(steps)]
            torch.stack(losses).cpu()
        else:
            run_epoch(state)

    for _ in range(args.warmup):
        one_epoch()
    sync(device)
    times = []
    for _ in range(args.epochs):
        t = time.perf_counter()
        one_epoch()
        sync(device)
        times.append(time.perf_counter() - t)
    per_epoch = [t * len(graphs) / steps for t in times]
    mem, mem_kind = peak_memory_gb(device)
    note = f" (extrapolated from {steps} of {len(graphs)} steps)" if args.max_steps else ""
    print(f"seconds per epoch: mean {np.mean(per_epoch):.3f}, min {np.min(per_epoch):.3f} over {len(times)} "
          f"epochs{note}")
    print(f"peak memory: {mem:.2f} GB ({mem_kind})")
    print(f"paper: {PAPER_S_PER_EPOCH} s/epoch on one A100 at full scale; goal <= {GOAL_S_PER_EPOCH} s on an H100")
    result = {"scale": args.scale, "genes": args.genes, "cells": cells, "device": str(device), "amp": amp,
              "threads": torch.get_num_threads(), "s_per_epoch": per_epoch, "steps_timed": steps,
              "peak_memory_gb": mem, "memory_kind": mem_kind, "n_parameters": n_params,
              "n_parameters_formula": formula, "setup_s": setup_s}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
