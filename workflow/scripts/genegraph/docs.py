"""config/README.md's reference tables, generated from the schemas (the one source of every option and column).

The file's prose is written by hand; the blocks between ``<!-- BEGIN GENERATED: name -->`` and
``<!-- END GENERATED: name -->`` are rewritten by ``genegraph docs`` and checked by a test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from genegraph.config import CONFIG_SCHEMA, SCHEMA_DIR, load_schema

SHEET_SCHEMA = SCHEMA_DIR / "datasets.schema.yaml"
README = SCHEMA_DIR.parents[1] / "config" / "README.md"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(spec: Mapping[str, Any]) -> str:
    t = spec.get("type", "object" if "properties" in spec else "")
    kinds = [t] if isinstance(t, str) else list(t)
    if "enum" in spec:
        choices = [c for c in spec["enum"] if c is not None]
        return " \\| ".join(f"`{c}`" for c in choices) + (" \\| `null`" if "null" in kinds else "")
    return " or ".join(kinds)


def _default(spec: Mapping[str, Any]) -> str:
    if "default" not in spec:
        return "–"
    value = spec["default"]
    if isinstance(value, dict) and not value:
        return "–"
    return "`" + json.dumps(value, ensure_ascii=False).replace("|", "\\|") + "`"


def _rows(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, spec in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        yield f"| `{name}` | {_type(spec)} | {_default(spec)} | {_cell(spec.get('description', ''))} |"
        if "properties" in spec:
            yield from _rows(spec, f"{name}.")


def config_table(schema: Mapping[str, Any] | None = None) -> str:
    """Markdown table of every config key (nested keys dotted): type, default, meaning."""
    schema = schema or load_schema(CONFIG_SCHEMA)
    return "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *_rows(schema)])


def sheet_table(schema: Mapping[str, Any] | None = None) -> str:
    """Markdown table of every sheet column: required, type, default, meaning."""
    if schema is None:
        with open(SHEET_SCHEMA) as fh:
            schema = yaml.safe_load(fh)
    required = set(schema.get("required", []))
    lines = ["| column | required | type | default | meaning |", "|---|---|---|---|---|"]
    for key, spec in schema["properties"].items():
        nullable = "null" in (spec.get("type") if isinstance(spec.get("type"), list) else [spec.get("type")])
        need = "column yes, value may be empty" if key in required and nullable else (
            "yes" if key in required else "no")
        lines.append(f"| `{key}` | {need} | {_type(spec)} | {_default(spec)} | {_cell(spec.get('description', ''))} |")
    return "\n".join(lines)


BLOCKS = {"config": config_table, "sheet": sheet_table}
_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (\w+) -->\n)(?:.*?\n)?(<!-- END GENERATED: \2 -->)", re.S)


def render(text: str) -> str:
    """``text`` with every generated block replaced by its current content."""
    return _BLOCK.sub(lambda m: m.group(1) + BLOCKS[m.group(2)]() + "\n" + m.group(3), text)


def update_readme(path: Path = README) -> bool:
    """Rewrite the generated blocks of ``path``; True when the file changed."""
    old = path.read_text()
    new = render(old)
    if new != old:
        path.write_text(new)
    return new != old
