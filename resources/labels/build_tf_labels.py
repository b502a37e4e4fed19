"""Rebuild resources/labels/human_tfs_go0003700.txt from the Debian package r-bioc-org.hs.eg.db.

Human transcription factors = genes annotated (directly or through a descendant term, any evidence) with
GO:0003700 "DNA-binding transcription factor activity" in org.Hs.eg.db 3.16.0 (GO 2022-07-01, Entrez Gene
2022-09-12). Run on a machine that reaches Debian's archive:

    python resources/labels/build_tf_labels.py [--cache D]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
PACKAGE, VERSION = "r-bioc-org.hs.eg.db", "3.16.0-1"
MEMBER = "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"
GO_TERM = "GO:0003700"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="folder for the downloaded .deb (kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        deb = cache / f"{PACKAGE}_{VERSION}_all.deb"
        if not deb.exists():
            subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=cache, check=True)
        root = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        db = root / MEMBER
        with sqlite3.connect(db) as con:
            symbols = sorted(r[0] for r in con.execute(
                "SELECT DISTINCT i.symbol FROM go_mf_all g JOIN gene_info i ON g._id = i._id WHERE g.go_id = ?",
                (GO_TERM,)))
        out = HERE / "human_tfs_go0003700.txt"
        out.write_text("".join(f"{s}\n" for s in symbols))
        pd.DataFrame([{"stored": "resources/labels/human_tfs_go0003700.txt", "package": PACKAGE, "version": VERSION,
                       "archive": deb.name, "archive_sha256": sha256(deb), "member": MEMBER,
                       "member_sha256": sha256(db), "stored_sha256": sha256(out),
                       "conversion": f"symbols of genes annotated with {GO_TERM} or a descendant (go_mf_all)"}]
                     ).to_csv(HERE / "provenance.tsv", sep="\t", index=False)
        print(f"{len(symbols)} transcription factors -> {out}")


if __name__ == "__main__":
    main()
