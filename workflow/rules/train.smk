# MuSe-GNN: one model per training group (config train.group_by; the paper: per tissue) across the group's
# dataset graphs; unified gene embeddings per group and seed.


rule train:
    input:
        graphs=group_graphs,
    output:
        embeddings="results/musegnn/{group}/seed{seed}/embeddings.h5ad",
        losses=report(
            "results/musegnn/{group}/seed{seed}/losses.tsv",
            caption="../report/losses.rst",
            category="MuSe-GNN",
            subcategory="{group}, seed {seed}",
        ),
        run="results/musegnn/{group}/seed{seed}/run.json",
    log:
        "logs/train/{group}_seed{seed}.log",
    benchmark:
        "benchmarks/train/{group}_seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=mem_by_input(4000, 40),
        runtime=runtime_min(240),
    params:
        cfg=without("train", "seeds", "device", "threads", "group_by"),
        device=config["train"]["device"],
    message:
        "Training MuSe-GNN for group {wildcards.group} (seed {wildcards.seed}) on {input.graphs}"
    script:
        "../scripts/train.py"
