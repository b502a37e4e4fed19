# Config and sheet validation, the dataset table, parameter helpers and the default targets.
import re
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


def _sorted_keys(value):
    """``value`` with every mapping's keys in sorted order (lists keep theirs)."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


# Keys sorted: Snakemake compares params by their text, so the same settings merged from config files in
# another order must not look changed (a rerun of every job that reads them).
config.clear()
config.update(_sorted_keys(_complete))

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
    STRING species and the hallmark species): editing one of them reruns exactly those jobs. Keys are sorted,
    so that the same table written in another key order is not a change.
    """
    names = {
        SHEET.at[wc.dataset, "species"],
        string_species_of(wc),
        PRIORS["hallmark"]["species"],
    }
    return {
        name: dict(sorted(config["species"][name].items())) for name in sorted(names)
    }


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


def group_of(dataset):
    """The training group of a dataset (config train.group_by): one MuSe-GNN and one of each baseline per
    group, as the paper trained one model per tissue. Names are made path-safe."""
    key = config["train"]["group_by"]
    row = SHEET.loc[dataset]
    value = {
        None: "all",
        "tissue": row["tissue"],
        "modality": row["modality"],
        "share_key": f"{row['modality']}_{row['tissue']}",
    }[key]
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(value))


GROUPS = {}
for _dataset in DATASETS:
    GROUPS.setdefault(group_of(_dataset), []).append(_dataset)


def group_graphs(wc):
    """The graph files of one training group."""
    return expand("results/{dataset}/graph/graph.h5ad", dataset=GROUPS[wc.group])


def embeddings_path(method, group, seed):
    if method == "musegnn":
        return f"results/musegnn/{group}/seed{seed}/embeddings.h5ad"
    return f"results/baselines/{method}/{group}/seed{seed}/embeddings.h5ad"


def evaluation_runs(wc=None):
    """Every (method, seed) the evaluation scores (over all groups)."""
    return [[m, s] for m in METHODS for s in SEEDS]


def evaluation_inputs(wc):
    inputs = {
        f"{m}_seed{s}": [embeddings_path(m, g, s) for g in GROUPS]
        for m, s in evaluation_runs()
    }
    inputs["graphs"] = expand("results/{dataset}/graph/graph.h5ad", dataset=DATASETS)
    return inputs


def function_methods(wc=None):
    """Embeddings compared in function prediction (raw features are always added)."""
    return [m for m in ("musegnn", "pca") if m in METHODS]


def function_inputs(wc):
    inputs = {
        m: [embeddings_path(m, g, FIRST_SEED) for g in GROUPS]
        for m in function_methods()
    }
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
        "losses": expand(
            "results/musegnn/{group}/seed{seed}/losses.tsv", group=GROUPS, seed=SEEDS
        ),
        "runs": expand(
            "results/musegnn/{group}/seed{seed}/run.json", group=GROUPS, seed=SEEDS
        ),
        "embedding_rows": expand(
            "results/evaluation/modules/{group}.h5ad", group=GROUPS
        ),
        "modules": expand("results/evaluation/modules/{group}_table.tsv", group=GROUPS),
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
        targets += expand(
            "results/musegnn/{group}/seed{seed}/embeddings.h5ad",
            group=GROUPS,
            seed=SEEDS,
        )
    if "evaluate" in config["stages"]:
        targets += [
            "results/evaluation/summary.tsv",
            "results/evaluation/function_prediction.tsv",
        ]
        targets += expand("results/evaluation/modules/{group}_table.tsv", group=GROUPS)
    for stage in TASK_STAGES:
        if stage in config["stages"]:
            targets += globals()[f"{stage}_targets"]()
    if "report" in config["stages"]:
        targets.append("results/report.html")
    return targets


# --- imputation stage (rules in imputation.smk) ---

