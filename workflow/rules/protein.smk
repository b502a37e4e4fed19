# Protein prediction from RNA on every CITE-seq dataset (and the cross-dataset tasks of config protein.cross):
# one recorded split per task and seed, every method x seed on it, scored on the test cells; scMoGNN's matching
# and joint-embedding variants on the within-dataset tasks.


rule protein_split:
    input:
        adata=protein_adata,
    output:
        "results/protein/{task}/split.tsv",
    log:
        "logs/protein_split/{task}.log",
    benchmark:
        "benchmarks/protein_split/{task}.tsv"
    wildcard_constraints:
        task="|".join(PROTEIN_TASKS) or "none",
    conda:
        "../../envs/protein.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 20),
        runtime=runtime_min(20),
    params:
        datasets=protein_datasets,
        seeds=PROTEIN_SEEDS,
        cfg={k: PROTEIN[k] for k in ("split", "transforms")},
    message:
        "Train / validation / test cells of protein task {wildcards.task}"
    script:
        "../scripts/protein_split.py"


rule train_protein:
    input:
        unpack(protein_inputs),
    output:
        predictions="results/protein/{task}/{pmethod}/seed{seed}/predictions.h5ad",
        model="results/protein/{task}/{pmethod}/seed{seed}/model.pt",
        losses="results/protein/{task}/{pmethod}/seed{seed}/losses.tsv",
        run="results/protein/{task}/{pmethod}/seed{seed}/run.json",
    log:
        "logs/train_protein/{task}_{pmethod}_seed{seed}.log",
    benchmark:
        "benchmarks/train_protein/{task}_{pmethod}_seed{seed}.tsv"
    wildcard_constraints:
        task="|".join(PROTEIN_TASKS) or "none",
        pmethod="|".join(PROTEIN_TRAINED) or "none",
    conda:
        "../../envs/protein.yaml"
    threads: PROTEIN["threads"]
    resources:
        gpu=1,
        mem_mb=mem_by_input(3000, 40),
        runtime=runtime_min(240),
    params:
        datasets=protein_datasets,
        cfg=protein_method_config,
        device=PROTEIN["device"],
    message:
        "Protein prediction on task {wildcards.task}: {wildcards.pmethod}, seed {wildcards.seed}"
    script:
        "../scripts/train_protein.py"


rule protein_baseline:
    input:
        unpack(protein_inputs),
    output:
        predictions="results/protein/{task}/{pmethod}/seed{seed}/predictions.h5ad",
        run="results/protein/{task}/{pmethod}/seed{seed}/run.json",
    log:
        "logs/protein_baseline/{task}_{pmethod}_seed{seed}.log",
    benchmark:
        "benchmarks/protein_baseline/{task}_{pmethod}_seed{seed}.tsv"
    wildcard_constraints:
        task="|".join(PROTEIN_TASKS) or "none",
        pmethod="|".join(PROTEIN_BASELINES) or "none",
    conda:
        "../../envs/protein.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 40),
        runtime=runtime_min(30),
    params:
        datasets=protein_datasets,
        cfg={k: PROTEIN[k] for k in ("split", "transforms", "baselines")},
        device="cpu",
    message:
        "Protein prediction on task {wildcards.task}: baseline {wildcards.pmethod}, seed {wildcards.seed}"
    script:
        "../scripts/train_protein.py"


rule protein_variant:
    input:
        adata="results/{task}/qc/adata.h5ad",
        split="results/protein/{task}/split.tsv",
    output:
        "results/protein/{task}/{variant}/seed{seed}.tsv",
    log:
        "logs/protein_variant/{task}_{variant}_seed{seed}.log",
    benchmark:
        "benchmarks/protein_variant/{task}_{variant}_seed{seed}.tsv"
    wildcard_constraints:
        task="|".join(CITE) or "none",
        variant="matching|joint_embedding",
    conda:
        "../../envs/protein.yaml"
    threads: PROTEIN["threads"]
    resources:
        gpu=1,
        mem_mb=mem_by_input(3000, 40),
        runtime=runtime_min(120),
    params:
        cfg={
            k: PROTEIN[k]
            for k in ("split", "transforms", "matching", "joint_embedding")
        },
        label_key=PROTEIN["label_key"],
        device=PROTEIN["device"],
    message:
        "scMoGNN {wildcards.variant} on dataset {wildcards.task}, seed {wildcards.seed}"
    script:
        "../scripts/protein_variant.py"


rule evaluate_protein:
    input:
        predictions=[
            f"results/protein/{t}/{m}/seed{s}/predictions.h5ad"
            for t, m, s in protein_runs()
        ],
        matching=(
            protein_variant_paths("matching") if "matching" in PROTEIN_VARIANTS else []
        ),
        joint_embedding=(
            protein_variant_paths("joint_embedding")
            if "joint_embedding" in PROTEIN_VARIANTS
            else []
        ),
    output:
        scores="results/protein/scores.tsv",
        summary="results/protein/summary.tsv",
        per_protein="results/protein/per_protein.tsv",
        matching="results/protein/matching.tsv",
        joint_embedding="results/protein/joint_embedding.tsv",
    log:
        "logs/evaluate_protein.log",
    benchmark:
        "benchmarks/evaluate_protein.tsv"
    conda:
        "../../envs/protein.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 20),
        runtime=runtime_min(30),
    params:
        runs=protein_runs(),
    message:
        "Scoring the protein predictions on the test cells"
    script:
        "../scripts/evaluate_protein.py"
