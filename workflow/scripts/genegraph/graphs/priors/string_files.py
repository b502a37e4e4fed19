"""STRING database files: where they are, how to fetch them, and how to read them.

Files (one set per NCBI taxon and STRING version), fetched from ``{base_url}/{kind}.v{version}/
{taxon}.{kind}.v{version}.txt.gz``, e.g. ``https://stringdb-downloads.org/download/
protein.links.detailed.v12.0/9606.protein.links.detailed.v12.0.txt.gz`` (v12.0 lives on
``stringdb-downloads.org``; v11.5 and older on ``stringdb-static.org``, same layout):

* ``protein.links`` / ``protein.links.detailed`` -- space-separated, one header row:
  ``protein1 protein2 [neighborhood fusion cooccurence coexpression experimental database textmining]
  combined_score``. Scores are integers on STRING's 0-1000 scale (the downloads omit links below 150).
  Every link is listed in both directions. v11.5 and v12.0 use the same columns, so one reader serves both;
  the ``.full`` flavour (with ``*_transferred`` and ``homology`` columns) reads too, every extra integer
  column becoming a channel.
* ``protein.info`` -- tab-separated, header ``#string_protein_id preferred_name protein_size annotation``
  (v11.x: ``protein_external_id ...``); only the first two columns are used.
* ``protein.aliases`` -- tab-separated ``string_protein_id alias source``, header line starting with ``#``
  (v12.0) or none (subsets); in v11.x the source column may hold several space-separated sources.

Protein ids carry the taxon: ``9606.ENSP00000000233``.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genegraph.data.download import Fetched, fetch
from genegraph.data.genes import ENSEMBL_GENE
from genegraph.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://stringdb-downloads.org/download"
#: The files ``fetch_string`` downloads, by role.
STRING_KINDS = {"links": "protein.links.detailed", "info": "protein.info", "aliases": "protein.aliases"}
#: The evidence channels of ``protein.links.detailed`` (spelled as in the files, ``cooccurence`` included).
CHANNELS = ("neighborhood", "fusion", "cooccurence", "coexpression", "experimental", "database", "textmining")
#: STRING's prior probability of a random link; removed from each channel before channels are combined.
STRING_PRIOR = 0.041
#: Alias sources whose aliases are gene symbols, best first. v12.0 human: ``Ensembl_HGNC_symbol``,
#: ``UniProt_GN_Name``; v11.x: ``BioMart_HUGO``, ``Ensembl_HGNC``, ``Ensembl_EntrezGene``; mouse:
#: ``Ensembl_MGI``; ``org.Hs.eg.db_SYMBOL`` is the embedded demo subset (resources/priors/).
#: Synonym sources are left out on purpose: a synonym often names another gene.
SYMBOL_SOURCES = (
    "Ensembl_HGNC_symbol",
    "BioMart_HUGO",
    "Ensembl_HGNC",
    "Ensembl_MGI_symbol",
    "Ensembl_MGI",
    "Ensembl_EntrezGene",
    "UniProt_GN_Name",
    "Ensembl_UniProt_GN",
    "org.Hs.eg.db_SYMBOL",
)
CHUNK_ROWS = 1_000_000
_READ_ERRORS = (EOFError, OSError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError, pd.errors.ParserError,
                pd.errors.EmptyDataError, ValueError)


def string_url(taxon: int, kind: str, version: str = "12.0", base_url: str = DEFAULT_BASE_URL) -> str:
    """URL of one STRING file, e.g. ``kind='protein.links.detailed'``."""
    return f"{base_url.rstrip('/')}/{kind}.v{version}/{taxon}.{kind}.v{version}.txt.gz"


def string_urls(taxon: int, version: str = "12.0", base_url: str = DEFAULT_BASE_URL,
                links: str = STRING_KINDS["links"]) -> dict[str, str]:
    """URLs of the links (``links`` flavour), info and aliases files of one taxon, by role."""
    kinds = {**STRING_KINDS, "links": links}
    return {role: string_url(taxon, kind, version, base_url) for role, kind in kinds.items()}


def fetch_string(
    taxon: int,
    dest_dir: Path,
    *,
    version: str = "12.0",
    base_url: str = DEFAULT_BASE_URL,
    links: str = STRING_KINDS["links"],
    sha256: dict[str, str] | None = None,
    roles: Sequence[str] = ("links", "info", "aliases"),
    **fetch_kw,
) -> dict[str, Fetched]:
    """Fetch the STRING files of ``taxon`` into ``dest_dir`` with :func:`genegraph.data.download.fetch`.

    ``sha256`` maps a file name (``9606.protein.info.v12.0.txt.gz``) to its expected digest; a file without
    one is checked against, or recorded in, the lock file (``lock_file=`` in ``fetch_kw``). ``mirror=``
    finds local copies by name, then by sha256. Returns the fetched files by role.
    """
    urls = string_urls(taxon, version, base_url, links)
    unknown = set(roles) - set(urls)
    if unknown:
        raise DataError(f"unknown STRING file role(s) {sorted(unknown)}; use {sorted(urls)}")
    sha256 = sha256 or {}
    out = {}
    for role in roles:
        url = urls[role]
        out[role] = fetch(url, dest_dir, sha256=sha256.get(url.rsplit("/", 1)[-1]), **fetch_kw)
    return out


def species_files(folder: Path | str, taxon: int) -> dict[str, Path | None]:
    """The links, info and aliases files of ``taxon`` in a STRING folder (downloaded or embedded);
    info and aliases may be absent (None), links may not."""
    folder = Path(folder)

    def one(kind: str) -> Path | None:
        hits = sorted(folder.glob(f"{taxon}.protein.{kind}*.txt.gz"))
        return hits[0] if hits else None

    found = {"links": one("links"), "info": one("info"), "aliases": one("aliases")}
    if found["links"] is None:
        raise DataError(f"no {taxon}.protein.links*.txt.gz in {folder}")
    return found


def _unreadable(path: Path, what: str, err: Exception) -> DataError:
    return DataError(f"{path}: cannot read it as a STRING {what} file ({type(err).__name__}: {err}); "
                     f"is it truncated or of another format?")


def _first_line(path: Path, what: str) -> str:
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            return fh.readline().rstrip("\n")
    except _READ_ERRORS as err:
        raise _unreadable(path, what, err) from err


def check_taxon(proteins: Iterable[str], taxon: int, path: Path | str) -> None:
    """Raise when protein ids do not carry ``{taxon}.`` (a file of another species)."""
    ids = pd.Series(pd.unique(np.asarray(list(proteins), dtype=object)), dtype=object)
    bad = ~ids.str.startswith(f"{taxon}.")
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} of {ids.size} protein ids are not of taxon {taxon} "
                        f"(e.g. '{ids[bad].iloc[0]}'); wrong species file?")


def read_links(path: Path | str, *, min_score: int = 0, chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """Read a STRING ``protein.links[.detailed|.full]`` file (v11.5 / v12.0 layout, gzipped or not).

    Returns one row per undirected protein pair (``protein1 < protein2``; the two directions STRING lists
    are merged, keeping the larger score per column) with ``combined_score >= min_score``: columns
    ``protein1``, ``protein2`` (categoricals sharing one category list), ``combined_score`` and one int16
    column per evidence channel present. Read in chunks, so the 13 M-row human file fits in a few GB.
    """
    path = Path(path)
    header = _first_line(path, "protein.links").split()
    if header[:2] != ["protein1", "protein2"] or "combined_score" not in header:
        raise DataError(f"{path}: not a STRING protein.links file (header {' '.join(header[:12])!r}; expected "
                        "'protein1 protein2 ... combined_score')")
    scores = header[2:]
    dtypes = {"protein1": str, "protein2": str, **{c: np.float64 for c in scores}}
    pairs: list[pd.DataFrame] = []
    n_rows = 0
    try:
        with pd.read_csv(path, sep=r"\s+", header=0, dtype=dtypes, chunksize=chunk_rows,
                         quoting=csv.QUOTE_NONE) as reader:
            for chunk in reader:
                n_rows += len(chunk)
                pairs.append(_canonical_chunk(chunk, scores, min_score, path))
    except DataError:
        raise
    except _READ_ERRORS as err:
        raise _unreadable(path, "protein.links", err) from err
    if n_rows == 0:
        raise DataError(f"{path}: STRING links file has a header but no links")
    categories = pd.Index(pd.unique(np.concatenate([p["protein1"].cat.categories.to_numpy(dtype=object)
                                                    for p in pairs]))).sort_values()
    for p in pairs:  # one shared, sorted category list, so codes order like the ids
        for col in ("protein1", "protein2"):
            p[col] = p[col].cat.set_categories(categories)
    links = pd.concat(pairs, ignore_index=True)
    links = (links.groupby(["protein1", "protein2"], observed=True, sort=True)[scores].max().reset_index())
    links[scores] = links[scores].astype(np.int16)
    log.info("read %s: %d rows -> %d undirected protein pairs with combined_score >= %d among %d proteins; "
             "channels: %s", path.name, n_rows, len(links), min_score, len(categories),
             ", ".join(c for c in scores if c != "combined_score") or "none")
    return links


def _canonical_chunk(chunk: pd.DataFrame, scores: list[str], min_score: int, path: Path) -> pd.DataFrame:
    values = chunk[scores].to_numpy()
    if np.isnan(values).any() or (values < 0).any() or (values > 1000).any() or (values % 1 != 0).any():
        raise DataError(f"{path}: STRING scores must be integers in 0..1000 (columns {', '.join(scores)}); "
                        "a missing value means a short line")
    if chunk["protein1"].isna().any() or chunk["protein2"].isna().any():
        raise DataError(f"{path}: a link has an empty protein id")
    chunk = chunk[(chunk["combined_score"] >= min_score) & (chunk["protein1"] != chunk["protein2"])]
    a, b = chunk["protein1"].to_numpy(dtype=object), chunk["protein2"].to_numpy(dtype=object)
    categories = pd.Index(pd.unique(np.concatenate([a, b]))).sort_values()  # code order = id order
    ca, cb = categories.get_indexer(a), categories.get_indexer(b)
    out = pd.DataFrame({"protein1": pd.Categorical.from_codes(np.minimum(ca, cb), categories=categories),
                        "protein2": pd.Categorical.from_codes(np.maximum(ca, cb), categories=categories)})
    for col in scores:
        out[col] = chunk[col].to_numpy(dtype=np.int16)
    return out


def read_info(path: Path | str) -> pd.DataFrame:
    """Read ``protein.info``: columns ``protein``, ``preferred_name``."""
    path = Path(path)
    header = _first_line(path, "protein.info").lstrip("#").split("\t")
    if len(header) < 2 or header[1].strip() != "preferred_name":
        raise DataError(f"{path}: not a STRING protein.info file (header {header[:4]}; expected "
                        "'#string_protein_id  preferred_name  protein_size  annotation')")
    try:
        info = pd.read_csv(path, sep="\t", header=0, usecols=[0, 1], names=["protein", "preferred_name"],
                           dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    except _READ_ERRORS as err:
        raise _unreadable(path, "protein.info", err) from err
    info = info[info["protein"] != ""]
    if info["protein"].duplicated().any():
        dup = info.loc[info["protein"].duplicated(), "protein"].iloc[0]
        raise DataError(f"{path}: protein '{dup}' is listed twice in protein.info")
    log.info("read %s: preferred names of %d proteins", path.name, len(info))
    return info.reset_index(drop=True)


def read_aliases(path: Path | str, *, sources: Sequence[str] | None = SYMBOL_SOURCES,
                 chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """Read ``protein.aliases``: columns ``protein``, ``alias``, ``source`` (one source per row).

    Only rows useful for gene mapping are kept: a source in ``sources`` (all rows when None), or an alias
    that is an Ensembl gene id (``ENSG...``, ``ENSMUSG...``) whatever its source. Multi-source rows
    (v11.x, ``"BioMart_HUGO Ensembl_HGNC"``) are split into one row per source.
    """
    path = Path(path)
    first = _first_line(path, "protein.aliases")
    has_header = first.startswith("#") or not re.match(r"^\d+\.", first)
    keep_sources = None if sources is None else set(sources)
    parts = []
    n_rows = 0
    try:
        with pd.read_csv(path, sep="\t", header=None, skiprows=1 if has_header else 0, dtype=str,
                         keep_default_na=False, quoting=csv.QUOTE_NONE, chunksize=chunk_rows) as reader:
            for chunk in reader:
                if chunk.shape[1] != 3:
                    raise DataError(f"{path}: a STRING protein.aliases file has 3 tab-separated columns "
                                    f"(string_protein_id, alias, source), this one has {chunk.shape[1]}")
                n_rows += len(chunk)
                chunk.columns = ["protein", "alias", "source"]
                chunk["source"] = chunk["source"].str.split()
                chunk = chunk.explode("source", ignore_index=True)
                keep = (chunk["alias"] != "") & chunk["source"].notna()
                if keep_sources is not None:
                    keep &= chunk["source"].isin(keep_sources) | chunk["alias"].str.match(ENSEMBL_GENE)
                parts.append(chunk[keep])
    except DataError:
        raise
    except _READ_ERRORS as err:
        raise _unreadable(path, "protein.aliases", err) from err
    if n_rows == 0:
        raise DataError(f"{path}: STRING aliases file is empty")
    aliases = pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)
    log.info("read %s: %d alias rows, %d kept for gene mapping (%d proteins)", path.name, n_rows, len(aliases),
             aliases["protein"].nunique())
    return aliases


def combined_score(links: pd.DataFrame, channels: Sequence[str] | None = None) -> np.ndarray:
    """Combined score (0-1000, float) of each link: the file's ``combined_score`` when ``channels`` is None,
    else STRING's combination of the chosen channels only.

    STRING's rule: each channel score s (as a probability) loses the prior p = 0.041,
    s' = max(s - p, 0) / (1 - p); the channels combine as 1 - prod(1 - s'); the prior is added back,
    c = c' (1 - p) + p. Applied to all seven channels of a ``.detailed`` file this reproduces the file's
    ``combined_score`` to within 1 after rounding (STRING rounds its intermediate values; checked on the v11.5
    subset in the tests)."""
    if channels is None:
        return links["combined_score"].to_numpy(dtype=np.float64)
    channels = list(dict.fromkeys(channels))
    missing = [c for c in channels if c not in links.columns or c == "combined_score"]
    if missing or not channels:
        have = [c for c in links.columns if c not in ("protein1", "protein2", "gene_a", "gene_b", "combined_score")]
        raise DataError(f"STRING channel(s) {missing or channels} not in the links table (channels present: "
                        f"{', '.join(have) or 'none -- a plain protein.links file has no channels'})")
    s = np.maximum(links[channels].to_numpy(dtype=np.float64) / 1000.0, STRING_PRIOR)
    without_prior = (s - STRING_PRIOR) / (1.0 - STRING_PRIOR)
    combined = 1.0 - np.prod(1.0 - without_prior, axis=1)
    return 1000.0 * (combined * (1.0 - STRING_PRIOR) + STRING_PRIOR)
