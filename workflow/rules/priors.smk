# Prior-knowledge resources built from the downloads, without network: a species' STRING proteins mapped to
# genes and its gene-gene link table, which every graph job of that species reads.


rule string_gene_links:
    input:
        string=string_files,
        gene_table=lambda wc: config["species"][wc.species]["gene_table"],
        mygene="results/priors/string_{species}_mygene.json",
    output:
        links="results/priors/string_{species}.tsv.gz",
        mapping="results/priors/string_{species}_proteins.tsv.gz",
        summary="results/priors/string_{species}_summary.json",
    log:
        "logs/string_gene_links/{species}.log",
    benchmark:
        "benchmarks/string_gene_links/{species}.tsv"
    conda:
        "../../envs/priors.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=runtime_min(60),
    params:
        taxon=lambda wc: config["species"][wc.species]["taxon"],
    message:
        "Mapping STRING proteins of {wildcards.species} to genes"
    script:
        "../scripts/string_gene_links.py"
