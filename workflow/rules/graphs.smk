# Gene graphs per dataset: CS-CORE co-expression on the raw counts of the selected genes.


rule coexpression:
    input:
        "results/{dataset}/features.h5ad",
    output:
        "results/{dataset}/graph/coexpression.h5ad",
    params:
        p_threshold=config["coexpression"]["p_threshold"],
        fdr=config["coexpression"]["fdr"],
        min_abs_rho=config["coexpression"]["min_abs_rho"],
        top_k=config["coexpression"]["top_k"],
        signed=config["coexpression"]["signed"],
        keep_diag=config["coexpression"]["keep_diag"],
        dtype=config["coexpression"]["dtype"],
        device=config["coexpression"]["device"],
        max_invalid_variance_frac=config["checks"]["max_invalid_variance_frac"],
        max_clipped_frac=config["checks"]["max_clipped_frac"],
    log:
        "logs/coexpression/{dataset}.log",
    benchmark:
        "benchmarks/coexpression/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=mem_by_input(3000, 40),
        runtime=runtime_min(60),
    conda:
        "../../envs/graphs.yaml"
    message:
        "CS-CORE co-expression graph of dataset {wildcards.dataset}"
    script:
        "../scripts/coexpression.py"
