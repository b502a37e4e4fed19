# genegraph: single-cell datasets -> QC -> gene graphs -> MuSe-GNN gene embeddings.
# `snakemake -c 2` runs the stages listed in config `stages` for every enabled row of the dataset sheet.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(DATASETS),
    seed=r"\d+",
    method="|".join(BASELINES) or "none",
    group="|".join(GROUPS),


include: "workflow/rules/download.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/graphs.smk"
include: "workflow/rules/priors.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/protein.smk"
include: "workflow/rules/imputation.smk"
include: "workflow/rules/cellplm.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(),
