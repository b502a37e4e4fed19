# Cell and gene QC per dataset, and a summary over all datasets.


rule qc:
    input:
        "results/{dataset}/dataset.h5ad",
    output:
        h5ad="results/{dataset}/qc/adata.h5ad",
        metrics=report(
            "results/{dataset}/qc/metrics.tsv",
            caption="../report/qc_metrics.rst",
            category="Quality control",
            subcategory="{dataset}",
        ),
        figure=report(
            "results/{dataset}/qc/qc.png",
            caption="../report/qc_figure.rst",
            category="Quality control",
            subcategory="{dataset}",
        ),
    log:
        "logs/qc/{dataset}.log",
    benchmark:
        "benchmarks/qc/{dataset}.tsv"
    conda:
        "../../envs/qc.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 20),
        runtime=runtime_min(30),
    params:
        qc=qc_settings,
        min_dataset_cells=config["checks"]["min_dataset_cells"],
    message:
        "QC of dataset {wildcards.dataset}"
    script:
        "../scripts/qc.py"


rule qc_summary:
    input:
        expand("results/{dataset}/qc/metrics.tsv", dataset=DATASETS),
    output:
        report(
            "results/qc_summary.tsv",
            caption="../report/qc_summary.rst",
            category="Quality control",
        ),
    log:
        "logs/qc_summary.log",
    benchmark:
        "benchmarks/qc_summary.tsv"
    localrule: True
    conda:
        "../../envs/qc.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=runtime_min(10),
    params:
        datasets=DATASETS,
        annotation={
            d: SHEET.loc[d, ["modality", "tissue", "species"]].to_dict()
            for d in DATASETS
        },
    script:
        "../scripts/qc_summary.py"
