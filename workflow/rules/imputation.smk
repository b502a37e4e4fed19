# Spatial imputation (SpaFormer and its baselines) on every spatial dataset: one seeded hold-out of 30 % of all
# entries per dataset, every method x seed trained on the masked counts only, scored on the held-out entries.


rule imputation_mask:
    input:
        "results/{dataset}/qc/adata.h5ad",
    output:
        "results/imputation/{dataset}/mask.h5ad",
    log:
        "logs/imputation_mask/{dataset}.log",
    benchmark:
        "benchmarks/imputation_mask/{dataset}.tsv"
    conda:
        "../../envs/imputation.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 20),
        runtime=runtime_min(20),
    params:
        cfg=without("imputation", "device", "threads", "evaluation"),
    message:
        "Holding out entries of dataset {wildcards.dataset} for the imputation benchmark"
    script:
        "../scripts/imputation_mask.py"


rule train_imputation:
    input:
        "results/imputation/{dataset}/mask.h5ad",
    output:
        imputed="results/imputation/{dataset}/{imethod}/seed{seed}/imputed.h5ad",
        model="results/imputation/{dataset}/{imethod}/seed{seed}/model.pt",
        losses="results/imputation/{dataset}/{imethod}/seed{seed}/losses.tsv",
        run="results/imputation/{dataset}/{imethod}/seed{seed}/run.json",
    log:
        "logs/train_imputation/{dataset}_{imethod}_seed{seed}.log",
    benchmark:
        "benchmarks/train_imputation/{dataset}_{imethod}_seed{seed}.tsv"
    wildcard_constraints:
        imethod="|".join(TRAINED_IMPUTATION) or "none",
    conda:
        "../../envs/imputation.yaml"
    threads: IMPUTATION["threads"]
    resources:
        gpu=1,
        mem_mb=mem_by_input(3000, 40),
        runtime=runtime_min(120),
    params:
        cfg=without("imputation", "device", "threads", "evaluation"),
        device=IMPUTATION["device"],
    message:
        "Imputation of dataset {wildcards.dataset}: {wildcards.imethod}, seed {wildcards.seed}"
    script:
        "../scripts/impute.py"


rule impute_baseline:
    input:
        "results/imputation/{dataset}/mask.h5ad",
    output:
        imputed="results/imputation/{dataset}/{imethod}/seed{seed}/imputed.h5ad",
        run="results/imputation/{dataset}/{imethod}/seed{seed}/run.json",
    log:
        "logs/impute_baseline/{dataset}_{imethod}_seed{seed}.log",
    benchmark:
        "benchmarks/impute_baseline/{dataset}_{imethod}_seed{seed}.tsv"
    wildcard_constraints:
        imethod="|".join(BASELINE_IMPUTATION) or "none",
    conda:
        "../../envs/imputation.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 40),
        runtime=runtime_min(30),
    params:
        cfg=without("imputation", "device", "threads", "evaluation"),
        device="cpu",
    message:
        "Imputation of dataset {wildcards.dataset}: baseline {wildcards.imethod}, seed {wildcards.seed}"
    script:
        "../scripts/impute.py"


rule evaluate_imputation:
    input:
        masks=expand("results/imputation/{dataset}/mask.h5ad", dataset=SPATIAL),
        imputed=[
            f"results/imputation/{d}/{m}/seed{s}/imputed.h5ad"
            for d, m, s in imputation_runs()
        ],
    output:
        scores="results/imputation/scores.tsv",
        summary="results/imputation/summary.tsv",
    log:
        "logs/evaluate_imputation.log",
    benchmark:
        "benchmarks/evaluate_imputation.tsv"
    conda:
        "../../envs/imputation.yaml"
    threads: IMPUTATION["threads"]
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(60),
    params:
        runs=imputation_runs(),
        datasets=SPATIAL,
        cfg=IMPUTATION["evaluation"],
    message:
        "Scoring the imputations on the held-out entries"
    script:
        "../scripts/evaluate_imputation.py"
