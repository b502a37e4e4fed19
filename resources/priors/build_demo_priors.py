"""Rebuild the embedded prior-knowledge demo resources from registry packages, recording provenance.

Run from the repository root on a machine that reaches Debian's archive and PyPI (needs ``pyreadr``):

    python resources/priors/build_demo_priors.py            # downloads into a temporary folder
    python resources/priors/build_demo_priors.py --cache D  # reuse/keep the downloaded packages in D

It writes, under resources/priors/:

* ``string_demo/9606.protein.links.txt.gz`` -- a STRING-format (plain ``protein.links``: ``protein1 protein2
  combined_score``) human network: the ``interactions_example`` data set of Debian ``r-bioc-stringdb``
  2.10.1 (STRINGdb's example "sorted list of protein-protein interactions" scored by its SVD-Phy
  co-occurrence method, on protein ids of an older STRING release), restricted to links whose two proteins
  map to a gene through org.Hs.eg.db. Rescaling: the example's scores lie in [0.106, 1] (a probability-like
  scale); STRING's files use integers 0-1000 with a maximum of 999, so combined_score = min(round(1000 s), 999).
* ``string_demo/9606.protein.aliases.txt.gz`` -- a STRING-format ``protein.aliases`` file (``#string_protein_id
  alias source``) for those proteins, from Debian ``r-bioc-org.hs.eg.db`` 3.16.0 (its SQLite tables
  ensembl_prot -> gene_info / ensembl): source ``org.Hs.eg.db_SYMBOL`` (gene symbol) and
  ``org.Hs.eg.db_ENSEMBL`` (Ensembl gene id).
* ``orthologs/Ensembl105_Human2Mouse_Genes.csv.gz`` -- the celltypist 1.7.1 wheel's
  ``celltypist/data/samples/Ensembl105_Human2Mouse_Genes.csv``, gzipped, content unchanged.
* ``licenses/`` (the packages' licence / copyright files) and ``provenance.tsv`` (package, version, archive
  sha256, member path, member sha256, stored sha256, conversion).

Gzip streams are written with mtime 0, so a rebuild from the same packages gives byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "resources" / "priors"
TAXON = 9606

DEBIAN = {"r-bioc-stringdb": "2.10.1-1", "r-bioc-org.hs.eg.db": "3.16.0-1"}
PYPI = {"celltypist": "1.7.1"}
INTERACTIONS = "usr/lib/R/site-library/STRINGdb/data/interactions_example.rda"
ORGDB = "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"
ORTHOLOGS = "celltypist/data/samples/Ensembl105_Human2Mouse_Genes.csv"
COPYRIGHT = {"r-bioc-stringdb": "usr/share/doc/r-bioc-stringdb/copyright",
             "r-bioc-org.hs.eg.db": "usr/share/doc/r-bioc-org.hs.eg.db/copyright"}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_packages(cache: Path) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    found = {}
    for name, version in DEBIAN.items():
        deb = cache / f"{name}_{version}_all.deb"
        if not deb.exists():
            subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=cache, check=True)
        found[name] = deb
    for name, version in PYPI.items():
        whl = cache / f"{name}-{version}-py3-none-any.whl"
        if not whl.exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                            f"{name}=={version}", "-d", str(cache)], check=True)
        found[name] = whl
    return found


def write_gz_text(text: str, dest: Path) -> None:
    """gzip with mtime 0 (reproducible bytes)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode("utf-8"))


