# Config and sheet validation, the dataset table, wildcard constraints, parameter helpers and targets.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from genegraph.errors import DataError  # noqa: E402
from genegraph.sheet import load_schema, load_sheet  # noqa: E402

validate(config, REPO / "workflow" / "schemas" / "config.schema.yaml")

try:
    SHEET = load_sheet(config["datasets"], load_schema(REPO / "workflow" / "schemas" / "datasets.schema.yaml"))
except DataError as err:
    raise WorkflowError(str(err)) from None

_unknown_species = SHEET.loc[~SHEET["species"].isin(list(config["species"]))]
if not _unknown_species.empty:
    raise WorkflowError(
        "invalid dataset sheet:\n  "
        + "\n  ".join(
            f"{Path(config['datasets']).name} dataset '{d}', column 'species': '{s}' is not in the config's "
            f"species table ({', '.join(config['species'])})"
            for d, s in _unknown_species["species"].items()
        )
    )

DATASETS = SHEET.index[SHEET["enabled"].astype(bool)].tolist()
if not DATASETS:
    raise WorkflowError(f"the dataset sheet {config['datasets']} has no enabled row")


def ds(column):
    """Params function: the sheet value of ``column`` for the job's dataset (None when unset)."""
    return lambda wc: SHEET.at[wc.dataset, column]


def qc_param(name):
    """Params function: the dataset's QC override for ``name``, else the config default."""

    def value(wc):
        own = SHEET.at[wc.dataset, name] if name in SHEET.columns else None
        return own if own is not None else config["qc"][name]

    return value


def gene_table(wc):
    return config["species"][SHEET.at[wc.dataset, "species"]]["gene_table"]


def mem_by_input(base_mb, per_input_mb):
    """Resources function: ``base_mb`` + ``per_input_mb`` per MB of input, doubled on each retry."""
    return lambda wc, input, attempt: int((base_mb + per_input_mb * input.size_mb) * 2 ** (attempt - 1))


def runtime_min(minutes):
    """Resources function: ``minutes`` (wall clock), doubled on each retry."""
    return lambda wc, attempt: minutes * 2 ** (attempt - 1)


def final_targets():
    """Targets of the default target: the outputs of every enabled stage for every enabled dataset."""
    targets = []
    if "qc" in config["stages"]:
        targets += expand("results/{dataset}/qc/adata.h5ad", dataset=DATASETS)
        targets.append("results/qc_summary.tsv")
    return targets
