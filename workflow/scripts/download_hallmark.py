"""Rule download_hallmark: the MSigDB hallmark GMT (symbols) of one version."""

from pathlib import Path

from genegraph.data.download import fetch
from genegraph.graphs.priors.hallmark import read_gmt
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    cfg = smk.config  # transfer settings: see download.py for why they are not params
    out = Path(smk.output[0])
    got = fetch(smk.params.source, out.parent, sha256=smk.params.sha256 or None,
                mirror=Path(cfg["mirror"]) if cfg.get("mirror") else None,
                base_dir=Path(smk.scriptdir).resolve().parents[1],
                lock_file=Path(cfg["checksum_lock"]), retries=cfg["download"]["retries"],
                backoff=cfg["download"]["backoff_seconds"], timeout=cfg["download"]["timeout_seconds"])
    if got.path != out:
        got.path.replace(out)
    sets = read_gmt(out)  # a file that is not a valid GMT fails here, not in every graph job
    log.info("hallmark v%s: %d gene sets, %d genes", smk.wildcards.version, len(sets),
             len({g for genes in sets.values() for g in genes}))
