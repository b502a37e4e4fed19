"""STRING proteins -> genes, the species' gene-gene table, and a dataset's STRING edges.

**Proteins -> genes** (:func:`map_proteins_to_genes`). Every source proposes candidate symbols for a
protein, ranked:

0. an Ensembl gene id among its aliases (``ENSG...``/``ENSMUSG...``, any alias source), turned into a
   symbol by the species' GENCODE table -- the table that gave the datasets their symbols;
1. STRING's ``preferred_name`` (``protein.info``);
2. aliases from the symbol sources of :data:`genegraph.graphs.priors.string_files.SYMBOL_SOURCES`, in that order;
3. only for proteins none of the above maps (:func:`mygene_queries`): ``mygene`` answers (``querymany``, scope
   ``ensembl.protein``, fields ``ensembl.gene`` (-> GENCODE symbol, rank 100) and ``symbol`` (rank 101)),
   fetched through the on-disk cache by the download stage's network rule, so that this module never opens a
   connection.

The chosen symbol is, in this order: one the GENCODE table knows (as a real symbol, not a gene id standing
in for one); the best rank; the most candidate rows supporting it; the alphabetically first. So a protein
whose aliases name two genes (STRING v11.5 lists ``RAB40A`` and ``RAB40AL`` for one protein) maps
deterministically; such ties are counted and logged.

**Gene-gene table** (:func:`gene_links`): links whose two proteins map to two different genes, one row per
unordered gene pair in canonical order (``gene_a < gene_b``), every score column the maximum over the protein
pairs behind it (several proteins per gene collapse by max). Columns ``gene_a gene_b combined_score`` and
the channel columns of the links file, integers on STRING's 0-1000 scale.

**Edges** (:func:`string_edges`): links with score >= ``min_score`` (default 400, STRING's "medium
confidence"; scMoFormer kept every link of the download, i.e. >= 150) among the dataset's genes, symmetric
CSR, weight = score / 1000. With ``channels`` the score is recombined from those channels only
(:func:`genegraph.graphs.priors.string_files.combined_score`; for a gene pair behind several protein pairs it
combines the
per-channel maxima).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from genegraph.data.genes import ENSEMBL_GENE, ensembl_to_symbol, strip_version, symbol_to_ensembl
from genegraph.errors import DataError
from genegraph.graphs.adjacency import symmetric_csr, unique_genes
from genegraph.graphs.priors.string_files import (
    SYMBOL_SOURCES,
    check_taxon,
    combined_score,
    read_aliases,
    read_info,
    read_links,
)
from genegraph.io import write_tsv

log = logging.getLogger(__name__)

RANK_ENSEMBL_ALIAS, RANK_PREFERRED, RANK_SOURCES = 0, 1, 2
RANK_MYGENE_ENSEMBL, RANK_MYGENE_SYMBOL = 100, 101
_CANDIDATE_COLUMNS = ["protein", "symbol", "rank", "method"]
_ENSEMBL_PROTEIN = r"^ENS[A-Z]*P\d{11}"


def _candidates(protein, symbol, rank, method) -> pd.DataFrame:
    return pd.DataFrame({"protein": protein, "symbol": symbol, "rank": rank, "method": method})


def usable_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    """Candidates whose symbol is a name: not empty, not a protein id (STRING's preferred name of an
    unnamed protein is its ENSP)."""
    symbol = candidates["symbol"].astype(str).str.strip()
    bad = (symbol == "") | symbol.str.match(_ENSEMBL_PROTEIN) | (symbol == candidates["protein"])
    return candidates.assign(symbol=symbol)[~bad]


def table_candidates(proteins: pd.Index, *, gene_table: pd.DataFrame, info: pd.DataFrame | None = None,
                     aliases: pd.DataFrame | None = None,
                     symbol_sources: Sequence[str] = SYMBOL_SOURCES) -> pd.DataFrame:
    """Candidate symbols from STRING's own tables (ranks 0-2 of the module docstring)."""
    parts = [pd.DataFrame(columns=_CANDIDATE_COLUMNS)]
    to_symbol = ensembl_to_symbol(gene_table)
    if aliases is not None:
        al = aliases[aliases["protein"].isin(proteins)]
        ens = al[al["alias"].str.match(ENSEMBL_GENE)]
        sym = pd.Series(strip_version(ens["alias"].to_numpy()), index=ens.index).map(to_symbol)
        ok = sym.notna()
        parts.append(_candidates(ens.loc[ok, "protein"], sym[ok], RANK_ENSEMBL_ALIAS, "alias_ensembl_gene"))
        order = {s: RANK_SOURCES + i for i, s in enumerate(symbol_sources)}
        by_source = al[al["source"].isin(order)]
        parts.append(_candidates(by_source["protein"], by_source["alias"], by_source["source"].map(order),
                                 "alias:" + by_source["source"]))
    if info is not None:
        inf = info[info["protein"].isin(proteins)]
        parts.append(_candidates(inf["protein"], inf["preferred_name"], RANK_PREFERRED, "preferred_name"))
    return pd.concat(parts, ignore_index=True)


