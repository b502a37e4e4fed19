"""Fetch dataset and resource files: https/http, ``file://`` or repository-relative sources.

Every fetched file is verified against a sha256 (given, or recorded on first download in a checksum lock
file), written to a temporary name and renamed into place, so a failed or interrupted download never leaves
a file that looks complete. A local mirror directory is searched first, by file name and then by sha256,
so offline runs find the same files. This module is the only place in genegraph that opens network
connections.

The sha256 of a *directory* source (a local 10x folder, for example) is defined as the sha256 of the text
made of one ``<relative path>\\t<sha256 of the file>\\n`` line per file, sorted by path.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genegraph import __version__
from genegraph.errors import DataError

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read per step while streaming and hashing
USER_AGENT = f"genegraph-download/{__version__} (+https://github.com/genegraph)"


@dataclass(frozen=True)
class Fetched:
    """A verified local copy of a source: where it is, its sha256 and where it came from."""

    path: Path
    sha256: str
    origin: str  # "mirror:<path>", "local:<path>" or "url:<url>"
    nbytes: int
    recorded: bool  # True when this download wrote the sha256 into the lock file


def source_name(source: str) -> str:
    """The file name a source is stored under: the last path component of the URL or path."""
    path = urllib.parse.urlparse(source).path if "://" in source else source
    name = Path(urllib.parse.unquote(path.rstrip("/"))).name
    if not name:
        raise DataError(f"source '{source}' does not end in a file or folder name")
    return name


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    """Hex sha256 of a file, or the manifest digest of a directory (see module docstring)."""
    if path.is_dir():
        lines = [
            f"{p.relative_to(path).as_posix()}\t{sha256_file(p)}\n"
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
        return hashlib.sha256("".join(lines).encode()).hexdigest()
    return sha256_file(path)


# --- checksum lock file ----------------------------------------------------------------------------

LOCK_COLUMNS = ["source", "sha256", "recorded"]


def read_lock(lock_file: Path) -> dict[str, str]:
    """Recorded sha256 per source from the checksum lock file (empty when it does not exist)."""
    if not lock_file.exists():
        return {}
    table = pd.read_csv(lock_file, sep="\t", dtype=str, keep_default_na=False)
    return dict(zip(table["source"], table["sha256"]))


def record_lock(lock_file: Path, source: str, sha256: str) -> None:
    """Add or replace ``source``'s sha256 in the lock file, safely under concurrent writers."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file.with_name(lock_file.name + ".lock"), "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if lock_file.exists():
            table = pd.read_csv(lock_file, sep="\t", dtype=str, keep_default_na=False)
        else:
            table = pd.DataFrame(columns=LOCK_COLUMNS)
        table = table[table["source"] != source]
        row = {"source": source, "sha256": sha256, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True).sort_values("source")
        tmp = lock_file.with_name(f".{lock_file.name}.{os.getpid()}.tmp")
        table.to_csv(tmp, sep="\t", index=False)
        os.replace(tmp, lock_file)


# --- mirror ------------------------------------------------------------------------------------------


def find_in_mirror(mirror: Path, name: str, sha256: str | None) -> Path | None:
    """A file or folder under ``mirror`` matching ``name`` (and ``sha256`` when given), else one whose
    sha256 matches. Names are compared exactly; a name match with the wrong sha256 is skipped."""
    if not mirror.is_dir():
        raise DataError(f"mirror directory '{mirror}' does not exist")
    by_name = sorted(p for p in mirror.rglob(name) if p.name == name)
    for cand in by_name:
        if sha256 is None or sha256_path(cand) == sha256:
            return cand
        log.warning("mirror file %s has the right name but the wrong sha256; skipped", cand)
    if sha256 is None:
        return None
    for cand in sorted(p for p in mirror.rglob("*") if p.is_file()):
        if sha256_file(cand) == sha256:
            return cand
    return None


# --- transfer ------------------------------------------------------------------------------------------


class _Retryable(Exception):
    """A transfer failure worth another try (network trouble, truncated body, 5xx)."""


