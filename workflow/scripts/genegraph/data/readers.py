"""Readers for the count-matrix formats a dataset sheet may name.

Each reader returns an AnnData of **cells x features** with the counts as a CSR matrix in ``X`` and the
file's own feature identifiers as ``var_names`` (plus ``var['feature_id']`` / ``var['feature_name']``
when the format carries both Ensembl ids and names). Gene-identifier normalisation, integer checks and
provenance happen afterwards, in :mod:`genegraph.data.dataset`.

Formats (``format`` column of the sheet):

``h5ad``     AnnData file. ``matrix_key``: a layer name, ``raw`` (``adata.raw.X``) or empty for ``X``.
             ``spatial_key``: the obsm key of the coordinates (default ``spatial``). ``protein_key``: an obsm
             key of protein counts (default ``protein_expression``; names from ``uns['protein_names']``).
``10x_h5``   Cell Ranger HDF5 (v3 ``matrix`` group; v2 per-genome groups also read), optionally gzipped; or a
             folder holding ``filtered_feature_bc_matrix.h5`` (Space Ranger layout). Antibody Capture features
             become protein counts. ``spatial_key``: path of the positions file inside the folder (default: the
             first of ``spatial/tissue_positions_list.csv[.gz]`` and ``spatial/tissue_positions.csv[.gz]``).
``10x_mtx``  Cell Ranger matrix folder: v3 (``features.tsv.gz``) or v2 (``genes.tsv``), with a single
             sub-folder level allowed (``filtered_gene_bc_matrices/hg19``).
``csv``/``tsv`` Dense table (optionally gzipped) with identifiers in the first column and header row;
             ``orientation`` says whether rows are cells (``cells_by_genes``) or genes (``genes_by_cells``).
             ``spatial_key: names`` parses coordinates from cell names of the form ``<x>x<y>``.
``rdata``    R data (``.rda``/``.RData``/``.rds``) read without R: ``matrix_key`` is the object path
             (``obj`` or ``obj$element``) of a dgCMatrix or dense matrix, genes x cells unless
             ``orientation`` says otherwise; ``spatial_key`` the path of a data frame whose first two numeric
             columns are coordinates (its other columns become cell metadata); ``protein_key`` the path of
             an antibody-count matrix over the same cells.
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
import tempfile
import types
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from genegraph.errors import DataError

log = logging.getLogger(__name__)

FORMATS = ("h5ad", "10x_h5", "10x_mtx", "csv", "tsv", "rdata")
ORIENTATIONS = ("cells_by_genes", "genes_by_cells")
GENE_EXPRESSION = "Gene Expression"
ANTIBODY_CAPTURE = "Antibody Capture"


def read_counts(
    path: Path,
    fmt: str,
    *,
    orientation: str | None = None,
    matrix_key: str | None = None,
    spatial_key: str | None = None,
    protein_key: str | None = None,
) -> ad.AnnData:
    """Read ``path`` in format ``fmt``; see the module docstring for the per-format keys."""
    if fmt not in FORMATS:
        raise DataError(f"unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    if not path.exists():
        raise DataError(f"input {path} does not exist")
    if orientation is not None and orientation not in ORIENTATIONS:
        raise DataError(f"orientation must be one of {ORIENTATIONS}, not '{orientation}'")
    try:
        if fmt == "h5ad":
            adata = read_h5ad(path, matrix_key=matrix_key, spatial_key=spatial_key, protein_key=protein_key)
        elif fmt == "10x_h5":
            adata = read_10x_h5(path, positions=spatial_key)
        elif fmt == "10x_mtx":
            adata = read_10x_mtx(path)
        elif fmt in ("csv", "tsv"):
            adata = read_table(path, sep="," if fmt == "csv" else "\t", orientation=orientation,
                               coords_from_names=spatial_key == "names")
        else:
            adata = read_rdata(path, matrix_key=matrix_key, orientation=orientation or "genes_by_cells",
                               spatial_key=spatial_key, protein_key=protein_key)
    except (OSError, ValueError, KeyError, IndexError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot read {path.name} as {fmt}: {type(err).__name__}: {err}") from err
    log.info("read %s (%s): %d cells x %d features", path.name, fmt, adata.n_obs, adata.n_vars)
    return adata


# --- h5ad --------------------------------------------------------------------------------------------


def read_h5ad(
    path: Path, *, matrix_key: str | None = None, spatial_key: str | None = None, protein_key: str | None = None
) -> ad.AnnData:
    src = ad.read_h5ad(path)
    if matrix_key in (None, "", "X"):
        x = src.X
    elif matrix_key == "raw":
        if src.raw is None:
            raise DataError(f"{path.name} has no .raw to take counts from (matrix_key 'raw')")
        x, var = src.raw.X, src.raw.var
        src = ad.AnnData(X=x, obs=src.obs, var=var, obsm=dict(src.obsm), uns=dict(src.uns))
    elif matrix_key in src.layers:
        x = src.layers[matrix_key]
    else:
        raise DataError(f"{path.name} has no layer '{matrix_key}' (layers: {', '.join(src.layers) or 'none'})")
    if x is None:
        raise DataError(f"{path.name} has no count matrix in X")
    var = pd.DataFrame(index=src.var_names.astype(str))
    if "gene_ids" in src.var:  # scanpy's name for Ensembl ids next to symbol var_names
        var["feature_id"] = src.var["gene_ids"].astype(str).to_numpy()
    obsm = {}
    key = spatial_key or "spatial"
    if key in src.obsm:
        obsm["spatial"] = np.asarray(src.obsm[key], dtype=float)[:, :2]
    elif spatial_key:
        raise DataError(f"{path.name} has no obsm['{spatial_key}'] (obsm: {', '.join(src.obsm) or 'none'})")
    pkey = protein_key or "protein_expression"
    if pkey in src.obsm:
        obsm["protein"] = _protein_frame(src.obsm[pkey], src.obs_names, src.uns.get("protein_names"))
    elif protein_key:
        raise DataError(f"{path.name} has no obsm['{protein_key}']")
    return ad.AnnData(X=sp.csr_matrix(x), obs=src.obs.copy(), var=var, obsm=obsm)


def read_paired_protein(path: Path, obs_names: pd.Index, layer: str | None = None) -> pd.DataFrame:
    """Protein (ADT) counts from a paired ``.h5ad`` over the same cells as the RNA (the NeurIPS 2021 files ship
    each modality as its own AnnData): cells x proteins, its ``X`` or its layer ``layer``, in the order of
    ``obs_names``; every RNA cell must be in it."""
    src = ad.read_h5ad(path)
    if layer in (None, "", "X"):
        x = src.X
    elif layer in src.layers:
        x = src.layers[layer]
    else:
        raise DataError(f"paired protein file {path.name} has no layer '{layer}' "
                        f"(layers: {', '.join(src.layers) or 'none'})")
    cells = pd.Index(src.obs_names.astype(str))
    missing = ~pd.Index(obs_names.astype(str)).isin(cells)
    if missing.any():
        raise DataError(f"{int(missing.sum())} of {len(obs_names)} RNA cells are not in the paired protein file "
                        f"{path.name} (e.g. '{obs_names[missing][0]}')")
    dense = x.toarray() if sp.issparse(x) else np.asarray(x)
    frame = pd.DataFrame(dense, index=cells, columns=src.var_names.astype(str))
    return frame.loc[obs_names.astype(str)]


def _protein_frame(values, obs_names: pd.Index, names=None) -> pd.DataFrame:
    if isinstance(values, pd.DataFrame):
        frame = values.copy()
    else:
        arr = values.toarray() if sp.issparse(values) else np.asarray(values)
        cols = [str(n) for n in names] if names is not None and len(names) == arr.shape[1] else None
        frame = pd.DataFrame(arr, columns=cols or [f"protein_{i}" for i in range(arr.shape[1])])
    frame.index = obs_names
    frame.columns = frame.columns.astype(str)
    return frame


# --- 10x ---------------------------------------------------------------------------------------------


def _decode(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def _h5_file(path: Path) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """The h5 file to open: ``path`` itself, the Space Ranger file in a folder, or a gunzipped copy."""
    if path.is_dir():
        hits = [path / n for n in ("filtered_feature_bc_matrix.h5", "filtered_feature_bc_matrix.h5.gz")]
        hits = [h for h in hits if h.exists()] or sorted(path.glob("*.h5")) + sorted(path.glob("*.h5.gz"))
        if not hits:
            raise DataError(f"folder {path.name} holds no 10x .h5 file")
        path = hits[0]
    if path.suffix == ".gz":
        tmpdir = tempfile.TemporaryDirectory()
        plain = Path(tmpdir.name) / path.stem
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return plain, tmpdir
    return path, None


def read_10x_h5(path: Path, *, positions: str | None = None) -> ad.AnnData:
    h5path, tmpdir = _h5_file(path)
    try:
        with h5py.File(h5path, "r") as f:
            if "matrix" in f:
                g = f["matrix"]
                ids = _decode(g["features/id"][:])
                names = _decode(g["features/name"][:])
                types_ = _decode(g["features/feature_type"][:]) if "features/feature_type" in g else None
            else:
                genomes = [k for k in f if isinstance(f[k], h5py.Group) and "genes" in f[k]]
                if len(genomes) != 1:
                    raise DataError(f"{path.name}: expected one genome group in a v2 10x h5, found {genomes}")
                g = f[genomes[0]]
                ids, names, types_ = _decode(g["genes"][:]), _decode(g["gene_names"][:]), None
            shape = tuple(int(v) for v in g["shape"][:])
            x = sp.csc_matrix((g["data"][:], g["indices"][:], g["indptr"][:]), shape=shape).T.tocsr()
            barcodes = _decode(g["barcodes"][:])
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    adata = _from_features(x, barcodes, ids, names, types_)
    if path.is_dir():
        _attach_positions(adata, path, positions)
    elif positions:
        raise DataError("a positions file (spatial_key) needs a folder source holding the .h5 and spatial/")
    return adata


def _from_features(x: sp.csr_matrix, barcodes, ids, names, types_) -> ad.AnnData:
    """Split gene-expression and antibody features into counts and ``obsm['protein']``."""
    types_ = np.full(len(ids), GENE_EXPRESSION, dtype=object) if types_ is None else types_
    genes = types_ == GENE_EXPRESSION
    if not genes.any():
        raise DataError(f"no '{GENE_EXPRESSION}' features (feature types: {sorted(set(types_))})")
    var = pd.DataFrame({"feature_id": ids[genes], "feature_name": names[genes]}, index=pd.Index(names[genes]))
    obs = pd.DataFrame(index=pd.Index(barcodes))
    obsm = {}
    ab = types_ == ANTIBODY_CAPTURE
    if ab.any():
        obsm["protein"] = pd.DataFrame(x[:, ab].toarray(), index=obs.index, columns=names[ab].astype(str))
    return ad.AnnData(X=sp.csr_matrix(x[:, genes]), obs=obs, var=var, obsm=obsm)


def _attach_positions(adata: ad.AnnData, folder: Path, positions: str | None) -> None:
    """Add Space Ranger spot positions (pixel x = column, y = row) as ``obsm['spatial']``."""
    if positions:
        rel = Path(positions)
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"spatial_key '{positions}' must be a path inside the dataset's folder "
                            "(no absolute path, no '..')")
        candidates = [folder / rel]
    else:
        candidates = [folder / "spatial" / n for n in (
            "tissue_positions_list.csv", "tissue_positions_list.csv.gz",
            "tissue_positions.csv", "tissue_positions.csv.gz")]
    found = [c for c in candidates if c.exists()]
    if not found:
        if positions:
            raise DataError(f"positions file {positions} not found in {folder.name}")
        return
    table = pd.read_csv(found[0], header=None, dtype=str)
    if table.iloc[0, 0] == "barcode":  # Space Ranger >= 2 writes a header
        table = table.iloc[1:]
    table.columns = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row", "pxl_col"][: table.shape[1]]
    table = table.set_index("barcode")
    missing = ~adata.obs_names.isin(table.index)
    if missing.any():
        raise DataError(f"{int(missing.sum())} of {adata.n_obs} barcodes have no row in {found[0].name}")
    pos = table.loc[adata.obs_names]
    adata.obsm["spatial"] = pos[["pxl_col", "pxl_row"]].to_numpy(dtype=float)
    for col in ("in_tissue", "array_row", "array_col"):
        adata.obs[col] = pos[col].to_numpy(dtype=int)


def _one_subfolder(path: Path, marker: tuple[str, ...]) -> Path:
    if any((path / m).exists() for m in marker):
        return path
    subs = [p for p in path.iterdir() if p.is_dir()]
    if len(subs) == 1 and any((subs[0] / m).exists() for m in marker):
        return subs[0]
    raise DataError(f"{path.name} is not a 10x matrix folder (no {' or '.join(marker)})")


def read_10x_mtx(path: Path) -> ad.AnnData:
    if not path.is_dir():
        raise DataError(f"10x_mtx expects a folder, got file {path.name}")
    folder = _one_subfolder(path, ("matrix.mtx", "matrix.mtx.gz"))
    mtx = folder / "matrix.mtx.gz" if (folder / "matrix.mtx.gz").exists() else folder / "matrix.mtx"
    feats = next((folder / n for n in ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
                  if (folder / n).exists()), None)
    bcs = next((folder / n for n in ("barcodes.tsv.gz", "barcodes.tsv") if (folder / n).exists()), None)
    if feats is None or bcs is None:
        raise DataError(f"{folder.name} lacks features/genes.tsv or barcodes.tsv")
    x = sp.csr_matrix(scipy.io.mmread(mtx).T)
    f = pd.read_csv(feats, sep="\t", header=None, dtype=str)
    barcodes = pd.read_csv(bcs, sep="\t", header=None, dtype=str)[0].to_numpy(dtype=object)
    ids = f[0].to_numpy(dtype=object)
    names = (f[1] if f.shape[1] > 1 else f[0]).to_numpy(dtype=object)
    types_ = f[2].to_numpy(dtype=object) if f.shape[1] > 2 else None
    if x.shape != (len(barcodes), len(ids)):
        raise DataError(f"{folder.name}: matrix is {x.shape[1]} x {x.shape[0]} but there are {len(ids)} "
                        f"features and {len(barcodes)} barcodes")
    return _from_features(x, barcodes, ids, names, types_)


# --- delimited text ----------------------------------------------------------------------------------

COORD_NAME = re.compile(r"^\s*(-?\d+(?:\.\d+)?)x(-?\d+(?:\.\d+)?)\s*$")


def read_table(path: Path, *, sep: str, orientation: str | None, coords_from_names: bool = False) -> ad.AnnData:
    if orientation is None:
        raise DataError("csv/tsv input needs 'orientation' (cells_by_genes or genes_by_cells)")
    table = pd.read_csv(path, sep=sep, index_col=0)
    if table.shape[1] == 0:
        raise DataError(f"{path.name} has no data columns (is the separator '{sep}' right?)")
    bad = [c for c, t in table.dtypes.items() if t.kind not in "biuf"]
    if bad:
        raise DataError(f"{path.name}: column '{bad[0]}' is not numeric ({len(bad)} such columns)")
    if orientation == "genes_by_cells":
        table = table.T
    adata = ad.AnnData(
        X=sp.csr_matrix(table.to_numpy()),
        obs=pd.DataFrame(index=table.index.astype(str)),
        var=pd.DataFrame(index=table.columns.astype(str)),
    )
    if coords_from_names:
        adata.obsm["spatial"] = coords_from_cell_names(adata.obs_names)
    return adata


def coords_from_cell_names(names: pd.Index) -> np.ndarray:
    """Coordinates parsed from names such as ``17.907x4.967`` (spots x 2)."""
    parsed = names.to_series().str.extract(COORD_NAME)
    if parsed.isna().any().any():
        bad = names[parsed.isna().any(axis=1).to_numpy()][0]
        raise DataError(f"cell name '{bad}' is not of the form <x>x<y> (spatial_key 'names')")
    return parsed.to_numpy(dtype=float)


# --- R data ------------------------------------------------------------------------------------------


def _named_factor(obj, attrs):
    """rdata's factor constructor, keeping the factor's names (R's ``names`` attribute) as a Series index."""
    import rdata

    values = rdata.conversion.factor_constructor(obj, attrs)
    names = attrs.get("names")
    return pd.Series(values, index=pd.Index(np.asarray(names, dtype=str))) if names is not None else values


def _pairlist(node):
    """(tag, value) of each element of a parsed R pairlist (a .rda file's top level, an attribute list)."""
    import rdata

    while node is not None and node.info.type == rdata.parser.RObjectType.LIST:
        car, cdr = node.value
        yield (node.tag.value.value.decode() if node.tag is not None else None), car
        node = cdr


def _named_character_vectors(top) -> dict[str, pd.Series]:
    """The top-level character vectors of a parsed .rda file that carry R names, as Series indexed by those names
    (rdata converts a character vector to a plain array and drops its names)."""
    import rdata

    STR = rdata.parser.RObjectType.STR
    out = {}
    for name, obj in _pairlist(top):
        if name is None or obj.info.type != STR or not obj.info.attributes:
            continue
        names = dict(_pairlist(obj.attributes)).get("names")
        if names is not None and names.info.type == STR:
            text = [None if c.value is None else c.value.decode() for c in obj.value]
            out[name] = pd.Series(text, index=[c.value.decode() for c in names.value], dtype=object)
    return out


def _r_objects(path: Path) -> dict:
    """The objects of an R data file by name; vectors and factors that carry R names as Series."""
    import rdata

    constructors = {**rdata.conversion.DEFAULT_CLASS_MAP, "factor": _named_factor}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns about classes it returns unconverted (dgCMatrix)
        try:
            parsed = rdata.parser.parse_file(path)
            converted = rdata.conversion.convert(parsed, constructors, default_encoding="utf8")
        except (NotImplementedError, ValueError, EOFError, OSError) as err:
            raise DataError(f"{path.name} is not an R data file that can be read ({err})") from err
    if not isinstance(converted, dict):
        return {path.stem: converted}
    for name, series in _named_character_vectors(parsed.object).items():
        if isinstance(converted.get(name), np.ndarray):
            converted[name] = series
    return converted


def read_r_cell_table(path: Path) -> pd.DataFrame:
    """A per-cell table from an R data file: its data frame (row names = cell ids), or its named vectors and
    factors (names = cell ids), one column each, named after the object. Values as text, missing as ''."""
    objects = _r_objects(path)
    frames = [v for v in objects.values() if isinstance(v, pd.DataFrame)]
    named = {k: v for k, v in objects.items() if isinstance(v, pd.Series)}
    if len(frames) == 1 and not named:
        table = frames[0]
    elif named and not frames:
        table = pd.concat({k: v.set_axis(v.index.astype(str)) for k, v in named.items()}, axis=1)
    else:
        raise DataError(f"R file {path.name} holds {len(frames)} data frames and {len(named)} named vectors "
                        "(objects: " + ", ".join(objects) + "); a cell table is one data frame or named vectors")
    table.index = table.index.astype(str)
    return table.astype(object).where(table.notna(), "").astype(str)


def _attach_named_vectors(adata: ad.AnnData, siblings: dict, skip: set[str]) -> None:
    """Add each named factor among ``siblings`` (the R list holding the counts) whose names are cell ids as a
    cell annotation of that name, aligned by cell id; a cell it does not name gets a missing value."""
    for name, value in siblings.items():
        if name in skip or not isinstance(value, pd.Series) or name in adata.obs:
            continue
        value.index = value.index.astype(str)
        hits = adata.obs_names.isin(value.index)
        if hits.mean() >= 0.5 and value.index.is_unique:
            adata.obs[str(name)] = value.reindex(adata.obs_names).to_numpy()
            log.info("cell annotation '%s' from the R list: %d of %d cells named", name, int(hits.sum()),
                     adata.n_obs)


def _r_lookup(objects: dict, key: str | None, what: str):
    if not key:
        if len(objects) != 1:
            raise DataError(f"the R file holds {len(objects)} objects ({', '.join(objects)}); name one in {what}")
        key = next(iter(objects))
    node = objects
    for part in key.split("$"):
        if not isinstance(node, dict) or part not in node:
            have = ", ".join(node) if isinstance(node, dict) else type(node).__name__
            raise DataError(f"R object '{key}' not found at '{part}' (available: {have})")
        node = node[part]
    return node


def _r_matrix(obj) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """(rows x columns CSR, row names, column names) of a dgCMatrix or dense R matrix."""
    if isinstance(obj, types.SimpleNamespace) and "dgCMatrix" in list(getattr(obj, "class", [])):
        nrow, ncol = (int(v) for v in obj.Dim)
        x = sp.csc_matrix((np.asarray(obj.x), np.asarray(obj.i), np.asarray(obj.p)), shape=(nrow, ncol)).tocsr()
        rows, cols = (np.asarray(d, dtype=object) for d in obj.Dimnames)
        return x, rows, cols
    if hasattr(obj, "dims") and hasattr(obj, "coords") and len(obj.dims) == 2:  # xarray from a named matrix
        rows, cols = (np.asarray(obj.coords[d].values, dtype=object) for d in obj.dims)
        return sp.csr_matrix(np.asarray(obj.values)), rows, cols
    raise DataError(f"R object of type {type(obj).__name__} is not a dgCMatrix or a named matrix")


def read_rdata(
    path: Path, *, matrix_key: str | None, orientation: str, spatial_key: str | None, protein_key: str | None = None
) -> ad.AnnData:
    objects = _r_objects(path)
    x, rows, cols = _r_matrix(_r_lookup(objects, matrix_key, "matrix_key"))
    if orientation == "genes_by_cells":
        x, rows, cols = sp.csr_matrix(x.T), cols, rows
    adata = ad.AnnData(X=x, obs=pd.DataFrame(index=pd.Index(rows.astype(str))),
                       var=pd.DataFrame(index=pd.Index(cols.astype(str))))
    if protein_key:  # a features x cells (or cells x features, by orientation) matrix of antibody counts
        px, prows, pcols = _r_matrix(_r_lookup(objects, protein_key, "protein_key"))
        if orientation == "genes_by_cells":
            px, prows, pcols = sp.csr_matrix(px.T), pcols, prows
        if list(prows.astype(str)) != list(adata.obs_names):
            raise DataError(f"R object '{protein_key}' does not list the same cells as '{matrix_key}'")
        adata.obsm["protein"] = pd.DataFrame(px.toarray(), index=adata.obs_names, columns=pcols.astype(str))
    if spatial_key:
        frame = _r_lookup(objects, spatial_key, "spatial_key")
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"R object '{spatial_key}' is a {type(frame).__name__}, not a data frame")
        numeric = [c for c in frame.columns if frame[c].dtype.kind in "iuf"]
        if len(numeric) < 2:
            raise DataError(f"R data frame '{spatial_key}' has fewer than two numeric columns")
        frame.index = frame.index.astype(str)
        missing = ~adata.obs_names.isin(frame.index)
        if missing.any():
            raise DataError(f"{int(missing.sum())} cells have no row in '{spatial_key}'")
        frame = frame.loc[adata.obs_names]
        adata.obsm["spatial"] = frame[numeric[:2]].to_numpy(dtype=float)
        for col in frame.columns.drop(numeric[:2]):
            adata.obs[str(col)] = frame[col].to_numpy()
    parent = matrix_key.rsplit("$", 1)[0] if matrix_key and "$" in matrix_key else None
    if parent is not None:
        siblings = _r_lookup(objects, parent, "matrix_key")
        used = {k.rsplit("$", 1)[-1] for k in (matrix_key, spatial_key, protein_key) if k}
        _attach_named_vectors(adata, siblings, used)
    return adata