def mygene_candidates(answers: dict[str, list[dict]], *, taxon: int, gene_table: pd.DataFrame) -> pd.DataFrame:
    """Candidate symbols from mygene hits (query = protein id without the ``{taxon}.`` prefix)."""
    to_symbol = ensembl_to_symbol(gene_table)
    rows = [(f"{taxon}.{q}", hit) for q, hits in answers.items() for hit in hits]
    symbols = [(p, h["symbol"]) for p, h in rows if isinstance(h.get("symbol"), str)]
    ensembl = []
    for p, h in rows:
        entries = h.get("ensembl") or []
        for entry in entries if isinstance(entries, list) else [entries]:
            genes = entry.get("gene") if isinstance(entry, dict) else None
            ensembl += [(p, g) for g in ([genes] if isinstance(genes, str) else genes or [])]
    ens = pd.DataFrame(ensembl, columns=["protein", "ensembl"])
    ens["symbol"] = pd.Series(strip_version(ens["ensembl"].to_numpy()), dtype=object).map(to_symbol)
    ens = ens.dropna(subset=["symbol"])
    sym = pd.DataFrame(symbols, columns=["protein", "symbol"])
    return pd.concat([pd.DataFrame(columns=_CANDIDATE_COLUMNS),
                      _candidates(ens["protein"], ens["symbol"], RANK_MYGENE_ENSEMBL, "mygene_ensembl_gene"),
                      _candidates(sym["protein"], sym["symbol"], RANK_MYGENE_SYMBOL, "mygene_symbol")],
                     ignore_index=True)


def choose_genes(candidates: pd.DataFrame, gene_table: pd.DataFrame) -> pd.DataFrame:
    """One gene per protein from its candidates (rule in the module docstring).

    Returns ``protein, symbol, ensembl, method, n_symbols`` (``n_symbols``: distinct candidate symbols).
    """
    cand = usable_candidates(candidates).astype({"rank": np.int64})
    cand["known"] = cand["symbol"].isin(set(gene_table["symbol"])) & ~cand["symbol"].str.match(ENSEMBL_GENE)
    cand["support"] = cand.groupby(["protein", "symbol"])["symbol"].transform("size")
    cand = cand.sort_values(["protein", "known", "rank", "support", "symbol"],
                            ascending=[True, False, True, False, True], kind="stable")
    chosen = cand.drop_duplicates("protein").set_index("protein")
    level = cand.join(chosen[["known", "rank"]], on="protein", rsuffix="_chosen")
    tied = level[(level["known"] == level["known_chosen"]) & (level["rank"] == level["rank_chosen"])]
    n_tied = tied.groupby("protein")["symbol"].nunique()
    conflicts = n_tied[n_tied > 1]
    if conflicts.size:
        examples = "; ".join(
            f"{p}: {', '.join(sorted(tied.loc[tied['protein'] == p, 'symbol'].unique()))} -> {chosen.at[p, 'symbol']}"
            for p in conflicts.index[:5])
        log.warning("%d proteins have several equally ranked gene symbols; chosen by support, then alphabetically "
                    "(e.g. %s)", conflicts.size, examples)
    to_ensembl = symbol_to_ensembl(gene_table)
    out = pd.DataFrame({
        "protein": chosen.index.to_numpy(),
        "symbol": chosen["symbol"].to_numpy(),
        "ensembl": chosen["symbol"].map(to_ensembl).fillna("").to_numpy(),
        "method": chosen["method"].to_numpy(),
        "n_symbols": cand.groupby("protein")["symbol"].nunique().reindex(chosen.index).to_numpy(),
    })
    return out


