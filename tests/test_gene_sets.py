"""GMT parsing (embedded v7.5.1, the shared v7.0 read in place, broken files) and hallmark edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from genegraph.errors import DataError
from genegraph.graphs.priors.hallmark import hallmark_edges, msigdb_url, pair_cosine, read_gmt, set_membership
from genegraph.graphs.priors.orthologs import gene_map

REPO = Path(__file__).resolve().parents[1]

EMBEDDED = REPO / "resources/msigdb/h.all.v7.5.1.symbols.gmt"


def write(path, lines: list[str], newline: str = "\n"):
    path.write_text(newline.join(lines) + newline)
    return path


def test_embedded_hallmark_gmt():
    sets = read_gmt(EMBEDDED)
    assert len(sets) == 50 and all(name.startswith("HALLMARK_") for name in sets)
    genes = {g for members in sets.values() for g in members}
    assert not any(g.startswith("http") for g in genes)  # the URL column is not a gene
    assert {"JUNB", "CXCL2", "TNF"} <= set(sets["HALLMARK_TNFA_SIGNALING_VIA_NFKB"])
    assert min(map(len, sets.values())) >= 30 and max(map(len, sets.values())) <= 200


def test_shared_v7_0_gmt(shared_data):
    sets = read_gmt(shared_data / "msigdb_hallmark/h.all.v7.0.symbols.gmt")
    assert len(sets) == 50 and sum(map(len, sets.values())) == 7322  # the README's count
    assert set(sets) == set(read_gmt(EMBEDDED))


def test_gmt_parsing_by_column(tmp_path):
    path = write(tmp_path / "ok.gmt", ["SET_A\thttps://example.org/a\tG1\tG2\tG1\t\t", "",
                                       "SET_B\tno url\tG2 \t G3"], newline="\r\n")
    assert read_gmt(path) == {"SET_A": ("G1", "G2"), "SET_B": ("G2", "G3")}


@pytest.mark.parametrize("lines, message", [
    (["SET_A\turl\tG1", "SET_B\turl\t\t"], r"line 2: gene set 'SET_B' has no genes"),
    (["SET_A\turl"], r"line 1: gene set 'SET_A' has no genes"),
    (["SET_A\turl\tG1", "SET_B\turl\tG2", "SET_A\turl\tG3"],
     r"line 3: gene set 'SET_A' is defined twice \(first on line 1\)"),
    (["SET_A url G1 G2"], r"line 1: .* no tab"),
    (["\turl\tG1"], r"line 1: .* no name"),
    (["", "  "], r"holds no gene set"),
])
def test_bad_gmt_files(tmp_path, lines, message):
    with pytest.raises(DataError, match=message):
        read_gmt(write(tmp_path / "bad.gmt", lines))


def test_msigdb_url():
    assert msigdb_url("7.5.1") == ("https://data.broadinstitute.org/gsea-msigdb/msigdb/release/7.5.1/"
                                   "h.all.v7.5.1.symbols.gmt")
    assert msigdb_url("2023.2.Mm", "mh.all").endswith("/2023.2.Mm/mh.all.v2023.2.Mm.symbols.gmt")


SETS = {"A": ("G1", "G2", "G3"), "B": ("G2", "G3", "G4"), "C": ("G9",)}
GENES = ["G4", "G3", "G2", "G1", "G5"]


def test_count_weighting_counts_shared_sets():
    adj = hallmark_edges(GENES, SETS)
    expected = np.zeros((5, 5), dtype=np.float32)
    for a, b, w in [("G2", "G3", 2), ("G1", "G2", 1), ("G1", "G3", 1), ("G2", "G4", 1), ("G3", "G4", 1)]:
        i, j = GENES.index(a), GENES.index(b)
        expected[i, j] = expected[j, i] = w
    assert isinstance(adj, sp.csr_matrix) and adj.dtype == np.float32
    np.testing.assert_array_equal(adj.toarray(), expected)
    assert adj[GENES.index("G5")].nnz == 0  # in no set: isolated


def test_cosine_weighting_matches_a_dense_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 40))
    x[1] = 2 * x[2]          # G3 = 2 G2: cosine 1
    x[0] = -x[1]             # G4 = -G3: cosine -1, kept with its sign
    x[3] -= x[3] @ x[2] / (x[2] @ x[2]) * x[2]  # G1 orthogonal to G2
    adj = hallmark_edges(GENES, SETS, weighting="cosine", expression=x, min_cosine=0.1)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = unit @ unit.T
    pattern = hallmark_edges(GENES, SETS).toarray() > 0
    expected = np.where(pattern & (np.abs(cos) > 0.1), cos, 0)
    np.testing.assert_allclose(adj.toarray(), expected, atol=1e-6)
    g = {name: k for k, name in enumerate(GENES)}
    assert adj[g["G2"], g["G3"]] == pytest.approx(1) and adj[g["G3"], g["G4"]] == pytest.approx(-1)
    assert adj[g["G1"], g["G2"]] == 0
    sparse = hallmark_edges(GENES, SETS, weighting="cosine", expression=sp.csr_matrix(x), min_cosine=0.1)
    np.testing.assert_allclose(sparse.toarray(), adj.toarray(), atol=1e-6)


def test_pair_cosine_blocks_and_zero_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 7))
    x[5] = 0
    i, j = np.triu_indices(30, 1)
    got = pair_cosine(x, i, j, block_rows=4)
    norms = np.linalg.norm(x, axis=1)
    unit = np.divide(x, norms[:, None], out=np.zeros_like(x), where=norms[:, None] > 0)
    np.testing.assert_allclose(got, (unit @ unit.T)[i, j], atol=1e-12)


def test_bad_hallmark_arguments():
    with pytest.raises(DataError, match="weighting"):
        hallmark_edges(GENES, SETS, weighting="pearson")
    with pytest.raises(DataError, match="needs expression with one row per gene"):
        hallmark_edges(GENES, SETS, weighting="cosine")
    with pytest.raises(DataError, match="needs expression"):
        hallmark_edges(GENES, SETS, weighting="cosine", expression=np.ones((3, 4)))
    with pytest.raises(DataError, match="min_cosine"):
        hallmark_edges(GENES, SETS, weighting="cosine", expression=np.ones((5, 4)), min_cosine=1.5)


def test_mouse_genes_reach_human_sets_through_orthologs():
    orthologs = pd.DataFrame({"human": ["G1", "G2", "G3", "G4"], "mouse": ["g1", "g23", "g23", "g4"]})
    genes = ["g4", "g23", "g1", "gx"]
    m = gene_map(genes, from_taxon=10090, to_taxon=9606, orthologs=orthologs)
    membership = set_membership(genes, SETS, m)
    assert membership.toarray().tolist() == [[0, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]]
    adj = hallmark_edges(genes, SETS, gene_map=m)
    # g23 (G2 and G3) shares A and B with itself -- no self-loop -- A with g1 and B with g4
    assert adj.toarray().tolist() == [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
