"""Data-quality checks that do not stop a run: a figure, its documented limit, and a flag.

Degenerate data that cannot give a meaningful result is an error where it is found (too few cells after
QC, a ``cite`` row without proteins, spatial coordinates without spread). What is merely suspicious is
recorded here: each check is stored in ``uns['checks']`` of the stage's AnnData (and carried forward to
the graph file), logged as a WARNING when it crosses its limit, and shown as a flag in the report. The
limits are the config section ``checks`` (see config/README.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def record(uns: dict[str, Any], name: str, value: float, limit: float, bound: str, what: str) -> bool:
    """Store check ``name`` (``value`` against ``limit``; ``bound`` 'min': flagged below, 'max': above) in
    ``uns['checks']``; log a WARNING and return True when it is flagged."""
    if bound not in ("min", "max"):
        raise ValueError(f"bound must be 'min' or 'max', not {bound!r}")
    flagged = bool(value < limit) if bound == "min" else bool(value > limit)
    uns.setdefault("checks", {})[name] = {"value": float(value), "limit": float(limit), "bound": bound,
                                          "flagged": flagged, "what": what}
    if flagged:
        word = "below" if bound == "min" else "above"
        log.warning("check %s: %s is %.4g, %s the limit %.4g (config checks.%s)", name, what, value, word,
                    limit, name)
    return flagged


def carried(uns: Mapping[str, Any]) -> dict[str, Any]:
    """The checks of an earlier stage, to pass on to the next file's ``uns``."""
    return {k: dict(v) for k, v in dict(uns.get("checks", {})).items()}


def flat(checks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One row of summary columns: ``check_<name>`` (the value) and ``flags`` (the flagged names)."""
    row: dict[str, Any] = {f"check_{k}": v["value"] for k, v in sorted(checks.items())}
    row["flags"] = ";".join(k for k, v in sorted(checks.items()) if v["flagged"])
    return row