def _table_candidates(index: pd.Index, taxon: int, gene_table: pd.DataFrame, info: pd.DataFrame | None,
                      aliases: pd.DataFrame | None, symbol_sources: Sequence[str]) -> pd.DataFrame:
    check_taxon(index, taxon, "STRING links")
    return usable_candidates(table_candidates(index, gene_table=gene_table, info=info, aliases=aliases,
                                              symbol_sources=symbol_sources))


def mygene_queries(
    proteins: Sequence[str],
    *,
    taxon: int,
    gene_table: pd.DataFrame,
    info: pd.DataFrame | None = None,
    aliases: pd.DataFrame | None = None,
    symbol_sources: Sequence[str] = SYMBOL_SOURCES,
) -> list[str]:
    """The protein ids (without the ``{taxon}.`` prefix) that STRING's own tables leave unmapped: what the
    network rule asks mygene about."""
    index = pd.Index(pd.unique(np.asarray(proteins, dtype=object)))
    cand = _table_candidates(index, taxon, gene_table, info, aliases, symbol_sources)
    remaining = index.difference(pd.Index(cand["protein"].unique()))
    return remaining.str.slice(len(f"{taxon}.")).tolist()


def map_proteins_to_genes(
    proteins: Sequence[str],
    *,
    taxon: int,
    gene_table: pd.DataFrame,
    info: pd.DataFrame | None = None,
    aliases: pd.DataFrame | None = None,
    mygene_answers: Mapping[str, list[dict]] | None = None,
    symbol_sources: Sequence[str] = SYMBOL_SOURCES,
) -> tuple[pd.DataFrame, dict]:
    """Map STRING protein ids of ``taxon`` to gene symbols: STRING's tables first, then ``mygene_answers``
    (query -> hits, as :meth:`~genegraph.graphs.priors.mygene_cache.MyGeneCache.lookup` returns them for the
    :func:`mygene_queries`) for the rest. No network: the answers were fetched by the download stage.

    Returns the mapping (see :func:`choose_genes`; unmapped proteins have no row) and a summary: proteins,
    mapped per method, unmapped, conflicts, mygene answers used.
    """
    index = pd.Index(pd.unique(np.asarray(proteins, dtype=object)))
    cand = _table_candidates(index, taxon, gene_table, info, aliases, symbol_sources)
    asked = 0
    if mygene_answers:
        asked = len(mygene_answers)
        cand = pd.concat([cand, mygene_candidates(dict(mygene_answers), taxon=taxon, gene_table=gene_table)],
                         ignore_index=True)
    mapping = choose_genes(cand, gene_table)
    by_method = mapping["method"].str.replace(r"^alias:.*", "alias_symbol", regex=True).value_counts()
    summary = {
        "proteins": int(index.size),
        "mapped": int(len(mapping)),
        "unmapped": int(index.size - len(mapping)),
        "by_method": {k: int(v) for k, v in by_method.sort_index().items()},
        "several_symbols": int((mapping["n_symbols"] > 1).sum()),
        "mygene_queries": int(asked),
    }
    log.info("STRING proteins -> genes (taxon %d): %d proteins, %d mapped (%s), %d unmapped; %d proteins had "
             "several candidate symbols", taxon, summary["proteins"], summary["mapped"],
             ", ".join(f"{k} {v}" for k, v in summary["by_method"].items()), summary["unmapped"],
             summary["several_symbols"])
    return mapping, summary


