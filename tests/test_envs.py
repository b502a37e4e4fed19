"""Every rule declares its software and resources; every env file pins what its scripts import."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "workflow" / "rules"
SCRIPTS = REPO / "workflow" / "scripts"
# import name -> conda-forge package name, where they differ
CONDA_NAME = {"yaml": "pyyaml", "sklearn": "scikit-learn", "torch": "pytorch", "torch_geometric": "pytorch_geometric",
              "matplotlib": "matplotlib-base", "igraph": "python-igraph", "PIL": "pillow",
              "umap": "umap-learn"}


def rules() -> list[tuple[str, str]]:
    """(rule name, rule body) for every rule of every .smk file."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.M)
        found += list(zip(parts[1::2], parts[2::2]))
    return found


def directive(body: str, name: str) -> str | None:
    m = re.search(rf"^    {name}:\s*\n?\s*\"([^\"]+)\"", body, re.M)
    return m.group(1) if m else None


def module_file(name: str) -> Path | None:
    path = SCRIPTS / Path(*name.split("."))
    for cand in (path.with_suffix(".py"), path / "__init__.py"):
        if cand.exists():
            return cand
    return None


def runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotation-only imports)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
            yield from (n for c in child.orelse for n in [c, *runtime_nodes(c)])
            continue
        yield child
        yield from runtime_nodes(child)


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules imported by ``script`` and, transitively, by the genegraph modules it uses."""
    seen: set[Path] = set()
    found: set[str] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = "genegraph" if "genegraph" in path.parts else None
        for node in runtime_nodes(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package
                    names = [f"{base}.{node.module}" if node.module else f"{base}.{a.name}" for a in node.names]
                else:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top == "genegraph":
                    f = module_file(name)
                    if f is not None:
                        todo.append(f)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)
    return found


def pinned(env: dict) -> dict[str, str]:
    deps = {}
    for dep in env["dependencies"]:
        assert isinstance(dep, str), f"pip sections are not allowed: {dep}"
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*=+\s*([0-9][\w.*]*)", dep)
        assert m, f"dependency '{dep}' is not pinned as 'name =version'"
        deps[m.group(1)] = m.group(2)
    return deps


ALL_RULES = [r for r in rules() if r[0] != "all"]


def test_rules_found():
    assert {"download_dataset", "ingest", "qc", "qc_summary"} <= {name for name, _ in ALL_RULES}


@pytest.mark.parametrize("name,body", ALL_RULES, ids=[r[0] for r in ALL_RULES])
def test_rule_declares_log_benchmark_threads_resources(name, body):
    for key in ("log", "benchmark", "conda", "threads", "resources"):
        assert re.search(rf"^    {key}:", body, re.M), f"rule {name} has no {key}:"
    assert "mem_mb=" in body and "runtime=" in body, f"rule {name} must set mem_mb and runtime"


@pytest.mark.parametrize("name,body", ALL_RULES, ids=[r[0] for r in ALL_RULES])
def test_env_pins_what_the_script_imports(name, body):
    env_path = (RULES / directive(body, "conda")).resolve()
    script = (RULES / directive(body, "script")).resolve()
    env = yaml.safe_load(env_path.read_text())
    assert env["channels"][0] == "conda-forge" and "nodefaults" in env["channels"]
    deps = pinned(env)
    assert "python" in deps
    needed = {CONDA_NAME.get(m, m) for m in third_party_imports(script)}
    missing = needed - set(deps)
    assert not missing, f"{env_path.name} (rule {name}) does not pin {sorted(missing)}"


@pytest.mark.parametrize("env_path", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_env_parses_and_is_used(env_path):
    pinned(yaml.safe_load(env_path.read_text()))
    used = {Path(directive(body, "conda")).name for _, body in ALL_RULES}
    assert env_path.name in used, f"{env_path.name} is not used by any rule"


def test_import_scan_sees_lazy_imports():
    assert {"rdata", "h5py", "anndata", "pandas", "scipy", "numpy"} <= third_party_imports(SCRIPTS / "ingest.py")
    assert "matplotlib" in third_party_imports(SCRIPTS / "qc.py")
