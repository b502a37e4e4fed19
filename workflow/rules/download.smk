# The only rules that touch the network. Local rules: they run on the submit host, which on most
# clusters is the only node with internet access.


rule download_dataset:
    output:
        directory("resources/downloads/{dataset}"),
    params:
        source=ds("source"),
        sha256=ds("sha256"),
        metadata=ds("metadata"),
        metadata_sha256=ds("metadata_sha256"),
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/download/{dataset}.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=runtime_min(60),
    conda:
        "../../envs/download.yaml"
    message:
        "Downloading (or copying from the mirror) the source of dataset {wildcards.dataset}"
    script:
        "../scripts/download.py"
