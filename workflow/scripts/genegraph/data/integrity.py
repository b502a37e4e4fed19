"""Damaged outputs: finished files that cannot be read back (a truncated h5ad or torch checkpoint).

Every genegraph output is written under a temporary name and renamed into place, so a killed job never
leaves a half-written file under its final name. A file can still be damaged afterwards (a full disk
during a copy, a failed sync of a shared file system). Snakemake would take such a file as up to date and
hand it to the next job; the workflow therefore sweeps the results folder when it starts and marks
damaged files as outdated, so that Snakemake recomputes them and everything after them.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import h5py

#: File kinds checked, by suffix: what a readable file must contain.
CHECKED = (".h5ad", ".pt")


def damage(path: Path) -> str | None:
    """Why ``path`` cannot be read back, or None when it looks whole.

    ``.h5ad``: HDF5 with the AnnData groups ``obs`` and ``var``; ``.pt``: a torch zip archive with its
    central directory (truncation removes it)."""
    try:
        if path.suffix == ".h5ad":
            with h5py.File(path, "r") as f:
                missing = [g for g in ("obs", "var") if g not in f]
                if missing:
                    return f"not an AnnData file (no {', '.join(missing)})"
        elif path.suffix == ".pt":
            with zipfile.ZipFile(path) as z:
                if not z.namelist():
                    return "empty torch archive"
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as err:
        return f"unreadable ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    return None


def damaged_files(root: Path) -> list[tuple[Path, str]]:
    """(path, reason) of every damaged checked file under ``root`` (temporary dot-files are skipped)."""
    if not root.is_dir():
        return []
    found = []
    for suffix in CHECKED:
        for path in sorted(root.rglob(f"*{suffix}")):
            if path.name.startswith(".") or not path.is_file():
                continue
            reason = damage(path)
            if reason is not None:
                found.append((path, reason))
    return found


def mark_damaged(root: Path) -> list[tuple[Path, str]]:
    """Give every damaged file under ``root`` the modification time 0 (1970), so that Snakemake sees it as
    older than its inputs and recomputes it and everything after it (in a dry run too, which then lists
    those jobs). A damaged checkpoint is also ignored, with a warning, by the training that would load it.
    Returns (path, reason) of each."""
    damaged = damaged_files(root)
    for path, _ in damaged:
        os.utime(path, (0, 0))
    return damaged
