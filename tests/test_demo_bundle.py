"""The embedded demo bundle: every stored file matches its recorded provenance, every demo sheet row reads a
recorded file, and the labelled scRNA-seq set holds integer counts with its cell types."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from genegraph.data.download import sha256_file

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"


def test_stored_files_match_their_provenance():
    prov = pd.read_csv(DEMO / "provenance.tsv", sep="\t")
    for stored, digest in prov[["stored", "stored_sha256"]].itertuples(index=False):
        assert sha256_file(REPO / stored) == digest, stored
    for package, version in prov[["package", "version"]].drop_duplicates().itertuples(index=False):
        assert list((DEMO / "licenses").glob(f"{package}-{version}.*")), f"no licence of {package} {version}"
    sheet = pd.read_csv(REPO / "config" / "datasets.tsv", sep="\t", dtype=str)
    recorded = set(prov["stored"])
    for source in sheet["source"]:
        assert source in recorded or any(s.startswith(f"{source}/") for s in recorded), source


def test_pbmc68k_counts_and_labels():
    a = ad.read_h5ad(DEMO / "pbmc68k_reduced_counts.h5ad")
    assert a.shape == (700, 765) and a.X.dtype == np.int32
    assert np.array_equal(a.X.data, np.round(a.X.data)) and a.X.data.min() > 0
    counts = a.obs["bulk_labels"].value_counts()
    assert len(counts) == 10 and counts["CD14+ Monocyte"] == 129 and counts["CD19+ B"] == 95
