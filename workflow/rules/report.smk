# The HTML report of the run: one self-contained file.


rule report:
    input:
        unpack(report_inputs),
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
        groups=list(GROUPS),
        runs=[f"{g}, seed {s}" for g in GROUPS for s in SEEDS],
    message:
        "Writing the HTML report results/report.html"
    script:
        "../scripts/report.py"
