#!/usr/bin/env python
"""Benchmark genegraph's CS-CORE against the measured speed of the original R code and the upstream Python port.

Generates seeded negative-binomial counts (cells x genes, sparse int32, per-cell depth over a larger
"all genes" total), runs :func:`genegraph.stats.cscore.cscore` on them and prints a table of wall-clock seconds,
peak RSS and the speed ratio against the reference timings of ``shared/specs/cscore_sparkx.md`` §4 (R 4.2.2
with reference BLAS, single-threaded, on a 2-core x86 machine; upstream CS-CORE_python with OpenBLAS).
Each shape runs in its own subprocess so that its peak RSS is its own.

    python bench/cscore.py                                  # 5,000 x 1,000 and 20,000 x 500 on the CPU
    python bench/cscore.py --threads 2 --repeat 3
    python bench/cscore.py --device cuda --shapes 5000x1000,20000x500,100000x2000
    python bench/cscore.py --dtype float32

Peak RSS is the process's high-water mark over the call (reset just before it via /proc/self/clear_refs where
the kernel allows it), so it includes the generated input (as the R figures include the simulated data).
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

#: (cells, genes) -> seconds, from shared/specs/cscore_sparkx.md §4.
R_RCPP = {(5000, 500): 7.6, (5000, 1000): 27.6, (20000, 500): 32.6, (2000, 500): 2.4}
R_BASE = {(5000, 500): 4.4, (5000, 1000): 13.2, (20000, 500): 14.8, (2000, 500): 2.1}
PY_PORT = {(5000, 500): 0.86, (5000, 1000): 3.5, (20000, 500): 2.8}
R_RSS_GB = {(5000, 500): 0.50, (5000, 1000): 0.75, (20000, 500): 1.2, (2000, 500): 0.34}

DEFAULT_SHAPES = "5000x1000,20000x500"


def simulate(n_cells: int, n_genes: int, seed: int = 1, chunk: int = 2000):
    """Seeded NB counts (cells x genes, CSR int32) and the per-cell depth over all genes.

    Depth: log-normal around 5,000 UMIs; the simulated genes take ~30 % of it with log-normal relative
    abundances (so they are the highly expressed genes CS-CORE is meant for); NB size 0.5-10 per gene.
    """
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    depth = np.round(np.exp(rng.normal(np.log(5000.0), 0.5, n_cells)))
    rel = np.exp(rng.normal(0.0, 1.0, n_genes))
    rel *= 0.3 / rel.sum()
    size = np.exp(rng.uniform(np.log(0.5), np.log(10.0), n_genes))
    parts = []
    for lo in range(0, n_cells, chunk):
        mean = depth[lo:lo + chunk, None] * rel[None, :]
        x = rng.negative_binomial(size[None, :], size[None, :] / (size[None, :] + mean)).astype(np.int32)
        parts.append(sp.csr_matrix(x))
    counts = sp.vstack(parts, format="csr")
    # the depth counts all genes: the simulated ones plus the rest of the transcriptome
    other = rng.poisson(0.7 * depth)
    total_counts = np.asarray(counts.sum(axis=1)).ravel() + other
    return counts, total_counts.astype(np.float64)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _rss_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from genegraph.stats.cscore import cscore, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    n, p = (int(v) for v in args.worker.split("x"))
    t0 = time.perf_counter()
    counts, depth = simulate(n, p, seed=args.seed)
    gen_s = time.perf_counter() - t0
    dev = resolve_device(args.device)
    # warm the library (imports, thread pools, CUDA context) on a tiny input so it is not timed
    small, sdepth = simulate(200, 20, seed=args.seed + 1)
    cscore(small, sdepth, device=dev, dtype=args.dtype)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base_mb = _rss_mb("VmRSS")
    reset = _reset_peak()
    times, cpu_times = [], []
    res = None
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        res = cscore(counts, depth, device=dev, dtype=args.dtype)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
    peak_mb = _rss_mb("VmHWM") if reset else None
    if peak_mb is None:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {
        "n": n, "p": p, "device": str(dev), "dtype": args.dtype, "threads": torch.get_num_threads(),
        "times": times, "cpu_times": cpu_times, "gen_s": gen_s, "base_mb": base_mb, "peak_mb": peak_mb,
        "peak_is_call_only": reset,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "n_passes": res.n_passes, "nnz_frac": counts.nnz / (n * p),
        "edges": int(np.count_nonzero(res.p_value < 0.005)),
    }
    print("RESULT " + json.dumps(out))


def _ratio(ref: dict, key: tuple[int, int], secs: float) -> str:
    return f"{ref[key] / secs:7.1f}x" if key in ref else "      -"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--shapes", default=None,
                    help=f"comma-separated CELLSxGENES (default {DEFAULT_SHAPES}; with --device cuda also 100000x2000)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per shape (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    shapes = args.shapes or (DEFAULT_SHAPES + (",100000x2000" if args.device == "cuda" else ""))
    rows = []
    for shape in shapes.split(","):
        shape = shape.strip().lower()
        cmd = [sys.executable, __file__, "--worker", shape, "--device", args.device, "--dtype", args.dtype,
               "--repeat", str(args.repeat), "--seed", str(args.seed)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            print(f"{shape}: failed (rc {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        r = json.loads(line[0][len("RESULT "):])
        rows.append(r)
        print(f"  done {shape}: best {min(r['times']):.3f} s", file=sys.stderr)

    print()
    print("CS-CORE benchmark (genegraph, torch) vs the original R code (2-core x86, R 4.2.2, reference BLAS,")
    print("single-threaded) and the upstream Python port (NumPy/OpenBLAS); reference times from the spec §4.")
    print()
    hdr = (f"{'cells x genes':>15} {'device':>6} {'dtype':>7} {'thr':>3} {'passes':>6} {'first s':>8} "
           f"{'best s':>8} {'CPU s':>6} {'RSS0 MB':>7} {'peak RSS MB':>11} {'GPU MB':>7} {'R Rcpp s':>8} "
           f"{'vs Rcpp':>8} {'vs R base':>9} {'vs py port':>10}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        key = (r["n"], r["p"])
        best = min(r["times"])
        gpu = f"{r['gpu_peak_mb']:7.0f}" if r["gpu_peak_mb"] is not None else "      -"
        rcpp = f"{R_RCPP[key]:8.1f}" if key in R_RCPP else "       -"
        print(f"{r['n']:>7} x {r['p']:<5} {r['device']:>6} {r['dtype']:>7} {r['threads']:>3} {r['n_passes']:>6} "
              f"{r['times'][0]:8.3f} {best:8.3f} {r['cpu_times'][r['times'].index(best)]:6.2f} "
              f"{r['base_mb'] or 0:7.0f} {r['peak_mb']:11.0f} {gpu} {rcpp} {_ratio(R_RCPP, key, best):>8} "
              f"{_ratio(R_BASE, key, best):>9} {_ratio(PY_PORT, key, best):>10}")
    print()
    print("Ratios use the best of the timed runs (one untimed warm-up call on a tiny input first). CPU s is the")
    print("process CPU time (all threads) of that run: on a busy machine it shows the work apart from waiting.")
    print("RSS0 is the process before the calls (Python, torch, the generated input); peak RSS is the whole process")
    print("during the calls, input included (R's peak RSS: 5k x 500 0.50 GB, 5k x 1k 0.75 GB, 20k x 500 1.2 GB).")
    if rows and not all(r["peak_is_call_only"] for r in rows):
        print("(peak RSS could not be reset before the call here, so it also covers data generation.)")
    goal = [r for r in rows if (r["n"], r["p"]) in ((5000, 1000), (20000, 500))]
    if goal:
        ok = all(R_RCPP[(r["n"], r["p"])] / min(r["times"]) >= 10 for r in goal)
        print(f"Goal >= 10x faster than R Rcpp at 5k x 1k and 20k x 500: {'met' if ok else 'NOT met'}.")


if __name__ == "__main__":
    main()
