"""Rule build_graphs: a dataset's co-expression graph plus its STRING and hallmark edge types."""

import anndata as ad

from genegraph.checks import carried
from genegraph.gene_sets import read_gmt
from genegraph.io import write_h5ad, write_json
from genegraph.logs import rule_context
from genegraph.orthologs import load_orthologs
from genegraph.priors import add_prior_edges
from genegraph.string_graph import read_gene_links

smk = snakemake  # noqa: F821 (injected by Snakemake)
p = smk.params
with rule_context(smk.log[0], smk.wildcards.dataset):
    graph = ad.read_h5ad(smk.input.graph)
    figures = add_prior_edges(
        graph, species=p.species, species_config=smk.config["species"],
        string_links=read_gene_links(smk.input.string), gene_sets=read_gmt(smk.input.hallmark),
        orthologs=load_orthologs(smk.input.orthologs), string_species=p.string_species,
        hallmark_species=p.hallmark_species, min_score=p.min_score, channels=p.channels,
        weighting=p.weighting, min_cosine=p.min_cosine,
    )
    write_json({"dataset": smk.wildcards.dataset, **figures, "coexpr_stats": graph.uns["graph"]["coexpr"]["stats"],
                "checks": carried(graph.uns)}, smk.output.coverage)
    write_h5ad(graph, smk.output.graph)
