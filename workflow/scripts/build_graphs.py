"""Rule build_graphs: a dataset's co-expression graph plus its STRING and hallmark edge types."""

import anndata as ad

from genegraph.data.checks import carried
from genegraph.graphs.priors.edges import add_prior_edges
from genegraph.graphs.priors.hallmark import read_gmt
from genegraph.graphs.priors.orthologs import load_orthologs
from genegraph.graphs.priors.string_links import read_gene_links
from genegraph.io import write_h5ad, write_json
from genegraph.logs import rule_context

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
with rule_context(smk.log[0], smk.wildcards.dataset, threads=smk.threads):
    graph = ad.read_h5ad(smk.input.graph)
    figures = add_prior_edges(
        graph, species=p.species, species_config=p.species_table,
        string_links=read_gene_links(smk.input.string), gene_sets=read_gmt(smk.input.hallmark),
        orthologs=load_orthologs(smk.input.orthologs), string_species=p.string_species,
        hallmark_species=p.hallmark_species, min_score=p.min_score, channels=p.channels,
        weighting=p.weighting, min_cosine=p.min_cosine,
    )
    write_json({"dataset": smk.wildcards.dataset, **figures, "coexpr_stats": graph.uns["graph"]["coexpr"]["stats"],
                "checks": carried(graph.uns)}, smk.output.coverage)
    write_h5ad(graph, smk.output.graph)
