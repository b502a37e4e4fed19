"""The original R code in the same benchmark run, when R and its packages are installed (bench helper).

Shared by ``bench/sparkx.py`` and ``bench/cscore.py``. :func:`r_missing` says whether ``Rscript`` and the
packages are there; :func:`run_r` runs one of the small driver scripts below as a whole process (wall-clock
seconds, the library call's own seconds as the driver prints them, peak RSS of the R process). Without R the
benchmarks print "R not installed" and fall back to recorded figures, each labelled by :class:`Recorded` with
where it was measured. The drivers only call the packages' documented functions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: R SPARK: counts (Matrix Market, genes x spots), coordinates (CSV cell,x,y), output CSV.
SPARKX_R = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages({library(Matrix); library(SPARK)})
counts <- as(Matrix::readMM(args[1]), "CsparseMatrix")
xy <- read.csv(args[2], row.names = 1)
rownames(counts) <- paste0("g", seq_len(nrow(counts)) - 1)
colnames(counts) <- rownames(xy)
t0 <- proc.time()[["elapsed"]]
res <- sparkx(counts, as.matrix(xy), numCores = 1, option = "mixture", verbose = FALSE)
t1 <- proc.time()[["elapsed"]]
write.csv(res$res_mtest, args[3], quote = FALSE)
cat(sprintf("RESULT %.6f\n", t1 - t0))
"""

#: R CS-CORE: counts (Matrix Market, genes x cells), depth (one number per line); IRLS as CSCORE() calls it.
CSCORE_R = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages({library(Matrix); library(CSCORE)})
x <- t(as.matrix(Matrix::readMM(args[1])))
depth <- scan(args[2], quiet = TRUE)
t0 <- proc.time()[["elapsed"]]
res <- CSCORE_IRLS_cpp(x, depth, IRLS_par = list(n_iter = 10, eps = 0.05, verbose = FALSE, conv = "max"))
t1 <- proc.time()[["elapsed"]]
cat(sprintf("RESULT %.6f\n", t1 - t0))
"""


@dataclass(frozen=True)
class Recorded:
    """A figure measured elsewhere: ``value`` (seconds or GB), where it comes from, and whose code it measures."""

    value: float
    source: str
    unit: str = "s"
    who: str = "R"

    def label(self) -> str:
        return f"recorded {self.who} figure ({self.source}): {self.value:g} {self.unit}"


def reference(
    measured: float | None, table: dict, key: tuple[int, int], r_reason: str | None, unit: str = "s"
) -> tuple[float | None, str]:
    """The figure to compare with and its label: this run's R figure, else the recorded one, else none."""
    if measured:
        return measured, f"R in this run: {measured:.2f} {unit}"
    if key in table:
        return table[key].value, table[key].label()
    return None, f"{r_reason or 'not run'}; no recorded figure"


@dataclass(frozen=True)
class ProcessRun:
    """One finished process: wall-clock seconds, peak RSS (MB), exit code, stdout, stderr, CPU seconds (all
    threads, user + system: on a busy machine the work apart from waiting for a core)."""

    wall_s: float
    peak_mb: float
    returncode: int
    stdout: str
    stderr: str
    cpu_s: float


def run_process(cmd: Sequence[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``cmd`` to completion; wall time from start to exit, the child's own peak RSS and CPU time (``wait4``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return ProcessRun(wall, usage.ru_maxrss / 1024.0, proc.returncode, out.read(), err.read(), cpu)


def r_missing(packages: Sequence[str]) -> str | None:
    """None when ``Rscript`` and every package load; otherwise why not ("R not installed", ...)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "R not installed"
    code = "; ".join(f"suppressPackageStartupMessages(library({p}))" for p in packages)
    proc = subprocess.run([rscript, "-e", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"R package(s) {', '.join(packages)} not installed"
    return None


def run_r(script: str, args: Sequence[str]) -> tuple[ProcessRun, float]:
    """Run an R driver as a whole process; returns the run and the library call's seconds it printed."""
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(script)
    try:
        run = run_process([shutil.which("Rscript") or "Rscript", fh.name, *args])
    finally:
        Path(fh.name).unlink()
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    if run.returncode != 0 or not lines:
        sys.stderr.write(run.stderr[-3000:])
        raise RuntimeError(f"R driver failed (exit {run.returncode})")
    return run, float(lines[-1].split()[1])


def print_report(title: str, rows: Sequence[dict], r_reason: str | None, report, load0: float, load1: float) -> None:
    """The results block both benches print: a title line with the machine's load, where the R figures come from,
    then ``report(row, r_reason)`` (a list of lines) for each shape."""
    print(f"{title}; {os.cpu_count()} CPUs; load average {load0:.1f} at start, {load1:.1f} at end")
    print(f"R: {'run in this benchmark' if r_reason is None else r_reason + ' (recorded figures used, labelled)'}")
    for row in rows:
        print()
        print("\n".join(report(row, r_reason)))
    print()
