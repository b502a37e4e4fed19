"""Rule ingest: read a downloaded source into the canonical dataset AnnData."""

import json
from pathlib import Path

from genegraph.data.dataset import build_canonical, read_metadata
from genegraph.data.genes import load_gene_table
from genegraph.data.readers import read_counts, read_paired_protein
from genegraph.io import write_h5ad
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
with rule_context(smk.log[0], smk.wildcards.dataset, threads=smk.threads) as log:
    manifest = json.loads(Path(smk.input.source).read_text())
    meta = manifest.get("metadata")
    paired = bool(meta) and Path(meta["path"]).name.endswith(".h5ad")  # a paired protein file, not a cell table
    raw = read_counts(
        Path(manifest["source"]["path"]),
        p.format,
        orientation=p.orientation,
        matrix_key=p.matrix_key,
        spatial_key=p.spatial_key,
        protein_key=None if paired else p.protein_key,
    )
    if paired:
        raw.obsm["protein"] = read_paired_protein(Path(meta["path"]), raw.obs_names, p.protein_key)
        log.info("paired protein file %s: %d proteins", Path(meta["path"]).name, raw.obsm["protein"].shape[1])
        meta = None
    adata = build_canonical(
        raw,
        dataset=smk.wildcards.dataset,
        modality=p.modality,
        gene_id=p.gene_id,
        gene_table=load_gene_table(smk.input.gene_table),
        gene_prefix=p.gene_prefix,
        metadata=read_metadata(Path(meta["path"])) if meta else None,
        metadata_name=Path(meta["path"]).name if meta else "metadata",
        subset=p.subset,
        batch_key=p.batch_key,
        celltype_key=p.celltype_key,
        min_gene_table_frac=p.min_gene_table_frac,
        provenance={
            "tissue": p.tissue,
            "species": p.species,
            "format": p.format,
            "source": manifest["source"]["origin"],
            "sha256": manifest["source"]["sha256"],
        },
    )
    write_h5ad(adata, smk.output[0])
