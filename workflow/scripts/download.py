"""Rule download_dataset: fetch a dataset's source (and optional metadata table) beside its manifest."""

from dataclasses import asdict
from pathlib import Path

from genegraph.data.download import fetch, remove_stale
from genegraph.io import write_json
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], smk.wildcards.dataset, threads=smk.threads) as log:
    manifest_path = Path(smk.output[0])
    folder = manifest_path.parent
    # Transport settings and the mirror location are read from the config on purpose, not from params:
    # they change where bytes come from, never which bytes (sha256), so they must not trigger reruns.
    cfg = smk.config
    transfer = dict(
        mirror=Path(cfg["mirror"]) if cfg.get("mirror") else None,
        base_dir=Path(smk.scriptdir).resolve().parents[1],
        lock_file=Path(cfg["checksum_lock"]),
        retries=cfg["download"]["retries"],
        backoff=cfg["download"]["backoff_seconds"],
        timeout=cfg["download"]["timeout_seconds"],
    )
    manifest = {"source": asdict(fetch(smk.params.source, folder, sha256=smk.params.sha256, **transfer))}
    if smk.params.metadata:
        manifest["metadata"] = asdict(
            fetch(smk.params.metadata, folder, sha256=smk.params.metadata_sha256, **transfer)
        )
    remove_stale(folder, keep={Path(f["path"]).name for f in manifest.values()} | {manifest_path.name})
    write_json(manifest, manifest_path)
    log.info("download folder %s ready: %s", folder, ", ".join(p.name for p in sorted(folder.iterdir())))
