# The HTML report of the run: one self-contained file.


rule report:
    input:
        qc_summary="results/qc_summary.tsv",
        qc_figures=expand("results/{dataset}/qc/qc.png", dataset=DATASETS),
        graphs_summary="results/graphs_summary.tsv",
        losses=expand("results/musegnn/seed{seed}/losses.tsv", seed=SEEDS),
        runs=expand("results/musegnn/seed{seed}/run.json", seed=SEEDS),
        embedding_rows="results/evaluation/modules.h5ad",
        modules="results/evaluation/module_table.tsv",
        summary="results/evaluation/summary.tsv",
        function="results/evaluation/function_prediction.tsv",
    output:
        report(
            "results/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    localrule: True
    conda:
        "../../envs/qc.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=runtime_min(20),
    params:
        datasets=DATASETS,
        seeds=SEEDS,
    message:
        "Writing the HTML report results/report.html"
    script:
        "../scripts/report.py"
