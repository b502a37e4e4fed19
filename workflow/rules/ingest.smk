# Read a downloaded source into the canonical dataset file (integer counts, symbols, provenance).


rule ingest:
    input:
        source="resources/downloads/{dataset}/download.json",
        gene_table=gene_table,
    output:
        "results/{dataset}/dataset.h5ad",
    log:
        "logs/ingest/{dataset}.log",
    benchmark:
        "benchmarks/ingest/{dataset}.tsv"
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    resources:
        mem_mb=mem_by_input(2000, 20),
        runtime=runtime_min(30),
    params:
        modality=ds("modality"),
        tissue=ds("tissue"),
        species=ds("species"),
        format=ds("format"),
        gene_id=ds("gene_id"),
        orientation=ds("orientation"),
        matrix_key=ds("matrix_key"),
        spatial_key=ds("spatial_key"),
        protein_key=ds("protein_key"),
        gene_prefix=ds("gene_prefix"),
        subset=ds("subset"),
        batch_key=ds("batch_key"),
        celltype_key=ds("celltype_key"),
        min_gene_table_frac=config["checks"]["min_gene_table_frac"],
    message:
        "Reading dataset {wildcards.dataset} into its canonical AnnData"
    script:
        "../scripts/ingest.py"
