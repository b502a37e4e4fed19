"""Rule string_gene_links: one species' STRING proteins mapped to genes (STRING info and aliases first, then the
mygene answers the download stage fetched) and the gene-gene link table the graph jobs read. No network."""

import json
from pathlib import Path

from genegraph.data.genes import load_gene_table
from genegraph.graphs.priors.string_files import species_files
from genegraph.graphs.priors.string_links import string_gene_table, write_gene_links
from genegraph.io import write_json, write_tsv
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0], threads=smk.threads) as log:
    taxon = smk.params.taxon
    files = species_files(smk.input.string, taxon)
    answers = json.loads(Path(smk.input.mygene).read_text())["answers"]
    table, mapping, summary = string_gene_table(
        files["links"], taxon=taxon, gene_table=load_gene_table(smk.input.gene_table), info_path=files["info"],
        aliases_path=files["aliases"], mygene_answers=answers,
    )
    write_gene_links(table, smk.output.links)
    write_tsv(mapping, smk.output.mapping)
    write_json(summary, smk.output.summary)
    log.info("STRING %s: %d gene pairs among %d genes", smk.wildcards.species, summary["gene_pairs"], summary["genes"])
