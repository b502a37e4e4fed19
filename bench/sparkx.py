#!/usr/bin/env python
"""Benchmark genegraph's SPARK-X against the measured speed and memory of the original R code.

Generates seeded negative-binomial counts (spots x genes, about 15 % non-zero, written straight into a CSR
matrix with float32 values and int32 indices, as AnnData stores them) with uniformly random 2-D coordinates;
one gene in ten has a spatial pattern (its mean is 4x higher inside a disc). Runs
:func:`genegraph.stats.sparkx.sparkx` on them and prints wall-clock seconds, peak RSS and the ratios against the
reference figures of ``shared/specs/cscore_sparkx.md`` §4 (R 4.2.2, reference BLAS, ``numCores = 1``,
``option = "mixture"``, on a 2-core x86 machine; "elapsed" there is the library call only, peak RSS the whole
R process including the simulated data).

    python bench/sparkx.py                              # 50,000 x 1,000 and 200,000 x 1,000
    python bench/sparkx.py --shapes 50000x1000 --repeat 3 --threads 1
    python bench/sparkx.py --shapes 50000x1000,200000x1000,bc     # bc: the real BC layer-2 reference data

Each shape runs in its own subprocess, so its peak RSS (``resource.getrusage``, whole process: interpreter,
libraries, generated data and the call) is its own. A warm-up call on a tiny input loads numba's compiled
code first; compilation, if the cache is cold, is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
SHARED = Path(os.environ.get("GENEGRAPH_SHARED", REPO.parent / "shared")).resolve()

import numba  # noqa: E402

#: (spots, genes) -> (seconds, peak RSS GB) of R sparkx(option = "mixture"), shared/specs/cscore_sparkx.md §4.
R_FIGURES = {(50000, 1000): (8.3, 0.78), (200000, 1000): (39.5, 2.4)}
#: R on the real BC layer-2 data (251 x 14,789): 17.6-23.6 s; the midpoint is used for the ratio.
R_BC = (20.6, None)

DEFAULT_SHAPES = "50000x1000,200000x1000"


@numba.njit(cache=True)
def _fill(u, row0, level, spatial, cdf, indptr, indices, data, pos):
    for r in range(u.shape[0]):
        i = row0 + r
        lv = level[i]
        for j in range(u.shape[1]):
            t = cdf[j, lv if spatial[j] else 0]
            x = u[r, j]
            if x < t[0]:
                continue
            k = 1
            while k < t.shape[0] - 1 and x >= t[k]:
                k += 1
            if pos >= indices.shape[0]:
                return pos, r  # out of room: resume at this row after growing
            indices[pos] = j
            data[pos] = k
            pos += 1
        indptr[i + 1] = pos
    return pos, u.shape[0]



def simulate(n_spots: int, n_genes: int, seed: int = 1, chunk: int = 4096):
    """Seeded NB counts (spots x genes CSR, float32 values, int32 indices) and random 2-D coordinates.

    Gene means are log-normal around 0.14 with NB size 0.5-5 (about 15 % non-zero overall); one gene in ten is
    spatial, with a 4x mean inside a disc of radius 0.3 around the centre of the unit square. Values are drawn
    by inverting each gene's NB distribution function at uniform variates, chunk by chunk, into preallocated
    CSR arrays (no dense spots x genes array is ever made).
    """
    import numpy as np
    import scipy.sparse as sp
    import scipy.stats

    rng = np.random.default_rng(seed)
    coords = rng.uniform(0.0, 1.0, (n_spots, 2))
    level = (((coords[:, 0] - 0.5) ** 2 + (coords[:, 1] - 0.5) ** 2) < 0.09).astype(np.int64)
    mean = np.exp(rng.normal(np.log(0.14), 0.6, n_genes))
    size = rng.uniform(0.5, 5.0, n_genes)
    spatial = np.zeros(n_genes, dtype=np.bool_)
    spatial[rng.choice(n_genes, n_genes // 10, replace=False)] = True
    kmax = 256
    ks = np.arange(kmax)
    cdf = np.empty((n_genes, 2, kmax))
    for lv, fold in enumerate((1.0, 4.0)):
        mu = mean * fold
        cdf[:, lv, :] = scipy.stats.nbinom.cdf(ks[None, :], size[:, None], (size / (size + mu))[:, None])
    cdf[:, :, -1] = 1.0
    p_nz = np.where(spatial, 1 - (cdf[:, 0, 0] * (1 - level.mean()) + cdf[:, 1, 0] * level.mean()), 1 - cdf[:, 0, 0])
    cap = int(p_nz.sum() * n_spots * 1.02) + 4096
    indptr = np.zeros(n_spots + 1, dtype=np.int64)
    indices = np.empty(cap, dtype=np.int32)
    data = np.empty(cap, dtype=np.float32)
    pos = 0
    for lo in range(0, n_spots, chunk):
        u = rng.random((min(chunk, n_spots - lo), n_genes))
        done = 0
        while done < u.shape[0]:
            pos, r = _fill(u[done:], lo + done, level, spatial, cdf, indptr, indices, data, pos)
            if done + r < u.shape[0]:  # grow by 10 % and resume at the unfinished row
                pos = int(indptr[lo + done + r])
                cap = int(cap * 1.1) + 4096
                indices = np.resize(indices, cap)
                data = np.resize(data, cap)
            done += r
        del u
    indptr_out = indptr.astype(np.int32) if pos < 2**31 else indptr
    counts = sp.csr_matrix((data[:pos], indices[:pos], indptr_out), shape=(n_spots, n_genes))
    return counts, coords, int(spatial.sum())


def _read_bc():
    import gzip

    import pandas as pd
    import scipy.io
    import scipy.sparse as sp

    ref = SHARED / "reference" / "sparkx_bc_layer2"
    with gzip.open(ref / "counts.mtx.gz") as fh:
        counts = sp.csr_matrix(scipy.io.mmread(fh).T)
    genes = (ref / "genes.txt").read_text().splitlines()
    cells = (ref / "cells.txt").read_text().splitlines()
    xy = pd.read_csv(ref / "coords.csv", keep_default_na=False).set_index("cell").loc[cells, ["x", "y"]]
    return counts, xy.to_numpy(), genes


def worker(args: argparse.Namespace) -> None:
    import numba
    import numpy as np
    from genegraph.stats.sparkx import sparkx

    # warm-up: load (or compile) numba's code for both paths on a tiny input
    rng = np.random.default_rng(0)
    tiny = rng.poisson(1.0, (60, 5)).astype(np.float32)
    sparkx(tiny, rng.uniform(size=(60, 2)))

    t0 = time.perf_counter()
    if args.worker == "bc":
        counts, coords, genes = _read_bc()
        n_svg = None
    else:
        n, g = (int(v) for v in args.worker.split("x"))
        counts, coords, n_svg = simulate(n, g, seed=args.seed)
        genes = None
    gen_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = sparkx(counts, coords, genes)
        times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "shape": args.worker,
                "spots": counts.shape[0],
                "genes": counts.shape[1],
                "nnz_frac": counts.nnz / (counts.shape[0] * counts.shape[1]),
                "input_mb": (counts.data.nbytes + counts.indices.nbytes + counts.indptr.nbytes) / 2**20,
                "gen_s": gen_s,
                "seconds": min(times),
                "all_seconds": times,
                "peak_mb": peak_mb,
                "threads": numba.get_num_threads(),
                "n_sig": int((res["adjusted_pval"] < 0.05).sum()),
                "n_svg": n_svg,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated SPOTSxGENES (or 'bc')")
    ap.add_argument("--repeat", type=int, default=1, help="timed calls per shape (the fastest is reported)")
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    env = os.environ.copy()
    if args.threads:
        env["NUMBA_NUM_THREADS"] = str(args.threads)
    rows = []
    for shape in args.shapes.split(","):
        cmd = [sys.executable, __file__, "--worker", shape, "--repeat", str(args.repeat), "--seed", str(args.seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"worker for {shape} failed ({proc.returncode})")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    print(f"SPARK-X (option 'mixture', 11 kernels), genegraph vs R SPARK 1.1.1; CPU threads: {rows[0]['threads']}")
    head = (
        f"{'shape':>16} {'nnz':>6} {'input MB':>9} {'seconds':>8} {'R s':>6} {'speed-up':>8} "
        f"{'peak MB':>8} {'R MB':>6} {'RSS/R':>6} {'BY<0.05':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        key = (r["spots"], r["genes"])
        r_s, r_gb = R_BC if r["shape"] == "bc" else R_FIGURES.get(key, (None, None))
        speed = f"{r_s / r['seconds']:.1f}x" if r_s else "-"
        rss = f"{r['peak_mb'] / (r_gb * 1024):.2f}" if r_gb else "-"
        label = f"{r['spots']:,}x{r['genes']:,}"
        sig = f"{r['n_sig']}" + (f"/{r['n_svg']}" if r["n_svg"] is not None else "")
        print(
            f"{label:>16} {r['nnz_frac'] * 100:5.1f}% {r['input_mb']:9.0f} {r['seconds']:8.2f} "
            f"{(f'{r_s:.1f}' if r_s else '-'):>6} {speed:>8} {r['peak_mb']:8.0f} "
            f"{(f'{r_gb * 1024:.0f}' if r_gb else '-'):>6} {rss:>6} {sig:>8}"
        )
    print(
        "seconds: the sparkx() call (fastest of --repeat); peak MB: ru_maxrss of the whole worker process "
        "(interpreter, libraries, generated data, call). R: 2-core x86, R 4.2.2, reference BLAS, 1 core "
        "(BC: 17.6-23.6 s, midpoint used). BY<0.05: significant genes / simulated spatial genes."
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
