# Evaluation of the gene embeddings: the six metrics for every method x seed, gene modules of the MuSe-GNN
# embeddings, and gene-function prediction.


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
        cfg=without("evaluate", "methods", "group_by"),
        group_by=config["evaluate"]["group_by"],
    message:
        "Scoring {params.runs} on the six metrics"
    script:
        "../scripts/evaluate.py"


rule modules:
    input:
        embeddings=f"results/musegnn/seed{FIRST_SEED}/embeddings.h5ad",
        gmt=hallmark_gmt(),
    output:
        rows="results/evaluation/modules.h5ad",
        enrichment="results/evaluation/module_enrichment.tsv",
        table=report(
            "results/evaluation/module_table.tsv",
            caption="../report/modules.rst",
            category="Evaluation",
        ),
    log:
        "logs/modules.log",
    benchmark:
        "benchmarks/modules.tsv"
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(60),
    params:
        cfg=config["modules"],
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