SPATIAL = [d for d in DATASETS if SHEET.at[d, "modality"] == "spatial"]
IMPUTATION = config["imputation"]
IMPUTATION_METHODS = list(IMPUTATION["evaluation"]["methods"])
IMPUTATION_SEEDS = [int(s) for s in IMPUTATION["evaluation"]["seeds"]]
TRAINED_IMPUTATION = [m for m in IMPUTATION_METHODS if m.startswith("spaformer")]
BASELINE_IMPUTATION = [m for m in IMPUTATION_METHODS if not m.startswith("spaformer")]


def imputation_runs():
    """Every (dataset, method, seed) the evaluation scores."""
    return [
        [d, m, s] for d in SPATIAL for m in IMPUTATION_METHODS for s in IMPUTATION_SEEDS
    ]


def imputation_targets():
    if not SPATIAL:
        return []
    return ["results/imputation/scores.tsv", "results/imputation/summary.tsv"]


def imputation_report_inputs():
    if not SPATIAL:
        return {}
    first, seed = SPATIAL[0], IMPUTATION_SEEDS[0]
    method = TRAINED_IMPUTATION[0] if TRAINED_IMPUTATION else IMPUTATION_METHODS[0]
    return {
        "scores": "results/imputation/scores.tsv",
        "summary": "results/imputation/summary.tsv",
        "mask": f"results/imputation/{first}/mask.h5ad",
        "imputed": f"results/imputation/{first}/{method}/seed{seed}/imputed.h5ad",
    }


# --- protein stage (rules in protein.smk) ---

PROTEIN = config["protein"]
CITE = [d for d in DATASETS if SHEET.at[d, "modality"] == "cite"]
PROTEIN_METHODS = list(PROTEIN["methods"])
PROTEIN_SEEDS = [int(s) for s in PROTEIN["seeds"]]
PROTEIN_TRAINED = [
    m for m in PROTEIN_METHODS if m.startswith(("scmognn", "scmoformer"))
]
PROTEIN_BASELINES = [m for m in PROTEIN_METHODS if m not in PROTEIN_TRAINED]


def _protein_tasks():
    """Task id -> its datasets: each CITE-seq dataset alone, then each cross task as (train, test)."""
    tasks = {d: [d] for d in CITE}
    for pair in PROTEIN["cross"]:
        missing = [pair[r] for r in ("train", "test") if pair[r] not in DATASETS]
        if missing:  # a sheet without the row (or with it disabled) skips the task
            logger.warning(
                f"config protein.cross: skipping {pair['train']} -> {pair['test']}: "
                f"{', '.join(missing)} not an enabled row of the sheet"
            )
            continue
        for role in ("train", "test"):
            if SHEET.at[pair[role], "modality"] != "cite":
                raise WorkflowError(
                    f"config protein.cross: dataset '{pair[role]}' is not a cite row"
                )
        tasks[f"{pair['train']}_to_{pair['test']}"] = [pair["train"], pair["test"]]
    return tasks


PROTEIN_TASKS = _protein_tasks() if "protein" in config["stages"] else {}
PROTEIN_VARIANTS = list(PROTEIN["variants"])


def protein_runs():
    """Every (task, method, seed) the evaluation scores."""
    return [
        [t, m, s] for t in PROTEIN_TASKS for m in PROTEIN_METHODS for s in PROTEIN_SEEDS
    ]


def protein_variant_paths(variant):
    return [
        f"results/protein/{d}/{variant}/seed{s}.tsv"
        for d in CITE
        for s in PROTEIN_SEEDS
    ]


def protein_targets():
    if not PROTEIN_TASKS:
        return []
    return ["results/protein/scores.tsv", "results/protein/summary.tsv"]


def protein_report_inputs():
    if not PROTEIN_TASKS:
        return {}
    first, seed = next(iter(PROTEIN_TASKS)), PROTEIN_SEEDS[0]
    method = PROTEIN_TRAINED[0] if PROTEIN_TRAINED else PROTEIN_METHODS[0]
    return {
        "scores": "results/protein/scores.tsv",
        "summary": "results/protein/summary.tsv",
        "per_protein": "results/protein/per_protein.tsv",
        "matching": "results/protein/matching.tsv",
        "joint_embedding": "results/protein/joint_embedding.tsv",
        "predictions": f"results/protein/{first}/{method}/seed{seed}/predictions.h5ad",
    }


