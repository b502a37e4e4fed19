# Gene-embedding baselines of MuSe-GNN: each method on the same groups, graphs and seeds.


rule baseline:
    input:
        graphs=group_graphs,
    output:
        "results/baselines/{method}/{group}/seed{seed}/embeddings.h5ad",
    log:
        "logs/baseline/{method}_{group}_seed{seed}.log",
    benchmark:
        "benchmarks/baseline/{method}_{group}_seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["baselines"]["threads"]
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(240),
    params:
        cfg=without("baselines", "device", "threads"),
        device=config["baselines"]["device"],
        equal_epochs=config["train"]["epochs"],
    message:
        "Baseline {wildcards.method} for group {wildcards.group} (seed {wildcards.seed}) on {input.graphs}"
    script:
        "../scripts/baseline.py"
