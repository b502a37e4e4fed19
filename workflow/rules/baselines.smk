# Gene-embedding baselines of MuSe-GNN: each method on the same graphs and seeds.


rule baseline:
    input:
        graphs=expand("results/{dataset}/graph/graph.h5ad", dataset=DATASETS),
    output:
        "results/baselines/{method}/seed{seed}/embeddings.h5ad",
    log:
        "logs/baseline/{method}_seed{seed}.log",
    benchmark:
        "benchmarks/baseline/{method}_seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["baselines"]["threads"]
    resources:
        mem_mb=mem_by_input(3000, 20),
        runtime=runtime_min(240),
    params:
        cfg=without("baselines", "device", "threads"),
        device=config["baselines"]["device"],
    message:
        "Baseline {wildcards.method} (seed {wildcards.seed}) on {input.graphs}"
    script:
        "../scripts/baseline.py"
