# Every rule that touches the network: dataset sources, the STRING and MSigDB releases, and the mygene.info
# lookups. Local rules: they run on the submit host, which on most clusters is the only node with internet
# access. Transport settings (mirror, retries, timeouts) are read from the config, not from params: they change
# where bytes come from, never which bytes (the sha256 params do), so they must not trigger reruns.


rule download_dataset:
    output:
        "resources/downloads/{dataset}/download.json",
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/download/{dataset}.tsv"
    localrule: True
    conda:
        "../../envs/download.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=runtime_min(60),
    params:
        source=ds("source"),
        sha256=ds("sha256"),
        metadata=ds("metadata"),
        metadata_sha256=ds("metadata_sha256"),
    message:
        "Downloading (or copying from the mirror) the source of dataset {wildcards.dataset}"
    script:
        "../scripts/download.py"


rule download_string:
    output:
        directory("resources/priors/string/{species}_v{version}"),
    log:
        "logs/download_string/{species}_v{version}.log",
    benchmark:
        "benchmarks/download_string/{species}_v{version}.tsv"
    localrule: True
    conda:
        "../../envs/priors.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=runtime_min(120),
    params:
        taxon=lambda wc: config["species"][wc.species]["taxon"],
        base_url=config["priors"]["string"]["base_url"],
        links=config["priors"]["string"]["links"],
        sha256=config["priors"]["string"]["sha256"],
    message:
        "Downloading STRING v{wildcards.version} for {wildcards.species}"
    script:
        "../scripts/download_string.py"


rule download_hallmark:
    output:
        "resources/priors/msigdb/h.all.v{version}.symbols.gmt",
    log:
        "logs/download_hallmark/{version}.log",
    benchmark:
        "benchmarks/download_hallmark/{version}.tsv"
    localrule: True
    conda:
        "../../envs/priors.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 500 * attempt,
        runtime=runtime_min(30),
    params:
        source=lambda wc: msigdb_source(wc.version),
        sha256=config["priors"]["hallmark"]["sha256"],
    message:
        "Downloading the MSigDB hallmark gene sets v{wildcards.version}"
    script:
        "../scripts/download_hallmark.py"


rule string_mygene:
    input:
        string=string_files,
        gene_table=lambda wc: config["species"][wc.species]["gene_table"],
    output:
        "results/priors/string_{species}_mygene.json",
    log:
        "logs/string_mygene/{species}.log",
    benchmark:
        "benchmarks/string_mygene/{species}.tsv"
    localrule: True
    conda:
        "../../envs/priors.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=runtime_min(60),
    params:
        taxon=lambda wc: config["species"][wc.species]["taxon"],
        on_unreachable=config["priors"]["mygene"]["on_unreachable"],
        cache=config["priors"]["mygene"]["cache"],
    message:
        "Asking mygene.info about the STRING proteins of {wildcards.species} that STRING does not map"
    script:
        "../scripts/string_mygene.py"
