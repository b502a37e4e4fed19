# Config and sheet validation, the dataset table, parameter helpers and the default targets.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from genegraph.config import complete, load_schema  # noqa: E402
from genegraph.data.integrity import mark_damaged  # noqa: E402
from genegraph.data.sheet import load_sheet  # noqa: E402
from genegraph.data.sheet import load_schema as load_sheet_schema  # noqa: E402
from genegraph.errors import DataError  # noqa: E402
from genegraph.graphs.priors.hallmark import msigdb_url  # noqa: E402

# The config schema is the one source of every option's type, default and description: the merged config
# files are completed with its defaults and validated against it before anything runs.
try:
    _complete = complete(
        load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml"), dict(config)
    )
    SHEET = load_sheet(
        _complete["datasets"],
        load_sheet_schema(REPO / "workflow" / "schemas" / "datasets.schema.yaml"),
    )
except DataError as err:
    raise WorkflowError(str(err)) from None
config.update(_complete)

# A finished file that cannot be read back (truncated h5ad or checkpoint) is marked outdated so that it is
# recomputed, never handed to the next job as good. Only the main process sweeps (not a job re-parsing this).
if workflow.is_main_process:
    for _path, _why in mark_damaged(Path("results")):
        logger.warning(
            f"{_path} is damaged ({_why}): it is recomputed, with everything after it"
        )

_unknown_species = SHEET.loc[~SHEET["species"].isin(list(config["species"]))]
if not _unknown_species.empty:
    raise WorkflowError(
        "invalid dataset sheet:\n  "
        + "\n  ".join(
            f"{Path(config['datasets']).name} dataset '{d}', column 'species': '{s}' is not in the "
            f"config's species table ({', '.join(config['species'])})"
            for d, s in _unknown_species["species"].items()
        )
    )

PRIORS = config["priors"]
_bad = [
    s
    for s in PRIORS["string"]["species"] + [PRIORS["hallmark"]["species"]]
    if s not in config["species"]
]
if _bad:
    raise WorkflowError(
        f"config priors: species {_bad} are not in the config's species table"
    )
if PRIORS["string"]["source"] == "embedded" and PRIORS["string"]["species"] != [
    "human"
]:
    raise WorkflowError(
        "config priors.string: the embedded STRING subset is human; set species: [human] "
        "or source: download"
    )

DATASETS = SHEET.index[SHEET["enabled"].astype(bool)].tolist()
if not DATASETS:
    raise WorkflowError(f"the dataset sheet {config['datasets']} has no enabled row")


def ds(column):
    """Params function: the sheet value of ``column`` for the job's dataset (None when unset)."""
    return lambda wc: SHEET.at[wc.dataset, column]


def qc_settings(wc):
    """Params function: the QC section with the dataset's own sheet overrides (columns of the same name)."""
    own = {k: SHEET.at[wc.dataset, k] for k in config["qc"] if k in SHEET.columns}
    return {**config["qc"], **{k: v for k, v in own.items() if v is not None}}


def without(section, *keys):
    """A config section without its run-level keys (those must not rerun every job of the section)."""
    return {k: v for k, v in config[section].items() if k not in keys}


def gene_table(wc):
    return config["species"][SHEET.at[wc.dataset, "species"]]["gene_table"]


def mem_by_input(base_mb, per_input_mb):
    """Resources function: ``base_mb`` + ``per_input_mb`` per MB of input, doubled on each retry."""
    return lambda wc, input, attempt: int(
        (base_mb + per_input_mb * input.size_mb) * 2 ** (attempt - 1)
    )


def runtime_min(minutes):
    """Resources function: ``minutes`` (wall clock), doubled on each retry."""
    return lambda wc, attempt: minutes * 2 ** (attempt - 1)


def feature_inputs(wc):
    """Inputs of the feature step: the QC'd dataset, plus the SPARK-X ranking for spatial datasets."""
    inputs = {"qc": f"results/{wc.dataset}/qc/adata.h5ad"}
    if SHEET.at[wc.dataset, "modality"] == "spatial":
        inputs["spatial_genes"] = f"results/{wc.dataset}/genes/sparkx.tsv"
    return inputs


def string_species_of(wc):
    """The species whose STRING network a dataset uses: its own when configured, else the first one
    (reached through orthologs)."""
    own = SHEET.at[wc.dataset, "species"]
    return own if own in PRIORS["string"]["species"] else PRIORS["string"]["species"][0]


def species_table(wc):
    """Params function: the species-table entries a dataset's prior edges depend on (its own species, its
    STRING species and the hallmark species): editing one of them reruns exactly those jobs.
    """
    names = {
        SHEET.at[wc.dataset, "species"],
        string_species_of(wc),
        PRIORS["hallmark"]["species"],
    }
    return {name: config["species"][name] for name in sorted(names)}


