"""Bench: seconds and peak memory of genegraph.stats.sctransform.residuals.sctransform on the SCTransform
reference inputs.

Reads ``counts.mtx.gz`` of ``sctransform_pbmcA`` (10x PBMC, 2,896 cells x 13,939 genes) and
``sctransform_celseq2`` (274 x 28,142) in place from ``../shared/reference`` (or $GENEGRAPH_SHARED/reference)
and runs the production call (own step-1 draw, 1000 features). Skips datasets that are absent.

    python bench/sctransform.py [--repeat N] [--dataset pbmcA ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import anndata as ad
import pandas as pd
import scipy.io
import scipy.sparse as sp

from genegraph.stats.sctransform.residuals import sctransform

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GENEGRAPH_SHARED", REPO.parent / "shared")).resolve()
DATASETS = ("pbmcA", "celseq2")


def load(folder: Path) -> ad.AnnData:
    """Cells x genes AnnData (CSR int counts) from a reference folder's genes x cells Matrix Market file."""
    counts = sp.csr_matrix(scipy.io.mmread(folder / "counts.mtx.gz").T)
    genes = (folder / "genes.txt").read_text().splitlines()
    cells = (folder / "cells.txt").read_text().splitlines()
    return ad.AnnData(X=counts, obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per dataset (default 3)")
    parser.add_argument("--dataset", choices=DATASETS, action="append", help="default: all present")
    args = parser.parse_args()
    ran = 0
    for name in args.dataset or DATASETS:
        folder = SHARED / "reference" / f"sctransform_{name}"
        if not (folder / "counts.mtx.gz").is_file():
            print(f"{name}: skipped, {folder} is absent")
            continue
        adata = load(folder)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = sctransform(adata, n_genes=1000)
            times.append(time.perf_counter() - start)
        ran += 1
        print(f"{name}: {adata.n_obs} cells x {adata.n_vars} genes -> {out.n_vars} features; "
              f"seconds min {min(times):.2f} / median {sorted(times)[len(times) // 2]:.2f} over "
              f"{len(times)} runs; peak RSS so far {peak_rss_mib():.0f} MiB")
    if not ran:
        print("no reference input found; nothing timed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
