# MuSe-GNN: one model trained across all dataset graphs; unified gene embeddings per seed.


rule train:
    input:
        graphs=expand("results/{dataset}/graph/graph.h5ad", dataset=DATASETS),
    output:
        embeddings="results/musegnn/seed{seed}/embeddings.h5ad",
        losses=report(
            "results/musegnn/seed{seed}/losses.tsv",
            caption="../report/losses.rst",
            category="MuSe-GNN",
            subcategory="seed {seed}",
        ),
        run="results/musegnn/seed{seed}/run.json",
    log:
        "logs/train/seed{seed}.log",
    benchmark:
        "benchmarks/train/seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=mem_by_input(4000, 40),
        runtime=runtime_min(240),
    params:
        cfg=without("train", "seeds", "device", "threads"),
        device=config["train"]["device"],
    message:
        "Training MuSe-GNN (seed {wildcards.seed}) on {input.graphs}"
    script:
        "../scripts/train.py"