def gene_links(links: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """The species' gene-gene table from protein links (:func:`genegraph.graphs.priors.string_files.read_links`) and a
    protein -> gene mapping: one row per unordered gene pair, scores collapsed by max."""
    scores = [c for c in links.columns if c not in ("protein1", "protein2")]
    genes = pd.Index(np.sort(mapping["symbol"].unique()))
    code = pd.Series(genes.get_indexer(mapping["symbol"].to_numpy()), index=mapping["protein"].to_numpy(),
                     dtype=np.float64)
    a = _gene_codes(links["protein1"], code)
    b = _gene_codes(links["protein2"], code)
    ok = ~np.isnan(a) & ~np.isnan(b) & (a != b)
    a, b = a[ok].astype(np.int64), b[ok].astype(np.int64)
    pairs = pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b)})
    for col in scores:
        pairs[col] = links[col].to_numpy()[ok]
    table = pairs.groupby(["a", "b"], sort=True)[scores].max().reset_index()
    out = pd.DataFrame({"gene_a": genes[table["a"]], "gene_b": genes[table["b"]]})
    for col in scores:
        out[col] = table[col].to_numpy(dtype=np.int16)
    n_genes = len(pd.unique(out[["gene_a", "gene_b"]].to_numpy().ravel()))
    log.info("gene-gene table: %d of %d protein links have two mapped, different genes -> %d gene pairs among "
             "%d genes", int(ok.sum()), len(links), len(out), n_genes)
    return out


def _gene_codes(proteins: pd.Series, code: pd.Series) -> np.ndarray:
    """Gene code (float, NaN = unmapped) of each protein; categoricals are looked up once per category."""
    if isinstance(proteins.dtype, pd.CategoricalDtype):
        return code.reindex(proteins.cat.categories).to_numpy()[proteins.cat.codes.to_numpy()]
    return code.reindex(proteins.astype(str).to_numpy()).to_numpy()


def write_gene_links(table: pd.DataFrame, path: str | Path) -> None:
    """Write the gene-gene table (tab-separated; gzipped when ``path`` ends in ``.gz``), atomically."""
    write_tsv(table, path)


