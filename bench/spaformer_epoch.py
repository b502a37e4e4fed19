#!/usr/bin/env python
"""Seconds per SpaFormer training epoch on a synthetic panel shaped like the paper's Liver CosMx run.

The panel: 300,000 cells x 1000 genes in sections (FOVs) of ~1,250 cells (240 sections), CosMx-like sparse
Poisson counts (~250 counts per cell) with a spatial pattern, cells uniform on a 4,000 px square per
section, the Liver radius graph (150 px). ``--scale`` scales the number of sections (the section size and
the gene panel stay), so ``--scale 0.02`` is 5 sections / 6,000 cells.

It times :func:`genegraph.models.spaformer.train.fit` -- the training code itself, one AdamW step per
section per epoch with bi-level masking and the default conditional PE -- for ``--epochs`` epochs after
``--warmup`` epochs, and prints seconds per epoch, peak memory (CPU: the process's peak RSS; CUDA: max
allocated) and the parameter count, for FAVOR+ attention (the model) and, in the same process, exact
softmax attention (the baseline; skipped when its n x n score tensors would exceed ``--softmax-max-gb``).

    python bench/spaformer_epoch.py                              # CPU, scale 0.02
    python bench/spaformer_epoch.py --scale 1 --device cuda --epochs 5
    python bench/spaformer_epoch.py --section-cells 5000 --kinds performer,flow,softmax

Reference (Table 4.4): SpaFormer on Liver (305k cells) took 0.068 h in all on one RTX 8000, 1.7 GB peak GPU
memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from genegraph.device import torch_job

try:
    from genegraph.models.spaformer import imputation_settings, spatial_input
    from genegraph.models.spaformer.train import fit
except ImportError:  # genegraph not installed: use this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
    from genegraph.models.spaformer import imputation_settings, spatial_input
    from genegraph.models.spaformer.train import fit

LIVER_CELLS = 300_000
FOV_PX = 4000.0


def synthetic_panel(scale: float, section_cells: int, n_genes: int, seed: int = 0) -> ad.AnnData:
    """CosMx-like counts: cells x genes CSR, obs['fov'], obsm['spatial'] (px)."""
    rng = np.random.default_rng(seed)
    n_sections = max(1, round(LIVER_CELLS * scale / section_cells))
    base = rng.gamma(0.5, 1.0, n_genes)
    base *= 250 / base.sum()
    blocks, xy, fov = [], [], []
    for s in range(n_sections):
        p = rng.uniform(0, FOV_PX, (section_cells, 2))
        pattern = np.exp(np.sin(p[:, :1] / 600 + rng.normal(0, 1, (1, n_genes))))
        blocks.append(sp.csr_matrix(rng.poisson(base * pattern / pattern.mean()).astype(np.int32)))
        xy.append(p)
        fov.append(np.full(section_cells, f"fov{s}"))
    x = sp.vstack(blocks, format="csr")
    empty = np.asarray(x.sum(axis=1)).ravel() == 0
    x[np.flatnonzero(empty), 0] = 1
    adata = ad.AnnData(x)
    adata.obsm["spatial"] = np.vstack(xy)
    adata.obs["fov"] = np.concatenate(fov)
    return adata


def peak_memory_gb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9, "CUDA max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "CPU peak RSS"


def time_kind(adata: ad.AnnData, kind: str, epochs: int, warmup: int, device: torch.device) -> dict:
    s = imputation_settings({
        "model": {"encoder": kind},
        "spatial": {"radius": 150.0},
        "train": {"max_epochs": warmup + epochs, "validation": "none", "log_every": 10_000},
    })
    inp = spatial_input(adata, adata.X, s.normalise.scale, s.spatial)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fitted = fit(inp, s, 0, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - t0
    secs = [r["seconds"] for r in fitted.history]
    start = secs[warmup - 1] if warmup > 0 else secs[0] - (secs[1] - secs[0] if len(secs) > 1 else secs[0])
    per_epoch = (secs[-1] - start) / epochs
    mem, what = peak_memory_gb(device)
    return {"kind": kind, "s_per_epoch": per_epoch, "s_per_step": per_epoch / len(inp.sections),
            "setup_and_total_s": total, "peak_memory_gb": mem, "memory": what,
            "parameters": fitted.n_parameters}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.02, help="fraction of Liver's 300k cells (default 0.02)")
    ap.add_argument("--section-cells", type=int, default=1250, help="cells per section (default 1250)")
    ap.add_argument("--genes", type=int, default=1000, help="gene panel size (default 1000)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed epochs first (default 1)")
    ap.add_argument("--kinds", default="performer,softmax", help="attention kinds, the first is the model")
    ap.add_argument("--softmax-max-gb", type=float, default=4.0,
                    help="skip softmax when 2 layers x heads x n^2 float32 scores (+ grads) exceed this")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args(argv)
    torch_job(args.threads)  # as the pipeline's training jobs: threads, denormals flushed
    device = torch.device(args.device)
    t0 = time.perf_counter()
    adata = synthetic_panel(args.scale, args.section_cells, args.genes)
    print(f"panel: {adata.n_obs} cells x {adata.n_vars} genes, {adata.obs['fov'].nunique()} sections of "
          f"{args.section_cells} cells ({time.perf_counter() - t0:.1f} s to build); device {device}")
    results = []
    for kind in args.kinds.split(","):
        score_gb = 2 * 8 * args.section_cells**2 * 4 * 3 / 1e9
        if kind == "softmax" and score_gb > args.softmax_max_gb:
            print(f"{kind}: skipped (~{score_gb:.1f} GB of score tensors per section > --softmax-max-gb)")
            continue
        r = time_kind(adata, kind, args.epochs, args.warmup, device)
        results.append(r)
        print(f"{kind:>9}: {r['s_per_epoch']:.3f} s/epoch ({r['s_per_step'] * 1e3:.1f} ms/section step), "
              f"{r['memory']} {r['peak_memory_gb']:.2f} GB (process so far), {r['parameters']:,} parameters")
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            print(f"{r['kind']} / {base['kind']} time per epoch: {r['s_per_epoch'] / base['s_per_epoch']:.2f}x")
    full = LIVER_CELLS / args.section_cells
    if results:
        print(f"extrapolated to Liver ({full:.0f} sections): {results[0]['s_per_step'] * full:.1f} s/epoch "
              f"({results[0]['kind']})")
    return {"args": vars(args), "results": results}


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, default=str))
