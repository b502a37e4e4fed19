"""Atomic writers: every output is written to a temporary file beside it and renamed into place, so a
crash never leaves a half-written file under the final name."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: the download env has neither anndata nor pandas
    import anndata as ad
    import pandas as pd

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write(path: str | Path, writer: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def write_h5ad(adata: ad.AnnData, path: str | Path) -> None:
    """Write ``adata`` as gzip-compressed h5ad, atomically."""
    _write(path, lambda tmp: adata.write_h5ad(tmp, compression="gzip"))
    log.info("wrote %s (%d x %d)", path, adata.n_obs, adata.n_vars)


def write_tsv(table: pd.DataFrame, path: str | Path, index: bool = False) -> None:
    """Write a tab-separated table atomically."""
    _write(path, lambda tmp: table.to_csv(tmp, sep="\t", index=index))


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON (sorted keys, indented) atomically."""
    _write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"))
