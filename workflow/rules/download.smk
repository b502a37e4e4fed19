# Dataset downloads. Local rules: they run on the submit host, which on most clusters is the only node
# with internet access. The declared output is the manifest: the verified source files beside it are
# replaced only after a new copy is verified, so a failed re-download (Snakemake deletes a failed job's
# outputs) leaves the last good copy in place.


rule download_dataset:
    output:
        "resources/downloads/{dataset}/download.json",
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