def _http_to(url: str, tmp: Path, timeout: float) -> None:
    """Stream ``url`` into ``tmp``; raise :class:`_Retryable` or :class:`DataError`."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, open(tmp, "wb") as out:
            expected = resp.headers.get("Content-Length")
            got = 0
            for block in iter(lambda: resp.read(CHUNK), b""):
                out.write(block)
                got += len(block)
            if expected is not None and got != int(expected):
                raise _Retryable(f"connection closed after {got} of {expected} bytes")
    except urllib.error.HTTPError as err:
        if err.code >= 500 or err.code == 429:
            raise _Retryable(f"HTTP {err.code} {err.reason}") from err
        raise DataError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise _Retryable(f"{type(err).__name__}: {reason}") from err


def _copy_to(src: Path, tmp: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, tmp)
    else:
        shutil.copyfile(src, tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def local_path(source: str, base_dir: Path) -> Path | None:
    """The local path of a ``file://`` or relative source; None for http(s) URLs."""
    scheme = urllib.parse.urlparse(source).scheme
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        return Path(urllib.parse.unquote(urllib.parse.urlparse(source).path))
    if scheme:
        raise DataError(f"source '{source}': unsupported scheme '{scheme}' (use https://, http://, file:// or a path)")
    path = Path(source)
    return path if path.is_absolute() else base_dir / path


def fetch(
    source: str,
    dest_dir: Path,
    *,
    sha256: str | None = None,
    mirror: Path | None = None,
    base_dir: Path = Path("."),
    lock_file: Path | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = 60.0,
) -> Fetched:
    """Place a verified copy of ``source`` at ``dest_dir / source_name(source)``.

    ``sha256``: expected hex digest; when None the lock file's entry for this source is used, and when there
    is none either, the digest of what was fetched is recorded there. Sources are tried in this order: the
    mirror (by name, then by sha256), then the source itself (copied for local paths, downloaded with
    ``retries`` extra attempts and exponential ``backoff`` seconds for URLs). The new copy is fetched to a
    temporary name and replaces a previous one only after it is verified: a mismatching or partial file is
    removed before the error is raised, and the previous copy stays.
    """
    expected = sha256.lower() if sha256 else None
    recorded_before = read_lock(lock_file).get(source) if lock_file is not None else None
    if expected is None:
        expected = recorded_before
    whence = "given" if sha256 else f"recorded in {lock_file}"
    name = source_name(source)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    tmp = dest_dir / f".{name}.part"
    _remove(tmp)

    found = find_in_mirror(mirror, name, expected) if mirror is not None else None
    local = local_path(source, base_dir)
    try:
        if found is not None:
            origin = f"mirror:{found}"
            _copy_to(found, tmp)
        elif local is not None:
            if not local.exists():
                raise DataError(f"source '{source}' not found (looked at {local})")
            origin = f"local:{local}"
            _copy_to(local, tmp)
        else:
            origin = f"url:{source}"
            _download_with_retries(source, tmp, retries=retries, backoff=backoff, timeout=timeout)
        digest = sha256_path(tmp)
        if expected is not None and digest != expected:
            raise DataError(
                f"sha256 mismatch for {source} (from {origin}): expected {expected} ({whence}), "
                f"got {digest}; the file was removed"
            )
    except BaseException:
        _remove(tmp)
        raise
    _remove(dest)  # only now, after verification: a failed fetch leaves the previous good copy in place
    os.replace(tmp, dest)
    nbytes = _size(dest)
    recorded = False
    if lock_file is not None and recorded_before is None and sha256 is None:
        record_lock(lock_file, source, digest)
        recorded = True
    log.info("fetched %s from %s: %d bytes, sha256 %s", name, origin, nbytes, digest)
    return Fetched(path=dest, sha256=digest, origin=origin, nbytes=nbytes, recorded=recorded)


def _download_with_retries(url: str, tmp: Path, *, retries: int, backoff: float, timeout: float) -> None:
    for attempt in range(retries + 1):
        try:
            _http_to(url, tmp, timeout)
            return
        except _Retryable as err:
            _remove(tmp)
            if attempt == retries:
                raise DataError(f"download of {url} failed after {retries + 1} attempts: {err}") from err
            wait = backoff * 2**attempt
            log.warning("download of %s failed (%s); retry %d/%d in %.1f s", url, err, attempt + 1, retries, wait)
            time.sleep(wait)


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Remove what a download folder holds besides the names in ``keep`` (copies of an earlier source)."""
    for path in sorted(folder.iterdir()):
        if path.name not in keep and not path.name.startswith("."):
            log.info("removing %s: no longer this dataset's source", path)
            _remove(path)