def read_gene_links(path: str | Path) -> pd.DataFrame:
    """Read a gene-gene table written by :func:`write_gene_links`."""
    try:
        table = pd.read_csv(path, sep="\t", dtype={"gene_a": str, "gene_b": str}, keep_default_na=False)
    except (OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the STRING gene table ({type(err).__name__}: {err})") from err
    missing = {"gene_a", "gene_b", "combined_score"} - set(table.columns)
    if missing:
        raise DataError(f"{path}: STRING gene table lacks column(s) {sorted(missing)}")
    return table


def string_edges(
    genes: Sequence[str],
    links_table: pd.DataFrame,
    *,
    min_score: float = 400,
    channels: Sequence[str] | None = None,
    gene_map: pd.DataFrame | None = None,
) -> sp.csr_matrix:
    """STRING adjacency among ``genes`` (N x N CSR float32, symmetric, no self-loops).

    ``links_table``: the gene-gene table (:func:`gene_links`). ``gene_map`` (``index, resource_gene`` rows,
    :func:`genegraph.graphs.priors.orthologs.gene_map`) says which table genes stand for each of ``genes``; by default
    each gene stands for itself. Weight = score / 1000 for pairs with score >= ``min_score``; a pair reached
    through several orthologs keeps the maximum. Genes absent from the table are isolated nodes.
    """
    if not 0 <= min_score <= 1000:
        raise DataError(f"STRING min_score is on STRING's 0-1000 scale; got {min_score}")
    index = unique_genes(genes)
    n = index.size
    if gene_map is None:
        gene_map = pd.DataFrame({"index": np.arange(n), "resource_gene": index.to_numpy()})
    score = combined_score(links_table, channels)
    keep = score >= min_score
    known = set(gene_map["resource_gene"])
    keep &= links_table["gene_a"].isin(known).to_numpy() & links_table["gene_b"].isin(known).to_numpy()
    edges = pd.DataFrame({"a": links_table["gene_a"].to_numpy()[keep], "b": links_table["gene_b"].to_numpy()[keep],
                          "score": score[keep]})
    lookup = gene_map[["resource_gene", "index"]]
    edges = (edges.merge(lookup.rename(columns={"resource_gene": "a", "index": "i"}), on="a")
             .merge(lookup.rename(columns={"resource_gene": "b", "index": "j"}), on="b"))
    i, j = edges["i"].to_numpy(), edges["j"].to_numpy()
    pairs = pd.DataFrame({"i": np.minimum(i, j), "j": np.maximum(i, j), "score": edges["score"].to_numpy()})
    pairs = pairs[pairs["i"] != pairs["j"]].groupby(["i", "j"], sort=True)["score"].max().reset_index()
    adjacency = symmetric_csr(pairs["i"].to_numpy(), pairs["j"].to_numpy(),
                              (pairs["score"].to_numpy() / 1000.0).astype(np.float32), n)
    log.info("STRING edges: %d undirected edges with score >= %g%s among %d genes (%d genes with an edge)",
             len(pairs), min_score, f" (channels {', '.join(channels)})" if channels else "", n,
             int((np.diff(adjacency.indptr) > 0).sum()))
    return adjacency


def read_string_files(links_path: str | Path, *, taxon: int, info_path: str | Path | None = None,
                      aliases_path: str | Path | None = None, min_score: int = 0,
                      symbol_sources: Sequence[str] = SYMBOL_SOURCES
                      ) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """(links, info, aliases) of one species' STRING files; ``min_score`` drops weaker links while reading."""
    links = read_links(links_path, min_score=min_score)
    check_taxon(links["protein1"].cat.categories, taxon, links_path)
    info = read_info(info_path) if info_path is not None else None
    aliases = read_aliases(aliases_path, sources=symbol_sources) if aliases_path is not None else None
    return links, info, aliases


def string_gene_table(
    links_path: str | Path,
    *,
    taxon: int,
    gene_table: pd.DataFrame,
    info_path: str | Path | None = None,
    aliases_path: str | Path | None = None,
    mygene_answers: Mapping[str, list[dict]] | None = None,
    min_score: int = 0,
    symbol_sources: Sequence[str] = SYMBOL_SOURCES,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read one species' STRING files and build its gene-gene table (what the ``string_gene_links`` rule
    writes). ``min_score`` drops weaker links while reading (0 keeps all, so the per-dataset threshold can be
    changed without rebuilding). Returns the table, the protein -> gene mapping and a summary."""
    links, info, aliases = read_string_files(links_path, taxon=taxon, info_path=info_path,
                                             aliases_path=aliases_path, min_score=min_score,
                                             symbol_sources=symbol_sources)
    mapping, summary = map_proteins_to_genes(links["protein1"].cat.categories, taxon=taxon, gene_table=gene_table,
                                             info=info, aliases=aliases, mygene_answers=mygene_answers,
                                             symbol_sources=symbol_sources)
    table = gene_links(links, mapping)
    summary.update({"taxon": int(taxon), "protein_links": int(len(links)), "gene_pairs": int(len(table)),
                    "genes": int(pd.unique(table[["gene_a", "gene_b"]].to_numpy().ravel()).size),
                    "min_score": int(min_score)})
    return table, mapping, summary
