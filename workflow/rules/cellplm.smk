# CellPLM: one model pre-trained from scratch on every dataset not held out (config cellplm.heldout), then its
# downstream tasks (zero-shot embedding, denoising, annotation, spatial imputation) on the held-out datasets,
# against the same architecture trained from scratch and the baselines.


rule cellplm_pretrain:
    input:
        adata=expand("results/{dataset}/qc/adata.h5ad", dataset=CELLPLM_CORPUS),
        heldout=expand("results/{dataset}/qc/adata.h5ad", dataset=CELLPLM_HELDOUT),
    output:
        model="results/cellplm/pretrain/model.pt",
        history="results/cellplm/pretrain/history.tsv",
        run="results/cellplm/pretrain/run.json",
    log:
        "logs/cellplm_pretrain.log",
    benchmark:
        "benchmarks/cellplm_pretrain.tsv"
    conda:
        "../../envs/cellplm.yaml"
    threads: CELLPLM["threads"]
    resources:
        gpu=1,
        mem_mb=mem_by_input(4000, 40),
        runtime=runtime_min(720),
    params:
        datasets=CELLPLM_CORPUS,
        cfg={k: CELLPLM[k] for k in ("model", "masking", "pretrain")},
        device=CELLPLM["device"],
        checkpoints="results/cellplm/pretrain/checkpoints",
    message:
        "Pre-training CellPLM on {params.datasets}"
    script:
        "../scripts/cellplm_pretrain.py"


rule cellplm_embedding:
    input:
        model="results/cellplm/pretrain/model.pt",
        adata="results/{dataset}/qc/adata.h5ad",
    output:
        scores="results/cellplm/{dataset}/embedding/seed{seed}.tsv",
        embeddings="results/cellplm/{dataset}/embedding/seed{seed}.h5ad",
    log:
        "logs/cellplm_task/{dataset}_embedding_seed{seed}.log",
    benchmark:
        "benchmarks/cellplm_task/{dataset}_embedding_seed{seed}.tsv"
    conda:
        "../../envs/cellplm.yaml"
    threads: CELLPLM["threads"]
    resources:
        gpu=1,
        mem_mb=mem_by_input(4000, 40),
        runtime=runtime_min(60),
    params:
        cfg={k: CELLPLM[k] for k in ("model",)},
        label_key=CELLPLM_LABEL_KEY,
        device=CELLPLM["device"],
        task="embedding",
    message:
        "CellPLM zero-shot embedding of held-out {wildcards.dataset}, seed {wildcards.seed}"
    script:
        "../scripts/cellplm_task.py"


rule cellplm_task:
    input:
        unpack(cellplm_task_inputs),
    output:
        scores="results/cellplm/{dataset}/{ctask}/seed{seed}.tsv",
    log:
        "logs/cellplm_task/{dataset}_{ctask}_seed{seed}.log",
    benchmark:
        "benchmarks/cellplm_task/{dataset}_{ctask}_seed{seed}.tsv"
    wildcard_constraints:
        ctask="denoising|annotation|imputation",
    conda:
        "../../envs/cellplm.yaml"
    threads: CELLPLM["threads"]
    resources:
        gpu=1,
        mem_mb=mem_by_input(4000, 40),
        runtime=runtime_min(240),
    params:
        cfg=cellplm_task_config,
        imputation=without("imputation", "device", "threads", "evaluation"),
        label_key=CELLPLM_LABEL_KEY,
        device=CELLPLM["device"],
        task=lambda wc: wc.ctask,
    message:
        "CellPLM {wildcards.ctask} on held-out {wildcards.dataset}, seed {wildcards.seed}"
    script:
        "../scripts/cellplm_task.py"


rule evaluate_cellplm:
    input:
        scores=[f"results/cellplm/{d}/{t}/seed{s}.tsv" for d, t, s in cellplm_runs()],
    output:
        scores="results/cellplm/scores.tsv",
        summary="results/cellplm/summary.tsv",
    log:
        "logs/evaluate_cellplm.log",
    benchmark:
        "benchmarks/evaluate_cellplm.tsv"
    conda:
        "../../envs/cellplm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime_min(20),
    params:
        runs=cellplm_runs(),
    message:
        "Collecting the CellPLM task scores"
    script:
        "../scripts/evaluate_cellplm.py"
