"""The dataset sheet: read, type and validate it, with errors that name the row and the column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from genegraph.data.cell_filter import parse_filter
from genegraph.errors import DataError

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


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the data rows of a tab-separated sheet, each row with its line number in the file.

    Values are taken literally (no quoting); lines starting with ``#`` and blank lines are skipped. A row may
    have fewer fields than the header (the missing trailing cells are empty) and trailing empty fields
    beyond it (editors add them); a row with more non-empty fields than the header is an error, since its
    columns would shift."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"dataset sheet {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1)]
    lines = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"dataset sheet {path} is empty: it needs a header row of tab-separated column names")
    header = [c.strip() for c in lines[0][1].split("\t")]
    while header and header[-1] == "":
        header.pop()
    if "" in header:
        raise DataError(f"dataset sheet {path.name} line {lines[0][0]}: the header has an empty column name "
                        f"(column {header.index('') + 1})")
    rows: list[tuple[int, list[str]]] = []
    problems = []
    for n, line in lines[1:]:
        fields = line.split("\t")
        while len(fields) > len(header) and fields[-1].strip() == "":
            fields.pop()
        if len(fields) > len(header):
            problems.append(f"{path.name} line {n}: the row has {len(fields)} fields, the header has "
                            f"{len(header)} (a stray tab shifts every column after it)")
            continue
        rows.append((n, fields + [""] * (len(header) - len(fields))))
    if problems:
        raise DataError("invalid dataset sheet:\n  " + "\n  ".join(problems))
    return header, rows


def load_sheet(path: str | Path, schema: dict[str, Any]) -> pd.DataFrame:
    """Read the tab-separated sheet at ``path`` and validate every row against ``schema``.

    Returns a data frame indexed by dataset id with one column per schema property (defaults filled,
    values typed, ``None`` where unset). An empty cell of a nullable column (``sha256``, ``subset``, ...)
    means "not set"; an empty cell of a non-nullable required column is an error. ``subset`` filters are
    parsed here (see :mod:`genegraph.data.cell_filter`). Raises :class:`DataError` listing every problem as
    ``<sheet> line <n> (dataset '<id>'), column '<col>': <what is wrong>``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset sheet {path} does not exist")
    header, records = read_rows(path)
    props: dict[str, Any] = schema["properties"]
    problems: list[str] = []
    missing = [c for c in schema.get("required", []) if c not in header]
    unknown = [c for c in header if c not in props]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    for c in missing:
        problems.append(f"{path.name}: missing column '{c}'")
    for c in unknown:
        problems.append(f"{path.name}: unknown column '{c}' (allowed: {', '.join(props)})")
    for c in duplicated:
        problems.append(f"{path.name}: column '{c}' appears more than once in the header")
    if problems:
        raise DataError("invalid dataset sheet:\n  " + "\n  ".join(problems))
    if not records:
        raise DataError(f"dataset sheet {path} has no rows")

    validator = jsonschema.Draft202012Validator(schema)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for line, fields in records:
        row: dict[str, Any] = {}
        for k, v in zip(header, fields):
            v = v.strip()
            if v != "":
                row[k] = _convert(v, props[k])
            elif "null" in _types(props[k]):
                row[k] = None
        for err in sorted(validator.iter_errors(row), key=lambda e: list(e.path)):
            if err.validator == "required":
                col = err.message.split("'")[1]
                detail = "is empty" + (f" (required for format {row.get('format')})" if col == "orientation" else "")
            else:
                col = err.path[0] if err.path else "?"
                detail = err.message
            problems.append(f"{_where(path, line, row)}, column '{col}': {detail}")
        if isinstance(row.get("subset"), str):
            try:
                parse_filter(row["subset"])
            except DataError as err:
                problems.append(f"{_where(path, line, row)}, column 'subset': {err}")
        rows.append(row)
        lines.append(line)
    ids = pd.Series([r.get("dataset") for r in rows])
    for dup in ids[ids.duplicated() & ids.notna()].unique():
        dup_lines = [str(lines[i]) for i in ids.index[ids == dup]]
        problems.append(f"{path.name} lines {', '.join(dup_lines)}, column 'dataset': duplicate dataset id '{dup}'")
    if problems:
        raise DataError("invalid dataset sheet:\n  " + "\n  ".join(problems))

    table = pd.DataFrame(
        [{k: (r[k] if r.get(k) is not None else spec.get("default")) for k, spec in props.items()} for r in rows],
        dtype=object,
    )
    for col in ("sha256", "metadata_sha256"):
        table[col] = [v.lower() if isinstance(v, str) else v for v in table[col]]
    return table.set_index("dataset", drop=False)
