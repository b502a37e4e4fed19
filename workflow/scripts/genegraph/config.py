"""Typed settings from the configuration.

The JSON schema (``workflow/schemas/config.schema.yaml`` and the section files it ``$ref``-erences) is the
one source of truth for every option: its type, its default and its description. Library code declares
*what* it needs as a frozen dataclass whose fields are named like the schema's properties and carry no
defaults; :func:`from_schema` fills the schema's defaults into a config mapping, validates it and builds the
dataclass (nested dataclasses from nested mappings, lists as tuples). No module parses config by hand.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml

from .errors import DataError

T = TypeVar("T")

#: ``workflow/schemas`` of this checkout (the library lives in ``workflow/scripts/genegraph``).
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
CONFIG_SCHEMA = SCHEMA_DIR / "config.schema.yaml"


# --- schema loading -------------------------------------------------------------------------------------


def _resolve(node: Any, base: Path, root: Any) -> Any:
    """``node`` with every ``$ref`` replaced by what it points to: ``file.yaml``, ``file.yaml#/a/b`` (relative
    to ``base``) or ``#/a/b`` (inside ``root``, the document ``node`` came from)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            target, _, pointer = ref.partition("#")
            if target:
                path = (base / target).resolve()
                doc = {k: v for k, v in _read_yaml(path).items() if k != "$schema"}
                new_base, new_root = path.parent, doc
            else:
                doc, new_base, new_root = root, base, root
            for part in [p for p in pointer.split("/") if p]:
                doc = doc[part]
            resolved = _resolve(copy.deepcopy(doc), new_base, new_root)
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return {**resolved, **_resolve(extra, base, root)} if extra else resolved
        return {k: _resolve(v, base, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, base, root) for v in node]
    return node


def _read_yaml(path: Path) -> Any:
    with open(path) as fh:
        return yaml.safe_load(fh)


@cache
def _load(path: str) -> dict[str, Any]:
    p = Path(path).resolve()
    doc = _read_yaml(p)
    return _resolve(doc, p.parent, doc)


def load_schema(path: str | Path = CONFIG_SCHEMA) -> dict[str, Any]:
    """The schema at ``path`` with all ``$ref``s resolved (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_load(str(Path(path).resolve())))


def subschema(schema: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The schema of the dotted config key ``section`` (e.g. ``"train.model"``)."""
    node: Mapping[str, Any] = schema
    for part in [p for p in section.split(".") if p]:
        props = node.get("properties", {})
        if part not in props:
            raise KeyError(f"the config schema has no key '{section}' (no '{part}')")
        node = props[part]
    return dict(node)


# --- defaults and validation ----------------------------------------------------------------------------


def fill_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """``value`` with the schema's defaults filled in, recursively (a copy; ``value`` is not modified).

    A missing object-valued key whose schema has properties is created (so nested defaults appear); a
    missing key with a ``default`` gets it; arrays of objects get their items' defaults."""
    if value is None and "properties" in schema and "default" not in schema:
        value = {}
    if isinstance(value, Mapping) and "properties" in schema:
        out = dict(value)
        for key, sub in schema["properties"].items():
            if key in out:
                out[key] = fill_defaults(sub, out[key])
            elif "default" in sub:
                out[key] = fill_defaults(sub, copy.deepcopy(sub["default"]))
            elif "properties" in sub:
                out[key] = fill_defaults(sub, {})
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [fill_defaults(schema["items"], v) for v in value]
    return value


def validate(schema: Mapping[str, Any], value: Any, where: str = "config") -> None:
    """Raise :class:`DataError` listing every place where ``value`` breaks ``schema``."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = []
        for err in errors:
            key = ".".join([where, *map(str, err.absolute_path)]) if where else ".".join(map(str, err.absolute_path))
            hint = ""
            if isinstance(err.instance, bool) and err.validator in ("enum", "type"):
                hint = " (YAML reads unquoted off/on/no/yes as booleans: quote the value)"
            lines.append(f"{key}: {err.message}{hint}")
        raise DataError("invalid configuration:\n  " + "\n  ".join(lines))


def complete(schema: Mapping[str, Any], value: Any, where: str = "config") -> Any:
    """Defaults filled in, then validated: the mapping every later step may trust."""
    full = fill_defaults(schema, value)
    validate(schema, full, where)
    return full


# --- typed settings ---------------------------------------------------------------------------------------


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass type inside ``hint`` (``D`` or ``D | None``), else None."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                return arg
    return None


def _tuple_item_dataclass(hint: Any) -> type | None:
    """``D`` for a ``tuple[D, ...]`` hint whose items are dataclasses, else None."""
    if typing.get_origin(hint) is tuple:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if args and dataclasses.is_dataclass(args[0]) and isinstance(args[0], type):
            return args[0]
    return None


def _wants_tuple(hint: Any) -> bool:
    if typing.get_origin(hint) is tuple:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(typing.get_origin(a) is tuple for a in typing.get_args(hint))
    return False


def build(cls: type[T], values: Mapping[str, Any], where: str = "config") -> T:
    """An instance of the dataclass ``cls`` from a complete mapping (no defaults are invented here).

    Every field must be present and every key must be a field: the dataclass and the schema are checked
    against each other each time settings are built."""
    if not isinstance(values, Mapping):
        raise DataError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(names))
    missing = [n for n in names if n not in values]
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(names)})")
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)} (the schema gives no default)")
    kwargs: dict[str, Any] = {}
    for name in names:
        value, hint = values[name], hints[name]
        sub = _dataclass_in(hint)
        if sub is not None and isinstance(value, Mapping):
            value = build(sub, value, f"{where}.{name}")
        elif isinstance(value, list) and _tuple_item_dataclass(hint) is not None:
            item = _tuple_item_dataclass(hint)
            value = tuple(build(item, v, f"{where}.{name}[{i}]") for i, v in enumerate(value))
        elif isinstance(value, list) and _wants_tuple(hint):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def from_schema(
    cls: type[T],
    schema: Mapping[str, Any] | str | Path,
    values: Mapping[str, Any] | None = None,
    where: str = "config",
) -> T:
    """``cls`` built from ``values`` over the defaults of ``schema`` (a mapping or a schema file), validated.

    The one way settings objects are made: rule scripts pass a config section, tests pass overrides."""
    if not isinstance(schema, Mapping):
        schema = load_schema(schema)
    return build(cls, complete(schema, values or {}, where), where)


def settings(cls: type[T], section: str, values: Mapping[str, Any] | None = None,
             omit: tuple[str, ...] = ()) -> T:
    """``cls`` from the main config schema's ``section`` (dotted key), with ``values`` over its defaults.

    ``omit``: run-level keys of the section that ``cls`` does not carry (e.g. ``seeds``, ``device``): the rules
    pass them separately, so that changing them does not rerun every job of the section."""
    schema = subschema(load_schema(), section)
    if omit:
        schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in omit}
    return from_schema(cls, schema, values, where=section)


def config_defaults() -> dict[str, Any]:
    """The whole configuration as the schema's defaults (what an empty config file means)."""
    return complete(load_schema(), {}, "config")
