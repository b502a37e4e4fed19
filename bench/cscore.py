#!/usr/bin/env python
"""Benchmark genegraph's CS-CORE against the original R code, the upstream Python port and one GEMM.

Per shape (seeded negative-binomial counts, cells x genes, sparse int32, per-cell depth over a larger "all genes"
total) a subprocess, so that its peak RSS is its own, runs :func:`genegraph.stats.cscore.cscore` ``--repeat`` times
after one untimed warm-up call on a tiny input, and prints:

* **cscore() call**: first and best wall-clock seconds, the process CPU seconds of the best run, peak RSS (and GPU
  memory with ``--device cuda``);
* **one GEMM**, the physical limit: the dense product X^T X of the same n x p matrix (torch, ``--dtype``, same
  device and threads), timed in the same process, fastest of five. CS-CORE's covariance step is a few such
  products over the n x p matrix, so no CS-CORE can be much faster than one;
* **R** (CS-CORE's ``CSCORE_IRLS_cpp`` as ``CSCORE()`` calls it; the library call's own seconds and the peak RSS
  of the R process): run in the same benchmark when ``Rscript`` and the packages CSCORE and Matrix are installed.
  Otherwise "R not installed" and the recorded figures of ``shared/specs/cscore_sparkx.md`` §4 (R 4.2.2 with
  reference BLAS, single-threaded, 2-core x86), each labelled with its source. The base-R version and the upstream
  Python port (NumPy/OpenBLAS) are always the recorded figures.

    python bench/cscore.py                                  # 5,000 x 1,000 and 20,000 x 500 on the CPU
    python bench/cscore.py --threads 2 --repeat 3
    python bench/cscore.py --device cuda --shapes 5000x1000,20000x500,100000x2000
    python bench/cscore.py --dtype float32

Peak RSS is the process's high-water mark over the calls (reset just before them via /proc/self/clear_refs where
the kernel allows it), so it includes the generated input (as the R figures include the simulated data). The goal
(issue 16): at least 10x faster than R's Rcpp version at 5,000 x 1,000 and 20,000 x 500.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _rbaseline import CSCORE_R, Recorded, print_report, r_missing, reference, run_process, run_r

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))


def _recorded(figures: dict[tuple[int, int], float], source: str, unit: str = "s", who: str = "R") -> dict:
    return {key: Recorded(value, source, unit, who) for key, value in figures.items()}


#: (cells, genes) -> recorded figures, shared/specs/cscore_sparkx.md §4.
_R_SPEC = "spec §4, 2-core x86, R 4.2.2, reference BLAS, library call only"
R_RCPP = _recorded({(5000, 500): 7.6, (5000, 1000): 27.6, (20000, 500): 32.6, (2000, 500): 2.4}, _R_SPEC)
R_BASE = _recorded({(5000, 500): 4.4, (5000, 1000): 13.2, (20000, 500): 14.8, (2000, 500): 2.1}, _R_SPEC)
PY_PORT = _recorded(
    {(5000, 500): 0.86, (5000, 1000): 3.5, (20000, 500): 2.8}, "spec §4, 2-core x86, NumPy 2.4, OpenBLAS",
    who="upstream Python port",
)
R_RSS = _recorded(
    {(5000, 500): 0.50, (5000, 1000): 0.75, (20000, 500): 1.2, (2000, 500): 0.34},
    "spec §4, whole R process incl. simulated data", "GB",
)
GOAL_SHAPES = ((5000, 1000), (20000, 500))
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


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def _gemm_seconds(counts, dev, dtype: str, repeat: int = 5) -> float:
    """Fastest of ``repeat`` dense products X^T X of the counts (n x p, ``dtype``, on ``dev``), after a warm-up."""
    import torch

    x = torch.from_numpy(counts.toarray()).to(dev, getattr(torch, dtype))
    times = []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        x.T @ x
        _sync(dev)
        times.append(time.perf_counter() - t)
    return min(times[1:])


def _write_r_data(prefix: Path, counts, depth) -> None:
    """The R driver's input: ``prefix``.mtx (integer Matrix Market, genes x cells), ``prefix``.depth (one a line)."""
    import numpy as np
    import scipy.io

    scipy.io.mmwrite(prefix.with_suffix(".mtx"), counts.T.tocoo(), field="integer")
    np.savetxt(prefix.with_suffix(".depth"), depth, fmt="%.17g")


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
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_mb = _rss_mb("VmRSS")
    reset = _reset_peak()
    times, cpu_times = [], []
    res = None
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        res = cscore(counts, depth, device=dev, dtype=args.dtype)
        _sync(dev)
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
    peak_mb = _rss_mb("VmHWM") if reset else None
    if peak_mb is None:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    gpu_peak_mb = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    out = {
        "n": n, "p": p, "device": str(dev), "dtype": args.dtype, "threads": torch.get_num_threads(),
        "times": times, "cpu_times": cpu_times, "gen_s": gen_s, "base_mb": base_mb, "peak_mb": peak_mb,
        "peak_is_call_only": reset, "gpu_peak_mb": gpu_peak_mb, "gemm_s": _gemm_seconds(counts, dev, args.dtype),
        "n_passes": res.n_passes, "nnz_frac": counts.nnz / (n * p),
        "edges": int(np.count_nonzero(res.p_value < 0.005)),
    }
    if args.r_data:
        _write_r_data(Path(args.r_data), counts, depth)
    print("RESULT " + json.dumps(out))


