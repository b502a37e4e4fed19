"""Rule string_gene_links: one species' STRING proteins mapped to genes (STRING info and aliases first, then
mygene through its on-disk cache), and the gene-gene link table the graph jobs read."""

from pathlib import Path

from genegraph.genes import load_gene_table
from genegraph.io import write_json, write_tsv
from genegraph.logs import rule_context
from genegraph.mygene_cache import MyGeneCache
from genegraph.string_graph import string_gene_table, write_gene_links

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0]) as log:
    folder = Path(smk.input.string)
    taxon = smk.params.taxon

    def one(pattern: str) -> Path | None:
        hits = sorted(folder.glob(f"{taxon}.{pattern}*.txt.gz"))
        return hits[0] if hits else None

    links = one("protein.links")
    if links is None:
        raise FileNotFoundError(f"no {taxon}.protein.links*.txt.gz in {folder}")
    cache = MyGeneCache(smk.config["priors"]["mygene"]["cache"], taxon)  # location only: not a rerun trigger
    table, mapping, summary = string_gene_table(
        links, taxon=taxon, gene_table=load_gene_table(smk.input.gene_table), info_path=one("protein.info"),
        aliases_path=one("protein.aliases"), mygene=cache, on_unreachable=smk.params.on_unreachable,
    )
    write_gene_links(table, smk.output.links)
    write_tsv(mapping, smk.output.mapping)
    write_json(summary, smk.output.summary)
    log.info("STRING %s: %d gene pairs among %d genes", smk.wildcards.species, summary["gene_pairs"], summary["genes"])
