# Gene selection and node features: SPARK-X ranks the genes of spatial datasets; SCTransform-v2 gives
# every dataset its residual features (variable genes, or the top SPARK-X genes for spatial data).


rule spatial_genes:
    input:
        "results/{dataset}/qc/adata.h5ad",
    output:
        report(
            "results/{dataset}/genes/sparkx.tsv",
            caption="../report/sparkx.rst",
            category="Gene selection",
            subcategory="{dataset}",
        ),
    log:
        "logs/spatial_genes/{dataset}.log",
    benchmark:
        "benchmarks/spatial_genes/{dataset}.tsv"
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=mem_by_input(2000, 30),
        runtime=runtime_min(30),
    message:
        "SPARK-X spatially variable genes of dataset {wildcards.dataset}"
    script:
        "../scripts/spatial_genes.py"


rule features:
    input:
        unpack(feature_inputs),
    output:
        "results/{dataset}/features.h5ad",
    log:
        "logs/features/{dataset}.log",
    benchmark:
        "benchmarks/features/{dataset}.tsv"
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=mem_by_input(3000, 60),
        runtime=runtime_min(60),
    params:
        n_genes=config["hvg"]["n"],
        seed=config["features"]["seed"],
        depth_key=config["features"]["depth"],
    message:
        "SCTransform-v2 residual features of dataset {wildcards.dataset}"
    script:
        "../scripts/features.py"
