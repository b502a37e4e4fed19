"""Rule download_string: STRING links (detailed), info and aliases files of one species."""

from pathlib import Path

from genegraph.graphs.priors.string_files import fetch_string
from genegraph.io import write_json
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    cfg = smk.config  # transfer settings: see download.py for why they are not params
    out = Path(smk.output[0])
    fetched = fetch_string(
        smk.params.taxon, out, version=smk.wildcards.version, base_url=smk.params.base_url,
        links=smk.params.links, sha256=smk.params.sha256 or None,
        mirror=Path(cfg["mirror"]) if cfg.get("mirror") else None, lock_file=Path(cfg["checksum_lock"]),
        retries=cfg["download"]["retries"], backoff=cfg["download"]["backoff_seconds"],
        timeout=cfg["download"]["timeout_seconds"],
    )
    write_json({role: {"path": str(f.path), "sha256": f.sha256, "origin": f.origin} for role, f in fetched.items()},
               out / "download.json")
    log.info("STRING v%s for %s: %s", smk.wildcards.version, smk.wildcards.species, ", ".join(fetched))