def orgdb_tables(sqlite: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ENSP -> symbol and ENSP -> Ensembl gene id from org.Hs.eg.db."""
    with sqlite3.connect(f"file:{sqlite}?mode=ro", uri=True) as con:
        symbols = pd.read_sql("SELECT p.prot_id AS ensp, g.symbol AS alias FROM ensembl_prot p "
                              "JOIN gene_info g ON p._id = g._id", con)
        genes = pd.read_sql("SELECT p.prot_id AS ensp, e.ensembl_id AS alias FROM ensembl_prot p "
                            "JOIN ensembl e ON p._id = e._id", con)
    return symbols, genes


def build_string_demo(rda: Path, sqlite: Path) -> tuple[str, str, dict]:
    import pyreadr

    links = pyreadr.read_r(str(rda))["interactions_example"]
    symbols, genes = orgdb_tables(sqlite)
    mapped = set(f"{TAXON}." + symbols["ensp"])
    keep = links["proteinA"].isin(mapped) & links["proteinB"].isin(mapped)
    demo = pd.DataFrame({
        "protein1": links.loc[keep, "proteinA"].astype(str),
        "protein2": links.loc[keep, "proteinB"].astype(str),
        "combined_score": np.minimum(np.rint(links.loc[keep, "score"].to_numpy() * 1000), 999).astype(int),
    }).sort_values(["protein1", "protein2"], ignore_index=True)
    proteins = set(demo["protein1"]) | set(demo["protein2"])
    aliases = pd.concat([symbols.assign(source="org.Hs.eg.db_SYMBOL"),
                         genes.assign(source="org.Hs.eg.db_ENSEMBL")], ignore_index=True)
    aliases["protein"] = f"{TAXON}." + aliases["ensp"]
    aliases = (aliases[aliases["protein"].isin(proteins)][["protein", "alias", "source"]]
               .drop_duplicates().sort_values(["protein", "source", "alias"], ignore_index=True))
    links_text = "protein1 protein2 combined_score\n" + "".join(
        f"{a} {b} {s}\n" for a, b, s in demo.itertuples(index=False))
    aliases_text = "#string_protein_id\talias\tsource\n" + "".join(
        f"{p}\t{a}\t{s}\n" for p, a, s in aliases.itertuples(index=False))
    stats = {"example_links": len(links), "example_proteins": len(set(links["proteinA"]) | set(links["proteinB"])),
             "kept_links": len(demo), "kept_proteins": len(proteins), "alias_rows": len(aliases),
             "kept_score_min": int(demo["combined_score"].min()),
             "kept_links_ge_400": int((demo["combined_score"] >= 400).sum())}
    return links_text, aliases_text, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="folder for the downloaded packages (kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pk = fetch_packages(args.cache or tmp / "packages")
        trees = {}
        for name in DEBIAN:
            trees[name] = tmp / name
            subprocess.run(["dpkg-deb", "-x", str(pk[name]), str(trees[name])], check=True)
        rda = trees["r-bioc-stringdb"] / INTERACTIONS
        sqlite = trees["r-bioc-org.hs.eg.db"] / ORGDB
        with zipfile.ZipFile(pk["celltypist"]) as z:
            orthologs_csv = tmp / "orthologs.csv"
            orthologs_csv.write_bytes(z.read(ORTHOLOGS))
            licence = z.read("celltypist-1.7.1.dist-info/LICENSE")

        links_text, aliases_text, stats = build_string_demo(rda, sqlite)
        links_out = OUT / "string_demo" / f"{TAXON}.protein.links.txt.gz"
        aliases_out = OUT / "string_demo" / f"{TAXON}.protein.aliases.txt.gz"
        orthologs_out = OUT / "orthologs" / "Ensembl105_Human2Mouse_Genes.csv.gz"
        write_gz_text(links_text, links_out)
        write_gz_text(aliases_text, aliases_out)
        write_gz_text(orthologs_csv.read_text(encoding="utf-8"), orthologs_out)

        lic = OUT / "licenses"
        lic.mkdir(parents=True, exist_ok=True)
        for name, member in COPYRIGHT.items():
            shutil.copyfile(trees[name] / member, lic / f"{name}-{DEBIAN[name]}.copyright")
        (lic / "celltypist-1.7.1.LICENSE").write_bytes(licence)

        rows = []

        def record(stored: Path, package: str, member: str, source: Path, conversion: str) -> None:
            version = DEBIAN.get(package) or PYPI[package]
            rows.append({"stored": stored.relative_to(REPO).as_posix(), "package": package, "version": version,
                         "archive": pk[package].name, "archive_sha256": sha256(pk[package]), "member": member,
                         "member_sha256": sha256(source), "stored_sha256": sha256(stored), "conversion": conversion})

        record(links_out, "r-bioc-stringdb", INTERACTIONS, rda,
               "data frame interactions_example (proteinA, proteinB, SVD-Phy score in [0.106, 1]) read with pyreadr; "
               "links whose two proteins both have an org.Hs.eg.db symbol kept; score -> combined_score = "
               "min(round(1000 score), 999); written as a STRING plain protein.links file (one direction per link)")
        record(links_out, "r-bioc-org.hs.eg.db", ORGDB, sqlite,
               "used to select the links (tables ensembl_prot, gene_info)")
        record(aliases_out, "r-bioc-org.hs.eg.db", ORGDB, sqlite,
               "ensembl_prot joined to gene_info (symbol, source org.Hs.eg.db_SYMBOL) and ensembl (Ensembl gene id, "
               "source org.Hs.eg.db_ENSEMBL) for the proteins of the demo links; STRING protein.aliases layout")
        record(orthologs_out, "celltypist", ORTHOLOGS, orthologs_csv, "gzipped (mtime 0), content unchanged")
        table = pd.DataFrame(rows)
        table.to_csv(OUT / "provenance.tsv", sep="\t", index=False)
        print(table[["stored", "stored_sha256"]].drop_duplicates().to_string(index=False))
        print(stats)


if __name__ == "__main__":
    main()
