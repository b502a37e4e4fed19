# Evaluation of the gene embeddings: the six metrics (and the gene alignment) for every method x seed, each
# training group with its own models; gene modules of the MuSe-GNN embeddings per group; gene-function prediction.


rule evaluate:
    input:
        unpack(evaluation_inputs),
    output:
        scores=report(
            "results/evaluation/scores.tsv",
            caption="../report/scores.rst",
            category="Evaluation",
        ),
        summary=report(
            "results/evaluation/summary.tsv",
            caption="../report/summary.rst",
            category="Evaluation",
        ),
    log:
        "logs/evaluate.log",
    benchmark:
        "benchmarks/evaluate.tsv"
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(4000, 20),
        runtime=runtime_min(120),
    params:
        runs=evaluation_runs,
        cfg=without("evaluate", "methods"),
    message:
        "Scoring {params.runs} on the six metrics"
    script:
        "../scripts/evaluate.py"


rule modules:
    input:
        embeddings=f"results/musegnn/{{group}}/seed{FIRST_SEED}/embeddings.h5ad",
        gmt=hallmark_gmt(),
        orthologs=PRIORS["orthologs"],
    output:
        rows="results/evaluation/modules/{group}.h5ad",
        enrichment="results/evaluation/modules/{group}_enrichment.tsv",
        table=report(
            "results/evaluation/modules/{group}_table.tsv",
            caption="../report/modules.rst",
            category="Evaluation",
        ),
    log:
        "logs/modules/{group}.log",
    benchmark:
        "benchmarks/modules/{group}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(60),
    params:
        cfg=config["modules"],
        taxa={name: spec["taxon"] for name, spec in config["species"].items()},
        hallmark_taxon=config["species"][config["priors"]["hallmark"]["species"]][
            "taxon"
        ],
    message:
        "Gene modules of the MuSe-GNN embeddings and their hallmark enrichment"
    script:
        "../scripts/modules.py"


rule function_prediction:
    input:
        unpack(function_inputs),
    output:
        report(
            "results/evaluation/function_prediction.tsv",
            caption="../report/function_prediction.rst",
            category="Evaluation",
        ),
    log:
        "logs/function_prediction.log",
    benchmark:
        "benchmarks/function_prediction.tsv"
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(60),
    params:
        cfg=config["function_prediction"],
        methods=function_methods,
    message:
        "Gene-function prediction (k-NN) from {params.methods} and raw features"
    script:
        "../scripts/function_prediction.py"
