# Evaluation: baselines on the same graphs and seeds, the six metrics for every method x seed, gene modules
# of the MuSe-GNN embeddings, and gene-function prediction.


rule baseline:
    input:
        graphs=expand("results/{dataset}/graph/graph.h5ad", dataset=DATASETS),
    output:
        "results/baselines/{method}/seed{seed}/embeddings.h5ad",
    params:
        cfg=baseline_config,
        device=config["baselines"]["device"],
    log:
        "logs/baseline/{method}_seed{seed}.log",
    benchmark:
        "benchmarks/baseline/{method}_seed{seed}.tsv"
    threads: config["baselines"]["threads"]
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(240),
    conda:
        "../../envs/train.yaml"
    message:
        "Baseline {wildcards.method} (seed {wildcards.seed}) on {input.graphs}"
    script:
        "../scripts/baseline.py"


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
    params:
        runs=evaluation_runs,
        cfg=metric_config,
        group_by=config["evaluate"]["group_by"],
    log:
        "logs/evaluate.log",
    benchmark:
        "benchmarks/evaluate.tsv"
    threads: 1
    resources:
        mem_mb=mem_by_input(4000, 20),
        runtime=runtime_min(120),
    conda:
        "../../envs/evaluate.yaml"
    message:
        "Scoring {params.runs} on the six metrics"
    script:
        "../scripts/evaluate.py"


rule modules:
    input:
        embeddings=f"results/musegnn/seed{FIRST_SEED}/embeddings.h5ad",
        gmt=hallmark_gmt(),
    output:
        rows="results/evaluation/modules.tsv",
        enrichment="results/evaluation/module_enrichment.tsv",
        table=report(
            "results/evaluation/module_table.tsv",
            caption="../report/modules.rst",
            category="Evaluation",
        ),
    params:
        cfg=config["modules"],
    log:
        "logs/modules.log",
    benchmark:
        "benchmarks/modules.tsv"
    threads: 1
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(60),
    conda:
        "../../envs/evaluate.yaml"
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
    params:
        cfg=config["function_prediction"],
        methods=function_methods,
    log:
        "logs/function_prediction.log",
    benchmark:
        "benchmarks/function_prediction.tsv"
    threads: 1
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(60),
    conda:
        "../../envs/evaluate.yaml"
    message:
        "Gene-function prediction (k-NN) from {params.methods} and raw features"
    script:
        "../scripts/function_prediction.py"
