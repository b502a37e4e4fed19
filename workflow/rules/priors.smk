# Prior-knowledge graphs: STRING protein links mapped to genes, MSigDB hallmark gene sets. Downloads and the
# protein -> gene mapping (the only mygene use) are local rules; build_graphs only reads their tables.


rule download_string:
    output:
        directory("resources/priors/string/{species}_v{version}"),
    params:
        taxon=lambda wc: config["species"][wc.species]["taxon"],
        base_url=config["priors"]["string"]["base_url"],
        links=config["priors"]["string"]["links"],
    log:
        "logs/download_string/{species}_v{version}.log",
    benchmark:
        "benchmarks/download_string/{species}_v{version}.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=runtime_min(120),
    conda:
        "../../envs/priors.yaml"
    message:
        "Downloading STRING v{wildcards.version} for {wildcards.species}"
    script:
        "../scripts/download_string.py"


rule download_hallmark:
    output:
        "resources/priors/msigdb/h.all.v{version}.symbols.gmt",
    params:
        source=lambda wc: msigdb_source(wc.version),
    log:
        "logs/download_hallmark/{version}.log",
    benchmark:
        "benchmarks/download_hallmark/{version}.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 500 * attempt,
        runtime=runtime_min(30),
    conda:
        "../../envs/priors.yaml"
    message:
        "Downloading the MSigDB hallmark gene sets v{wildcards.version}"
    script:
        "../scripts/download_hallmark.py"


rule string_gene_links:
    input:
        string=string_files,
        gene_table=lambda wc: config["species"][wc.species]["gene_table"],
    output:
        links="results/priors/string_{species}.tsv.gz",
        mapping="results/priors/string_{species}_proteins.tsv.gz",
        summary="results/priors/string_{species}_summary.json",
    params:
        taxon=lambda wc: config["species"][wc.species]["taxon"],
        on_unreachable=config["priors"]["mygene"]["on_unreachable"],
    log:
        "logs/string_gene_links/{species}.log",
    benchmark:
        "benchmarks/string_gene_links/{species}.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=runtime_min(60),
    conda:
        "../../envs/priors.yaml"
    message:
        "Mapping STRING proteins of {wildcards.species} to genes"
    script:
        "../scripts/string_gene_links.py"


rule build_graphs:
    input:
        unpack(prior_inputs),
    output:
        graph="results/{dataset}/graph/graph.h5ad",
        coverage="results/{dataset}/graph/coverage.json",
    params:
        species=ds("species"),
        string_species=string_species_of,
        hallmark_species=config["priors"]["hallmark"]["species"],
        min_score=config["priors"]["string"]["min_score"],
        channels=config["priors"]["string"]["channels"],
        weighting=config["priors"]["hallmark"]["weighting"],
        min_cosine=config["priors"]["hallmark"]["min_cosine"],
    log:
        "logs/build_graphs/{dataset}.log",
    benchmark:
        "benchmarks/build_graphs/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 10),
        runtime=runtime_min(30),
    conda:
        "../../envs/graphs.yaml"
    message:
        "Adding STRING and hallmark edges to the gene graph of dataset {wildcards.dataset}"
    script:
        "../scripts/build_graphs.py"


rule graphs_summary:
    input:
        expand("results/{dataset}/graph/coverage.json", dataset=DATASETS),
    output:
        report(
            "results/graphs_summary.tsv",
            caption="../report/graphs_summary.rst",
            category="Gene graphs",
        ),
    params:
        datasets=DATASETS,
    log:
        "logs/graphs_summary.log",
    benchmark:
        "benchmarks/graphs_summary.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=runtime_min(10),
    conda:
        "../../envs/qc.yaml"
    script:
        "../scripts/graphs_summary.py"
