"""The house rules: stage layering of the library, one source for every option, generated docs, the command."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import genegraph
from genegraph.cli import main
from genegraph.config import load_schema
from genegraph.docs import README, render

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workflow" / "scripts" / "genegraph"
#: Pipeline order of the library's subpackages; modules directly under genegraph/ are stage-free infrastructure
#: (errors, logs, config, io, plots, device) except ``docs`` and ``cli``, which sit on top.
STAGES = ["data", "stats", "graphs", "models", "evaluate", "report"]
TOP = {"docs": len(STAGES) + 1, "cli": len(STAGES) + 2}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] in STAGES:
        return STAGES.index(parts[1]) + 1
    return TOP.get(parts[1], 0)


def imports(path: Path) -> set[str]:
    """The genegraph modules ``path`` imports (at any depth of the file, annotations-only imports excluded)."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(n) for sub in node.body for n in ast.walk(sub))
    found = set()
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("genegraph"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("genegraph"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names
                             if (PACKAGE.parent / Path(*f"{target}.{a.name}".split("."))).with_suffix(".py").exists())
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_a_later_stage():
    backwards = [f"{name} imports {other}" for name, path in MODULES.items() for other in imports(path)
                 if rank(other) > rank(name)]
    assert not backwards, "\n".join(backwards)


def test_no_import_cycles():
    # a submodule's link to its own package is how Python imports it, not a cycle of the code
    graph = {name: {o for o in imports(path) if o in MODULES and o != name and not name.startswith(o + ".")}
             for name, path in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*trail, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*trail, node])):
                return cycle
        state[node] = 2
        return None

    for name in MODULES:
        if name not in state:
            cycle = visit(name, [])
            assert cycle is None, " -> ".join(cycle)


def test_every_option_has_type_default_and_description():
    missing = []

    def walk(node, prefix):
        for key, spec in node.get("properties", {}).items():
            name = f"{prefix}{key}"
            for part in ("type", "description"):
                if part not in spec and not (part == "type" and "enum" in spec):
                    missing.append(f"{name}: no {part}")
            if "default" not in spec:
                missing.append(f"{name}: no default")
            walk(spec, f"{name}.")

    walk(load_schema(), "")
    assert not missing, "\n".join(missing)


def test_config_readme_is_generated_from_the_schemas():
    text = README.read_text()
    assert "<!-- BEGIN GENERATED: config -->" in text and "<!-- BEGIN GENERATED: sheet -->" in text
    assert render(text) == text, "config/README.md is stale: run `genegraph docs`"


def test_one_version_source():
    assert metadata.version("genegraph") == genegraph.__version__
    assert "version =" not in (REPO / "pyproject.toml").read_text().split("[project]")[1].split("[")[0]


def test_command_checks_sheets_and_describes_files(tmp_path, capsys):
    assert main(["check-sheet", str(REPO / "config" / "datasets.tsv")]) == 0
    assert "4 datasets, 4 enabled: valid" in capsys.readouterr().out
    bad = tmp_path / "bad.tsv"
    bad.write_text("dataset\tmodality\ttissue\tspecies\tsource\tsha256\tformat\tgene_id\n"
                   "d1\tproteomics\tblood\thuman\ta.h5ad\t\th5ad\tsymbol\n")
    assert main(["check-sheet", str(bad)]) == 1
    assert "line 2 (dataset 'd1'), column 'modality'" in capsys.readouterr().err
    path = tmp_path / "x.h5ad"
    ad.AnnData(X=np.ones((3, 2), np.float32), uns={"dataset": {"id": "d1", "modality": "scrna"}}).write_h5ad(path)
    assert main(["describe", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 obs x 2 var" in out and "id=d1" in out
    assert main(["docs", "--check"]) == 0


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "genegraph.cli", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"genegraph {genegraph.__version__}"


@pytest.mark.parametrize("section,omit,factory", [
    ("train", True, "genegraph.models.musegnn.train:train_settings"),
    ("baselines", True, "genegraph.models.baselines.run:baseline_settings"),
    ("evaluate", True, "genegraph.evaluate.gene_embedding.metrics:evaluation_settings"),
    ("modules", False, "genegraph.evaluate.gene_embedding.modules:module_settings"),
    ("function_prediction", False, "genegraph.evaluate.gene_embedding.function_prediction:function_settings"),
])
def test_settings_are_built_from_the_schema_defaults(section, omit, factory):
    """Each settings class builds from the schema's defaults alone: its fields are exactly the schema's keys."""
    import importlib

    module, func = factory.split(":")
    built = getattr(importlib.import_module(module), func)()
    assert type(built).__name__.endswith("Settings")
