"""Rule string_mygene (network): ask mygene.info, through its on-disk cache, about the STRING proteins of one
species that STRING's own info and aliases tables do not map to a gene."""

from genegraph.data.genes import load_gene_table
from genegraph.graphs.priors.mygene_cache import MyGeneCache
from genegraph.graphs.priors.string_files import species_files
from genegraph.graphs.priors.string_links import mygene_queries, read_string_files
from genegraph.io import write_json
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
with rule_context(smk.log[0], threads=smk.threads) as log:
    files = species_files(smk.input.string, p.taxon)
    links, info, aliases = read_string_files(files["links"], taxon=p.taxon, info_path=files["info"],
                                             aliases_path=files["aliases"])
    queries = mygene_queries(links["protein1"].cat.categories, taxon=p.taxon,
                             gene_table=load_gene_table(smk.input.gene_table), info=info, aliases=aliases)
    cache = MyGeneCache(p.cache, p.taxon)  # the cache location is not a rerun trigger: answers are keyed by release
    answers = cache.lookup(queries, on_unreachable=p.on_unreachable) if queries else {}
    write_json({"taxon": p.taxon, "queries": len(queries), "requests": cache.requests, "answers": answers},
               smk.output[0])
    log.info("mygene: %d STRING proteins left unmapped by STRING's tables, %d answered, %d requests", len(queries),
             sum(bool(v) for v in answers.values()), cache.requests)
