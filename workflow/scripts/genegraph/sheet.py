"""The dataset sheet: read, type and validate it, with errors that name the row and the column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from .errors import DataError

TRUE = {"true", "yes", "1", "y", "t"}
FALSE = {"false", "no", "0", "n", "f"}


def load_schema(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _types(spec: dict[str, Any]) -> set[str]:
    t = spec.get("type", "string")
    return set(t) if isinstance(t, list) else {t}


def _convert(value: str, spec: dict[str, Any]) -> Any:
    """A sheet cell (text) as the schema's type; unconvertible text is returned as is for the validator."""
    types = _types(spec) - {"null"}
    if "boolean" in types:
        low = value.strip().lower()
        return True if low in TRUE else False if low in FALSE else value
    if "integer" in types:
        try:
            f = float(value)
            return int(f) if f.is_integer() else f
        except ValueError:
            return value
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _where(sheet: Path, line: int, row: dict[str, Any]) -> str:
    ident = row.get("dataset")
    return f"{sheet.name} line {line}" + (f" (dataset '{ident}')" if ident else "")


def load_sheet(path: str | Path, schema: dict[str, Any]) -> pd.DataFrame:
    """Read the tab-separated sheet at ``path`` and validate every row against ``schema``.

    Returns a data frame indexed by dataset id with one column per schema property (defaults filled,
    values typed, ``None`` where unset). Raises :class:`DataError` listing every problem as
    ``<sheet> line <n> (dataset '<id>'), column '<col>': <what is wrong>``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset sheet {path} does not exist")
    raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#", skip_blank_lines=True)
    raw.columns = [c.strip() for c in raw.columns]
    props: dict[str, Any] = schema["properties"]
    problems: list[str] = []
    missing = [c for c in schema.get("required", []) if c not in raw.columns]
    unknown = [c for c in raw.columns if c not in props]
    for c in missing:
        problems.append(f"{path.name}: missing column '{c}'")
    for c in unknown:
        problems.append(f"{path.name}: unknown column '{c}' (allowed: {', '.join(props)})")
    if problems:
        raise DataError("invalid dataset sheet:\n  " + "\n  ".join(problems))
    if raw.empty:
        raise DataError(f"dataset sheet {path} has no rows")

    validator = jsonschema.Draft202012Validator(schema)
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(raw.to_dict(orient="records")):
        line = i + 2  # 1-based, after the header
        row = {k: _convert(v.strip(), props[k]) for k, v in record.items() if v.strip() != ""}
        for err in sorted(validator.iter_errors(row), key=lambda e: list(e.path)):
            if err.validator == "required":
                col = err.message.split("'")[1]
                detail = "is empty" + (f" (required for format {row.get('format')})" if col == "orientation" else "")
            else:
                col = err.path[0] if err.path else "?"
                detail = err.message
            problems.append(f"{_where(path, line, row)}, column '{col}': {detail}")
        rows.append(row)
    ids = pd.Series([r.get("dataset") for r in rows])
    for dup in ids[ids.duplicated() & ids.notna()].unique():
        lines = [str(i + 2) for i in ids.index[ids == dup]]
        problems.append(f"{path.name} lines {', '.join(lines)}, column 'dataset': duplicate dataset id '{dup}'")
    if problems:
        raise DataError("invalid dataset sheet:\n  " + "\n  ".join(problems))

    table = pd.DataFrame(
        [{k: r.get(k, spec.get("default")) for k, spec in props.items()} for r in rows], dtype=object
    )
    for col in ("sha256", "metadata_sha256"):
        table[col] = [v.lower() if isinstance(v, str) else v for v in table[col]]
    return table.set_index("dataset", drop=False)