def string_files(wc):
    """The folder of STRING files of a species: the embedded demo subset or the downloaded release."""
    if PRIORS["string"]["source"] == "embedded":
        return "resources/priors/string_demo"
    return f"resources/priors/string/{wc.species}_v{PRIORS['string']['version']}"


def hallmark_gmt():
    """The hallmark GMT: the embedded file, or the downloaded release of the configured version."""
    if PRIORS["hallmark"]["source"] == "embedded":
        return PRIORS["hallmark"]["gmt"]
    return f"resources/priors/msigdb/h.all.v{PRIORS['hallmark']['version']}.symbols.gmt"


def msigdb_source(version):
    return PRIORS["hallmark"].get("url") or msigdb_url(version)


def prior_inputs(wc):
    """Inputs of the prior-edge step of one dataset."""
    return {
        "graph": f"results/{wc.dataset}/graph/coexpression.h5ad",
        "string": f"results/priors/string_{string_species_of(wc)}.tsv.gz",
        "hallmark": hallmark_gmt(),
        "orthologs": PRIORS["orthologs"],
    }


SEEDS = [int(s) for s in config["train"]["seeds"]]
FIRST_SEED = SEEDS[0]
METHODS = list(config["evaluate"]["methods"])
BASELINES = [m for m in METHODS if m != "musegnn"]


def embeddings_path(method, seed):
    if method == "musegnn":
        return f"results/musegnn/seed{seed}/embeddings.h5ad"
    return f"results/baselines/{method}/seed{seed}/embeddings.h5ad"


def evaluation_runs(wc=None):
    """Every (method, seed) the evaluation scores."""
    return [[m, s] for m in METHODS for s in SEEDS]


def evaluation_inputs(wc):
    inputs = {f"{m}_seed{s}": embeddings_path(m, s) for m, s in evaluation_runs()}
    inputs["graphs"] = expand("results/{dataset}/graph/graph.h5ad", dataset=DATASETS)
    return inputs


def function_methods(wc=None):
    """Embeddings compared in function prediction (raw features are always added)."""
    return [m for m in ("musegnn", "pca") if m in METHODS]


def function_inputs(wc):
    inputs = {m: embeddings_path(m, FIRST_SEED) for m in function_methods()}
    inputs["graphs"] = expand("results/{dataset}/graph/graph.h5ad", dataset=DATASETS)
    inputs["labels"] = [t["path"] for t in config["function_prediction"]["tasks"]]
    return inputs


#: Cell-level task stages: each has workflow/rules/<stage>.smk defining <stage>_targets() (its final outputs)
#: and <stage>_report_inputs() (what its report section reads), and a report module genegraph.report.<stage>.
TASK_STAGES = ("protein", "imputation", "cellplm")


def report_inputs(wc):
    """Inputs of the report: the gene-level results, plus "<stage>__<name>" inputs of each enabled task stage."""
    inputs = {
        "qc_summary": "results/qc_summary.tsv",
        "qc_figures": expand("results/{dataset}/qc/qc.png", dataset=DATASETS),
        "graphs_summary": "results/graphs_summary.tsv",
        "losses": expand("results/musegnn/seed{seed}/losses.tsv", seed=SEEDS),
        "runs": expand("results/musegnn/seed{seed}/run.json", seed=SEEDS),
        "embedding_rows": "results/evaluation/modules.h5ad",
        "modules": "results/evaluation/module_table.tsv",
        "summary": "results/evaluation/summary.tsv",
        "function": "results/evaluation/function_prediction.tsv",
    }
    for stage in TASK_STAGES:
        if stage in config["stages"]:
            stage_inputs = globals()[f"{stage}_report_inputs"]()
            inputs.update({f"{stage}__{k}": v for k, v in stage_inputs.items()})
    return inputs


def final_targets():
    """Targets of the default target: the outputs of every enabled stage for every enabled dataset."""
    targets = []
    if "qc" in config["stages"]:
        targets += expand("results/{dataset}/qc/adata.h5ad", dataset=DATASETS)
        targets.append("results/qc_summary.tsv")
    if "features" in config["stages"]:
        targets += expand("results/{dataset}/features.h5ad", dataset=DATASETS)
    if "graphs" in config["stages"]:
        targets += expand("results/{dataset}/graph/graph.h5ad", dataset=DATASETS)
        targets.append("results/graphs_summary.tsv")
    if "train" in config["stages"]:
        targets += expand("results/musegnn/seed{seed}/embeddings.h5ad", seed=SEEDS)
    if "evaluate" in config["stages"]:
        targets += [
            "results/evaluation/summary.tsv",
            "results/evaluation/module_table.tsv",
            "results/evaluation/function_prediction.tsv",
        ]
    for stage in TASK_STAGES:
        if stage in config["stages"]:
            targets += globals()[f"{stage}_targets"]()
    if "report" in config["stages"]:
        targets.append("results/report.html")
    return targets
