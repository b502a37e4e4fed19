# Gene graphs per dataset: the CS-CORE co-expression graph of the selected genes, then the STRING and hallmark
# edge types, and a summary over all datasets.


rule coexpression:
    input:
        "results/{dataset}/features.h5ad",
    output:
        "results/{dataset}/graph/coexpression.h5ad",
    log:
        "logs/coexpression/{dataset}.log",
    benchmark:
        "benchmarks/coexpression/{dataset}.tsv"
    conda:
        "../../envs/graphs.yaml"
    threads: 2
    resources:
        mem_mb=mem_by_input(3000, 40),
        runtime=runtime_min(60),
    params:
        cfg=config["coexpression"],
        depth_key=config["features"]["depth"],
        max_invalid_variance_frac=config["checks"]["max_invalid_variance_frac"],
        max_clipped_frac=config["checks"]["max_clipped_frac"],
    message:
        "CS-CORE co-expression graph of dataset {wildcards.dataset}"
    script:
        "../scripts/coexpression.py"


rule build_graphs:
    input:
        unpack(prior_inputs),
    output:
        graph="results/{dataset}/graph/graph.h5ad",
        coverage="results/{dataset}/graph/coverage.json",
    log:
        "logs/build_graphs/{dataset}.log",
    benchmark:
        "benchmarks/build_graphs/{dataset}.tsv"
    conda:
        "../../envs/graphs.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 10),
        runtime=runtime_min(30),
    params:
        species=ds("species"),
        species_table=species_table,
        string_species=string_species_of,
        hallmark_species=config["priors"]["hallmark"]["species"],
        min_score=config["priors"]["string"]["min_score"],
        channels=config["priors"]["string"]["channels"],
        weighting=config["priors"]["hallmark"]["weighting"],
        min_cosine=config["priors"]["hallmark"]["min_cosine"],
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
    log:
        "logs/graphs_summary.log",
    benchmark:
        "benchmarks/graphs_summary.tsv"
    localrule: True
    conda:
        "../../envs/qc.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=runtime_min(10),
    params:
        datasets=DATASETS,
    script:
        "../scripts/graphs_summary.py"
