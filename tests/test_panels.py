"""Every panel config (config/panels/*.yaml), merged over config/config.yaml as `--configfile` merges it, is a valid
configuration whose dataset sheet parses; the CellPLM panel holds out datasets of its own sheet."""

import copy
import os
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from genegraph.config import complete, load_schema
from genegraph.data.sheet import load_schema as load_sheet_schema
from genegraph.data.sheet import load_sheet

REPO = Path(__file__).resolve().parents[1]
PANELS = sorted((REPO / "config" / "panels").glob("*.yaml"))


def merged(panel: Path) -> dict:
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    update_config(config, yaml.safe_load(panel.read_text()))
    return complete(load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml"), config)


@pytest.mark.parametrize("panel", PANELS, ids=[p.stem for p in PANELS])
def test_panel_config_is_valid_and_its_sheet_parses(panel, monkeypatch):
    monkeypatch.chdir(REPO)  # sheet paths are relative to the repository, as Snakemake runs
    config = merged(panel)
    sheet = load_sheet(config["datasets"], load_sheet_schema(REPO / "workflow" / "schemas" / "datasets.schema.yaml"))
    assert len(sheet) >= 2 and os.path.isabs(config["datasets"]) is False
    held = set(config["cellplm"]["heldout"])
    if "cellplm" in config["stages"]:
        assert held and held < set(sheet["dataset"])  # held-out sets exist, and something is left to pre-train on


def test_panels_exist():
    assert {p.stem for p in PANELS} >= {"real_panel", "cite_panel", "spatial_panel", "cellplm_panel"}