def r_figures(prefix: Path, r_reason: str | None) -> dict:
    """R's CSCORE_IRLS_cpp on the same data in this run (call seconds, peak RSS of the R process), or {} without R."""
    if r_reason is not None:
        return {}
    run, call_s = run_r(CSCORE_R, [str(prefix.with_suffix(".mtx")), str(prefix.with_suffix(".depth"))])
    return {"call_s": call_s, "peak_mb": run.peak_mb}


def _ratio(ref: float | None, ours: float) -> str:
    return f"{ref / ours:.1f}x" if ref else "-"


def _row(label: str, text: str) -> str:
    return f"  {label:<34}{text}"


def report(r: dict, r_reason: str | None) -> list[str]:
    """The printed block of one shape."""
    key = (r["n"], r["p"])
    best = min(r["times"])
    cpu = r["cpu_times"][r["times"].index(best)]
    rr = r["r"]
    rcpp, rcpp_label = reference(rr.get("call_s"), R_RCPP, key, r_reason)
    base, base_label = reference(None, R_BASE, key, r_reason)
    port, port_label = reference(None, PY_PORT, key, r_reason)
    r_gb, rss_label = reference(rr.get("peak_mb", 0) / 1024, R_RSS, key, r_reason, "GB")
    gpu = f", GPU peak {r['gpu_peak_mb']:.0f} MB" if r["gpu_peak_mb"] is not None else ""
    of_r = f"{r['peak_mb'] / (r_gb * 1024):.2f} of R's" if r_gb else ""
    lines = [
        f"{r['n']:,} cells x {r['p']:,} genes ({r['device']}, {r['dtype']}, {r['threads']} threads; "
        f"{r['nnz_frac'] * 100:.1f} % non-zero); IRLS passes {r['n_passes']}; gene pairs with p < 0.005: "
        f"{r['edges']:,}",
        _row("cscore() call, first / best", f"{r['times'][0]:.2f} s / {best:.2f} s   (CPU {cpu:.2f} s)"),
        _row(f"vs one GEMM X^T X ({r['dtype']})", f"cscore {best:.2f} s = {best / r['gemm_s']:.1f}x one GEMM "
             f"({r['gemm_s']:.3f} s)"),
        _row("vs R CS-CORE (Rcpp)", f"{_ratio(rcpp, best):>6}   [{rcpp_label}]"),
        _row("vs R CS-CORE (base R)", f"{_ratio(base, best):>6}   [{base_label}]"),
        _row("vs upstream Python port", f"{_ratio(port, best):>6}   [{port_label}]"),
        _row("peak RSS, whole process", f"{r['peak_mb']:.0f} MB ({r['base_mb'] or 0:.0f} MB before the calls{gpu})   "
             f"{of_r}   [{rss_label}]"),
    ]
    if key in GOAL_SHAPES and rcpp:
        met = "met" if best * 10 <= rcpp else "NOT met"
        lines.append(_row("goal: >= 10x faster than R Rcpp", f"(<= {rcpp / 10:.2f} s): {met}"))
    return lines


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
    ap.add_argument("--r-data", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    shapes = args.shapes or (DEFAULT_SHAPES + (",100000x2000" if args.device == "cuda" else ""))
    r_reason = r_missing(["Matrix", "CSCORE"])
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cscore-bench-") as tmp:
        for shape in shapes.split(","):
            shape = shape.strip().lower()
            cmd = [sys.executable, __file__, "--worker", shape, "--device", args.device, "--dtype", args.dtype,
                   "--repeat", str(args.repeat), "--seed", str(args.seed)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if r_reason is None:
                cmd += ["--r-data", str(Path(tmp) / shape)]
            run = run_process(cmd, os.environ.copy())
            line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
            if run.returncode != 0 or not line:
                print(f"{shape}: failed (rc {run.returncode})\n{run.stderr[-3000:]}", file=sys.stderr)
                continue
            row = json.loads(line[0][len("RESULT "):])
            row["r"] = r_figures(Path(tmp) / shape, r_reason)
            rows.append(row)
            print(f"  done {shape}: best {min(row['times']):.3f} s", file=sys.stderr)
    load1 = os.getloadavg()

    print_report("CS-CORE: genegraph (torch) vs the original R CS-CORE, the upstream Python port and one GEMM", rows,
                 r_reason, report, load0[0], load1[0])
    print("Ratios use the best of the timed runs (one untimed warm-up call on a tiny input first); vs R and the port:")
    print("their seconds / ours. CPU: the process CPU time (all threads) of that run: on a busy machine the work apart")
    print("from waiting for a core. One GEMM: fastest of 5 dense X^T X of the same matrix in the same process.")
    print("Peak RSS: the whole process during the calls, input included; before the calls: Python, torch, the input.")
    if rows and not all(r["peak_is_call_only"] for r in rows):
        print("(peak RSS could not be reset before the calls here, so it also covers data generation.)")


if __name__ == "__main__":
    main()
