"""The ``genegraph`` command: run the workflow, check a dataset sheet, describe a result file, refresh the docs.

    genegraph run [SNAKEMAKE ARGS]     the demo (``snakemake -c 2`` in the repository), extra arguments passed on
    genegraph check-sheet SHEET        validate a dataset sheet as the workflow will, and list its datasets
    genegraph describe FILE.h5ad       what a genegraph file holds (layout, sizes, edge types, flagged checks)
    genegraph docs [--check]           regenerate config/README.md's reference tables from the schemas
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from genegraph import __version__
from genegraph.config import SCHEMA_DIR
from genegraph.errors import DataError

REPO = SCHEMA_DIR.parents[1]


def _run(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "snakemake", "-c", str(args.cores), *args.snakemake_args]
    print("+ " + " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd, cwd=REPO)


def _check_sheet(args: argparse.Namespace) -> int:
    import yaml

    from genegraph.config import complete, load_schema
    from genegraph.data.sheet import load_schema as sheet_schema
    from genegraph.data.sheet import load_sheet

    config = complete(load_schema(), yaml.safe_load(Path(args.config).read_text()) if args.config else {})
    table = load_sheet(args.sheet, sheet_schema(SCHEMA_DIR / "datasets.schema.yaml"))
    unknown = sorted(set(table["species"]) - set(config["species"]))
    if unknown:
        raise DataError(f"{args.sheet}: species {unknown} are not in the config's species table "
                        f"({', '.join(config['species'])})")
    cols = ["modality", "tissue", "species", "format", "enabled"]
    print(table[cols].to_string())
    print(f"{args.sheet}: {len(table)} datasets, {int(table['enabled'].astype(bool).sum())} enabled: valid")
    return 0


def _describe(args: argparse.Namespace) -> int:
    import anndata as ad

    a = ad.read_h5ad(args.file, backed="r")
    print(f"{args.file}: {a.n_obs} obs x {a.n_vars} var")
    for name, keys in (("obs", list(a.obs.columns)), ("var", list(a.var.columns)), ("layers", list(a.layers)),
                       ("obsm", list(a.obsm)), ("varp", list(a.varp)), ("obsp", list(a.obsp)), ("uns", list(a.uns))):
        if keys:
            print(f"  {name}: {', '.join(map(str, keys))}")
    meta = a.uns.get("dataset", {})
    if meta:
        shown = (f"{k}={v}" for k, v in meta.items() if k in ("id", "modality", "tissue", "species"))
        print(f"  dataset: {', '.join(shown)}")
    if "edge_types" in a.uns:
        sizes = {t: int(a.varp[t].nnz) if hasattr(a.varp[t], "nnz") else int((a.varp[t] != 0).sum())
                 for t in a.uns["edge_types"] if t in a.varp}
        print(f"  gene graph over {a.n_vars} genes; stored entries per edge type: {sizes}")
    flagged = [k for k, v in dict(a.uns.get("checks", {})).items() if v.get("flagged")]
    if "checks" in a.uns:
        print(f"  checks: {len(a.uns['checks'])} recorded, flagged: {', '.join(flagged) or 'none'}")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from genegraph.docs import README, render, update_readme

    if args.check:
        stale = render(README.read_text()) != README.read_text()
        print(f"{README}: {'stale: run genegraph docs' if stale else 'up to date'}")
        return 1 if stale else 0
    print(f"{README}: {'updated' if update_readme() else 'already up to date'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genegraph", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"genegraph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the workflow (the demo by default) with snakemake")
    run.add_argument("-c", "--cores", type=int, default=2)
    run.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="passed on to snakemake")
    run.set_defaults(func=_run)
    check = sub.add_parser("check-sheet", help="validate a dataset sheet")
    check.add_argument("sheet")
    check.add_argument("--config", help="a config file whose species table the sheet may name")
    check.set_defaults(func=_check_sheet)
    describe = sub.add_parser("describe", help="describe a genegraph .h5ad file")
    describe.add_argument("file")
    describe.set_defaults(func=_describe)
    docs = sub.add_parser("docs", help="regenerate config/README.md's tables from the schemas")
    docs.add_argument("--check", action="store_true", help="only report whether they are stale (exit 1)")
    docs.set_defaults(func=_docs)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DataError as err:
        print(f"genegraph: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
