"""The sheet's ``subset`` column: a small filter language over cell annotations, parsed, never evaluated.

A sheet is data that users share and download, so no value in it may run code. ``subset`` is therefore
not a pandas expression but this grammar, parsed into a tree when the sheet is read (errors name the sheet
line) and applied to ``obs`` at ingest:

    filter     := or_expr
    or_expr    := and_expr (("|" | "or") and_expr)*
    and_expr   := not_expr (("&" | "and") not_expr)*
    not_expr   := ("~" | "not") not_expr | "(" filter ")" | comparison
    comparison := column op literal | column ["not"] "in" "[" literal ("," literal)* "]"
    op         := "==" | "!=" | "<" | "<=" | ">" | ">="
    column     := a name of letters, digits, "_" and "." not starting with a digit, or `any text` in backticks
    literal    := a number (1, -2.5, 1e3) or a quoted string ('B cell' or "B cell"; no escapes)

Examples: ``slice == 1``, ``donor in ['d1', 'd2'] & celltype != 'doublet'``, ``not (`n genes` < 200)``.
A number compares numerically (a column that is not numeric is an error); a string compares with the
column's values as text. Nothing else is accepted: no function calls, attributes, ``@`` variables or
arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genegraph.errors import DataError

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
    | (?P<string>'[^']*'|"[^"]*")
    | (?P<quoted>`[^`]+`)
    | (?P<op>==|!=|<=|>=|<|>)
    | (?P<punct>[&|~()\[\],])
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and": "&", "or": "|", "not": "~", "in": "in"}


@dataclass(frozen=True)
class Compare:
    """``column op value``."""

    column: str
    op: str
    value: float | str


@dataclass(frozen=True)
class Member:
    """``column [not] in [values]``."""

    column: str
    values: tuple[float | str, ...]
    negate: bool


@dataclass(frozen=True)
class Not:
    inner: Filter


@dataclass(frozen=True)
class Both:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Either:
    left: Filter
    right: Filter


Filter = Compare | Member | Not | Both | Either


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise DataError(f"subset '{text}': unexpected text at '{text[pos:].strip()[:20]}' (see the filter "
                            "language in config/README.md)")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "name" and value.lower() in _KEYWORDS:
            kind, value = "kw", _KEYWORDS[value.lower()]
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def fail(self, what: str) -> DataError:
        at = self.toks[self.i][1] if self.i < len(self.toks) else "the end"
        return DataError(f"subset '{self.text}': {what} at '{at}' (see the filter language in config/README.md)")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            raise self.fail(f"expected {value or kind}")
        self.i += 1
        return tok[1]

    def at(self, kinds: tuple[str, ...], value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] in kinds and tok[1] == value

    def parse(self) -> Filter:
        if not self.toks:
            raise DataError("subset is empty")
        tree = self.or_expr()
        if self.peek() is not None:
            raise self.fail("unexpected token")
        return tree

    def or_expr(self) -> Filter:
        node = self.and_expr()
        while self.at(("punct", "kw"), "|"):
            self.i += 1
            node = Either(node, self.and_expr())
        return node

    def and_expr(self) -> Filter:
        node = self.not_expr()
        while self.at(("punct", "kw"), "&"):
            self.i += 1
            node = Both(node, self.not_expr())
        return node

    def not_expr(self) -> Filter:
        if self.at(("punct", "kw"), "~"):
            self.i += 1
            return Not(self.not_expr())
        if self.at(("punct",), "("):
            self.i += 1
            node = self.or_expr()
            self.take("punct", ")")
            return node
        return self.comparison()

    def column(self) -> str:
        tok = self.peek()
        if tok is None or tok[0] not in ("name", "quoted"):
            raise self.fail("expected a column name")
        self.i += 1
        return tok[1][1:-1] if tok[0] == "quoted" else tok[1]

    def literal(self) -> float | str:
        tok = self.peek()
        if tok is None or tok[0] not in ("number", "string"):
            raise self.fail("expected a number or a quoted string")
        self.i += 1
        return float(tok[1]) if tok[0] == "number" else tok[1][1:-1]

    def comparison(self) -> Filter:
        col = self.column()
        negate = False
        if self.at(("kw",), "~"):  # "not in"
            self.i += 1
            negate = True
            if not self.at(("kw",), "in"):
                raise self.fail("expected 'in' after 'not'")
        if self.at(("kw",), "in"):
            self.i += 1
            self.take("punct", "[")
            values = [self.literal()]
            while self.at(("punct",), ","):
                self.i += 1
                values.append(self.literal())
            self.take("punct", "]")
            return Member(col, tuple(values), negate)
        tok = self.peek()
        if tok is None or tok[0] != "op":
            raise self.fail("expected a comparison (==, !=, <, <=, >, >=, in, not in)")
        self.i += 1
        return Compare(col, tok[1], self.literal())


def parse_filter(text: str) -> Filter:
    """The filter tree of ``text``; :class:`DataError` for anything outside the grammar."""
    return _Parser(text).parse()


def _columns(tree: Filter) -> set[str]:
    if isinstance(tree, (Compare, Member)):
        return {tree.column}
    if isinstance(tree, Not):
        return _columns(tree.inner)
    return _columns(tree.left) | _columns(tree.right)


def _numeric(obs: pd.DataFrame, column: str, text: str) -> np.ndarray:
    values = obs[column]
    if values.dtype.kind in "biuf":
        return values.to_numpy(dtype=float)
    as_num = pd.to_numeric(values.astype(str), errors="coerce")
    if as_num.isna().any():
        raise DataError(f"subset '{text}': column '{column}' is not numeric, compare it with a quoted string")
    return as_num.to_numpy(dtype=float)


def _as_text(obs: pd.DataFrame, column: str) -> np.ndarray:
    values = obs[column]
    if values.dtype.kind in "iub":
        return values.astype(str).to_numpy()
    if values.dtype.kind == "f":  # 1.0 compares equal to '1'
        return np.array([format(v, "g") for v in values.to_numpy()], dtype=object)
    return values.astype(str).to_numpy()


_OPS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
        ">=": np.greater_equal}


def _mask(tree: Filter, obs: pd.DataFrame, text: str) -> np.ndarray:
    if isinstance(tree, Compare):
        if isinstance(tree.value, float):
            return _OPS[tree.op](_numeric(obs, tree.column, text), tree.value)
        if tree.op not in ("==", "!="):
            raise DataError(f"subset '{text}': '{tree.op}' needs a number, not the string '{tree.value}'")
        return _OPS[tree.op](_as_text(obs, tree.column), tree.value)
    if isinstance(tree, Member):
        if all(isinstance(v, float) for v in tree.values):
            hit = np.isin(_numeric(obs, tree.column, text), np.array(tree.values, dtype=float))
        else:
            hit = np.isin(_as_text(obs, tree.column), [v if isinstance(v, str) else format(v, "g")
                                                         for v in tree.values])
        return ~hit if tree.negate else hit
    if isinstance(tree, Not):
        return ~_mask(tree.inner, obs, text)
    if isinstance(tree, Both):
        return _mask(tree.left, obs, text) & _mask(tree.right, obs, text)
    return _mask(tree.left, obs, text) | _mask(tree.right, obs, text)


def select_cells(obs: pd.DataFrame, text: str) -> np.ndarray:
    """Boolean mask (n_cells,) of the cells of ``obs`` that ``text`` selects."""
    tree = parse_filter(text)
    missing = sorted(_columns(tree) - set(map(str, obs.columns)))
    if missing:
        raise DataError(f"subset '{text}' names unknown cell annotation(s) {', '.join(missing)} "
                        f"(available: {', '.join(map(str, obs.columns)) or 'none'})")
    frame = obs.copy()
    frame.columns = frame.columns.map(str)
    return np.asarray(_mask(tree, frame, text), dtype=bool)