def protein_adata(wc):
    return [f"results/{d}/qc/adata.h5ad" for d in PROTEIN_TASKS[wc.task]]


def protein_datasets(wc):
    return PROTEIN_TASKS[wc.task]


def protein_method_config(wc):
    """The config sections a method reads (so that editing one method's settings reruns only its jobs)."""
    own = "scmognn" if wc.pmethod.startswith("scmognn") else "scmoformer"
    return {k: PROTEIN[k] for k in ("split", "transforms", own)}


def protein_inputs(wc):
    """The task's QC'd datasets and split; hallmark sets for scMoGNN, the STRING links for scMoFormer."""
    inputs = {
        "adata": protein_adata(wc),
        "split": f"results/protein/{wc.task}/split.tsv",
    }
    if wc.pmethod.startswith("scmognn"):
        inputs["gmt"] = hallmark_gmt()
    if wc.pmethod.startswith("scmoformer") and wc.pmethod != "scmoformer_no_prior":
        species = SHEET.at[PROTEIN_TASKS[wc.task][0], "species"]
        if species not in PRIORS["string"]["species"]:
            species = PRIORS["string"]["species"][0]
        inputs["string"] = f"results/priors/string_{species}.tsv.gz"
    return inputs


# --- cellplm stage (rules in cellplm.smk) ---

CELLPLM = config["cellplm"]
CELLPLM_SEEDS = [int(s) for s in CELLPLM["seeds"]]
CELLPLM_HELDOUT = [d for d in CELLPLM["heldout"] if d in DATASETS]
CELLPLM_CORPUS = [d for d in DATASETS if d not in CELLPLM["heldout"]]
#: Cell-type labels of the embedding and annotation tasks: the canonical obs column of the sheet's celltype_key.
CELLPLM_LABEL_KEY = "celltype"


def _cellplm_task_applies(dataset, task):
    """Imputation needs a spatial dataset (and the imputation stage's hold-out); annotation needs labels, which
    only the task job can see: it runs and writes an empty table where there are none.
    """
    if task == "imputation":
        return SHEET.at[dataset, "modality"] == "spatial"
    return True


def cellplm_runs():
    """Every (dataset, task, seed) of the downstream benchmark."""
    return [
        [d, t, s]
        for d in CELLPLM_HELDOUT
        for t in CELLPLM["tasks"]
        if _cellplm_task_applies(d, t)
        for s in CELLPLM_SEEDS
    ]


def cellplm_targets():
    if not CELLPLM_CORPUS:
        return []
    return ["results/cellplm/pretrain/model.pt"] + (
        ["results/cellplm/scores.tsv", "results/cellplm/summary.tsv"]
        if cellplm_runs()
        else []
    )


def cellplm_report_inputs():
    if not CELLPLM_CORPUS:
        return {}
    inputs = {
        "history": "results/cellplm/pretrain/history.tsv",
        "run": "results/cellplm/pretrain/run.json",
    }
    if cellplm_runs():
        inputs["summary"] = "results/cellplm/summary.tsv"
        embedded = [d for d, t, s in cellplm_runs() if t == "embedding"]
        if embedded:
            inputs["embedding"] = (
                f"results/cellplm/{embedded[0]}/embedding/seed{CELLPLM_SEEDS[0]}.h5ad"
            )
    return inputs


def cellplm_task_inputs(wc):
    inputs = {
        "model": "results/cellplm/pretrain/model.pt",
        "adata": f"results/{wc.dataset}/qc/adata.h5ad",
    }
    if wc.ctask == "imputation":
        inputs["mask"] = f"results/imputation/{wc.dataset}/mask.h5ad"
    return inputs


def cellplm_task_config(wc):
    """The config sections a task reads (model settings are needed to rebuild the from-scratch arm)."""
    return {k: CELLPLM[k] for k in ("model", wc.ctask)}
