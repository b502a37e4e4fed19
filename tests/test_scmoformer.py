"""scMoFormer: relations, encodings, model and training (genegraph.models.scmoformer)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from genegraph.errors import DataError
from genegraph.models.layers.sparse import SparseAdjacency
from genegraph.models.protein_task import ProteinTask
from genegraph.models.scmoformer import (
    build_relations,
    load_settings,
    prepare_graph,
    train_scmoformer,
)
from genegraph.models.scmoformer.encodings import (
    gene_features,
    laplacian_pe,
    positional_encoding,
    random_walk_pe,
    svd_cell_features,
)
from genegraph.models.scmoformer.model import ScMoFormer
from genegraph.models.scmoformer.relations import gene_gene_relation

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Unbounded BLAS threads on a shared 2-core machine make the small SVDs 100x slower."""
    with threadpool_limits(1):
        yield

SMALL = {"model": {"hidden": 16, "layers": 1, "heads": 2}, "encodings": {"svd_components": 8, "pe_dim": 4},
         "train": {"max_epochs": 3, "batch_size": 40}}


# --- STRING tables as the priors stage hands them over ---------------------------------------------------------


def symbol_edges(links_path, aliases_path) -> pd.DataFrame:
    """STRING links (``protein1 protein2 ... combined_score``) with both ENSPs replaced by their gene symbols
    (aliases rows of source ``Ensembl_EntrezGene``); links with an ENSP without a symbol are dropped."""
    links = pd.read_csv(links_path, sep=" ")
    aliases = pd.read_csv(aliases_path, sep="\t", header=None, names=["ensp", "alias", "source"], comment="#")
    symbol = aliases[aliases["source"] == "Ensembl_EntrezGene"][["ensp", "alias"]]
    out = links.merge(symbol.rename(columns={"ensp": "protein1", "alias": "gene_a"}), on="protein1")
    out = out.merge(symbol.rename(columns={"ensp": "protein2", "alias": "gene_b"}), on="protein2")
    return out[["gene_a", "gene_b", "combined_score"]].reset_index(drop=True)


def write_string_example(folder):
    """Seven proteins; E7 has no symbol. Links listed in both directions except E2-E5 (one direction)."""
    symbols = {"E1": "GA", "E2": "GB", "E3": "GC", "E4": "FCGR3A", "E5": "FCGR3B", "E6": "CD4"}
    pairs = [("E1", "E2", 400), ("E2", "E3", 700), ("E1", "E7", 900), ("E4", "E6", 800), ("E5", "E6", 600)]
    rows = [f"9606.{a} 9606.{b} 0 0 0 0 0 0 0 {s}" for a, b, s in pairs]
    rows += [f"9606.{b} 9606.{a} 0 0 0 0 0 0 0 {s}" for a, b, s in pairs] + ["9606.E2 9606.E5 0 0 0 0 0 0 0 300"]
    header = "protein1 protein2 neighborhood fusion cooccurence coexpression experimental database textmining " \
             "combined_score"
    links, aliases = folder / "links.txt.gz", folder / "aliases.txt.gz"
    with gzip.open(links, "wt") as fh:
        fh.write("\n".join([header, *rows]) + "\n")
    with gzip.open(aliases, "wt") as fh:
        for e, s in symbols.items():
            fh.write(f"9606.{e}\t{s}\tEnsembl_EntrezGene\n9606.{e}\t{s.lower()}x\tEnsembl_EntrezGene_synonym\n")
        fh.write("9606.E7\tsomething\tBLAST_UniProt_DE_RecName_Full\n")
    return links, aliases


GENES = ["GA", "GB", "GC", "fcgr3a", "FCGR3B", "CD4", "GX"]
PROTEINS = ["CD16", "CD4", "IgG1", "CD19"]
PROTEIN_GENES = {"CD16": ("FCGR3A", "FCGR3B"), "CD4": ("CD4",), "IgG1": (), "CD19": ("CD19",)}


def dense_sym(n, entries):
    m = np.zeros((n, n), np.float32)
    for i, j, w in entries:
        m[i, j] = m[j, i] = w
    return m


def test_relations_hand_made(tmp_path):
    edges = symbol_edges(*write_string_example(tmp_path))
    assert len(edges) == 9 and "E7" not in set(edges["gene_a"]) | set(edges["gene_b"])
    x = sp.csr_matrix(np.array([[1.5, 0, 0, 2.0, 0, 0, 0], [0, 0.5, 0, 0, 0, 3.0, 0]], np.float32))
    rel = build_relations(x, GENES, PROTEINS, edges=edges, protein_genes=PROTEIN_GENES)
    np.testing.assert_array_equal(rel.cell_gene.toarray(), x.toarray())
    gg = dense_sym(7, [(0, 1, 0.4), (1, 2, 0.7), (3, 5, 0.8), (4, 5, 0.6), (1, 4, 0.3)])
    np.testing.assert_allclose(rel.gene_gene.toarray(), gg, rtol=1e-6)
    np.testing.assert_allclose(rel.protein_protein.toarray(), dense_sym(4, [(0, 1, 0.8)]), rtol=1e-6)
    gp = np.zeros((7, 4), np.float32)
    gp[3, 0] = gp[4, 0] = gp[5, 1] = 1
    np.testing.assert_array_equal(rel.gene_protein.toarray(), gp)

    high = build_relations(x, GENES, PROTEINS, edges=edges, protein_genes=PROTEIN_GENES, min_score=650)
    np.testing.assert_allclose(high.gene_gene.toarray(), dense_sym(7, [(1, 2, 0.7), (3, 5, 0.8)]), rtol=1e-6)
    only_b = {**PROTEIN_GENES, "CD16": ("FCGR3B",)}
    low = build_relations(x, GENES, PROTEINS, edges=edges, protein_genes=only_b)
    np.testing.assert_allclose(low.protein_protein.toarray(), dense_sym(4, [(0, 1, 0.6)]), rtol=1e-6)

    bare = build_relations(x, GENES, PROTEINS, edges=None, protein_genes=None)
    assert bare.gene_gene is None and bare.protein_protein is None and bare.gene_protein is None


def test_duplicate_symbol_pairs_keep_best_score():
    edges = pd.DataFrame({"gene_a": ["A", "A", "B", "A"], "gene_b": ["B", "B", "A", "A"],
                          "combined_score": [300, 900, 500, 999]})
    m = gene_gene_relation(["A", "B"], edges).toarray()
    np.testing.assert_allclose(m, [[0, 0.9], [0.9, 0]], rtol=1e-6)


def test_string_subset_counts(shared_data):
    """The real-format STRING v11.5 subset: ENSPs without a symbol are dropped, counts checked independently."""
    folder = shared_data / "ppi_string_subsets"
    links_path = folder / "STRING11.5_9606_links_raw.txt.gz"
    aliases_path = folder / "STRING11.5_9606_aliases_raw.txt.gz"
    edges = symbol_edges(links_path, aliases_path)
    links = pd.read_csv(links_path, sep=" ")
    aliases = pd.read_csv(aliases_path, sep="\t", header=None, names=["ensp", "alias", "source"])
    with_symbol = set(aliases.loc[aliases["source"] == "Ensembl_EntrezGene", "ensp"])
    proteins = set(links["protein1"]) | set(links["protein2"])
    assert len(links) == 21070 and len(proteins - with_symbol) == 305
    mapped = links["protein1"].isin(with_symbol) & links["protein2"].isin(with_symbol)
    assert mapped.sum() == 18724
    n_symbols = aliases[aliases["source"] == "Ensembl_EntrezGene"].groupby("ensp")["alias"].nunique()
    assert len(edges) == int((links.loc[mapped, "protein1"].map(n_symbols)
                              * links.loc[mapped, "protein2"].map(n_symbols)).sum())
    genes = sorted(set(edges["gene_a"]) | set(edges["gene_b"]))[::3]
    keep = set(genes)
    pairs = {frozenset((a, b)) for a, b in zip(edges["gene_a"], edges["gene_b"]) if a in keep and b in keep and a != b}
    gg = gene_gene_relation(genes, edges)
    assert gg.nnz == 2 * len(pairs) and abs(gg - gg.T).max() == 0
    assert gg.data.min() >= 0.4 and gg.data.max() <= 0.999


# --- encodings --------------------------------------------------------------------------------------------------


def random_graph(n, density, seed):
    a = sp.random(n, n, density=density, random_state=seed, format="csr")
    a = sp.triu(a, 1)
    return sp.csr_matrix(a + a.T)


def test_random_walk_pe_matches_dense_powers():
    a = sp.csr_matrix(sp.block_diag([random_graph(59, 0.08, 0), sp.csr_matrix((1, 1))]))
    d = a.toarray()
    deg = d.sum(0)
    m = d / np.where(deg > 0, deg, np.inf)[None, :]
    expected, power = [], np.eye(60)
    for _ in range(5):
        power = m @ power
        expected.append(np.diag(power))
    np.testing.assert_allclose(random_walk_pe(a, 5, block=7), np.array(expected).T, atol=1e-6)
    assert (deg == 0).any() and np.all(random_walk_pe(a, 5)[deg == 0] == 0)


def test_laplacian_pe_sparse_and_dense_agree(monkeypatch):
    import genegraph.models.scmoformer.encodings as enc

    a = random_graph(80, 0.1, 1) + sp.diags(np.zeros(80))
    dense = laplacian_pe(a, 4)
    monkeypatch.setattr(enc, "DENSE_EIG_MAX", 10)
    np.testing.assert_allclose(laplacian_pe(a, 4), dense, atol=1e-4)
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.where(deg > 0, deg, np.inf) ** -0.5
    lap = np.eye(80) - inv[:, None] * a.toarray() * inv[None, :]
    vals = np.linalg.eigvalsh(lap)
    rayleigh = np.einsum("ik,ij,jk->k", dense, lap, dense)
    np.testing.assert_allclose(rayleigh, vals[1:5], atol=1e-4)
    np.testing.assert_allclose(dense.T @ dense, np.eye(4), atol=1e-4)
    assert np.all(dense[np.abs(dense).argmax(0), range(4)] > 0)
    tiny = laplacian_pe(sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]])), 3)
    assert tiny.shape == (2, 3) and np.all(tiny[:, 1:] == 0)
    assert positional_encoding(a, "none", 4) is None
    with pytest.raises(DataError, match="positional encoding"):
        positional_encoding(a, "spectral", 4)


def test_gene_features_sparse_product():
    x = sp.random(30, 20, density=0.2, random_state=3, format="csr", dtype=np.float32)
    h = svd_cell_features(x, 5, seed=10)
    assert h.shape == (30, 5)
    np.testing.assert_array_equal(h, svd_cell_features(x, 5, seed=10))
    np.testing.assert_allclose(gene_features(x, h), x.toarray().T @ h, rtol=1e-5, atol=1e-6)
    n = np.maximum((x.toarray() != 0).sum(0), 1)[:, None]
    np.testing.assert_allclose(gene_features(x, h, "mean"), x.toarray().T @ h / n, rtol=1e-5, atol=1e-6)
    assert svd_cell_features(x, 100, seed=0).shape == (30, 19)
    with pytest.raises(DataError, match="sparse"):
        gene_features(x.toarray(), h)


# --- model and training ---------------------------------------------------------------------------------------


def synthetic_task(n_cells=120, seed=0, test_nan=False) -> tuple[ProteinTask, pd.DataFrame]:
    """RNA with a planted signal: proteins are linear in the expression of their own genes."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(34)] + ["CD4", "FCGR3A", "FCGR3B", "CD19", "MS4A1", "CD8A"]
    proteins = ["CD4", "CD16", "CD19", "CD20", "CD8a", "IgG1"]
    x = sp.random(n_cells, len(genes), density=0.3, random_state=seed, format="csr", dtype=np.float32)
    x.data = np.log1p(5 * x.data)
    dense = x.toarray()
    y = np.stack([dense[:, 34], dense[:, 35] + dense[:, 36], dense[:, 37], dense[:, 38], dense[:, 39],
                  rng.normal(0, 0.1, n_cells)], 1).astype(np.float32)
    split = np.array(["train"] * (n_cells * 3 // 5) + ["val"] * (n_cells // 5) + ["test"] * (n_cells // 5))
    if test_nan:
        y[split == "test"] = np.nan
    task = ProteinTask(x=x, y=y, split=split, cells=np.array([f"c{i}" for i in range(n_cells)]),
                       genes=np.array(genes), proteins=np.array(proteins), batch=np.full(n_cells, ""))
    links = [("CD4", "CD8A", 900), ("FCGR3B", "CD19", 500), ("MS4A1", "CD19", 800), ("G1", "G2", 300)]
    links += [(f"G{i}", f"G{i + 1}", 200 + 20 * i) for i in range(3, 30)]
    return task, pd.DataFrame(links, columns=["gene_a", "gene_b", "combined_score"])


def test_training_is_deterministic_and_learns():
    task, edges = synthetic_task(test_nan=True)
    s = load_settings({**SMALL, "train": {"max_epochs": 25, "batch_size": 40, "patience": 25}})
    first = train_scmoformer(task, s, seed=3, edges=edges)
    again = train_scmoformer(task, s, seed=3, edges=edges)
    other = train_scmoformer(task, s, seed=4, edges=edges)
    np.testing.assert_array_equal(first.prediction, again.prediction)
    assert not np.array_equal(first.prediction, other.prediction)
    assert first.prediction.shape == (120, 6) and np.isfinite(first.prediction).all()
    hist = first.history
    assert list(hist.columns) == ["epoch", "train_mse", "val_mse", "lr", "seconds"]
    assert hist["val_mse"].min() < 0.8 * hist["val_mse"].iloc[0]
    assert first.best_epoch == int(hist.loc[hist["val_mse"].idxmin(), "epoch"])


def test_methods_build_the_right_graph():
    task, edges = synthetic_task()
    full = prepare_graph(task.x, task.genes, task.proteins, load_settings(SMALL), edges=edges)
    assert full.gene_pe.shape == (40, 4) and full.protein_pe.shape == (6, 4)
    assert full.relations.gene_protein.nnz == 6
    no_pe = prepare_graph(task.x, task.genes, task.proteins, load_settings({**SMALL, "method": "scmoformer_no_pe"}),
                          edges=edges)
    assert no_pe.gene_pe is None and no_pe.protein_pe is None
    np.testing.assert_array_equal(no_pe.cell_features, full.cell_features)
    s = load_settings({**SMALL, "method": "scmoformer_no_prior"})
    bare = prepare_graph(task.x, task.genes, task.proteins, s, edges=None)
    assert not bare.relations.has_prior and bare.gene_pe is None
    result = train_scmoformer(task, s, seed=0, prepared=bare)
    assert result.prediction.shape == (120, 6)
    with_p = train_scmoformer(task, load_settings(SMALL), seed=0, prepared=full)
    assert result.n_parameters < with_p.n_parameters


def test_performer_close_to_exact_softmax_attention():
    """The model with FAVOR+ attention (many features) ≈ the same weights with exact softmax attention."""
    task, edges = synthetic_task(n_cells=40)
    outputs = {}
    for kind in ("performer", "softmax"):
        s = load_settings({**SMALL, "model": {"hidden": 32, "layers": 1, "heads": 4, "attention": kind,
                                              "n_features": 256}})
        prepared = prepare_graph(task.x, task.genes, task.proteins, s, edges=edges)
        torch.manual_seed(0)
        model = ScMoFormer(s.model, 8, 6, 4, True, seed=0).eval()
        if kind == "performer":
            weights = {k: v for k, v in model.state_dict().items() if not k.endswith("projection")}
        else:
            model.load_state_dict(weights, strict=False)
        with torch.no_grad():
            outputs[kind] = model(prepared.tensors(torch.device("cpu")),
                                  SparseAdjacency.from_scipy(prepared.relations.cell_gene),
                                  torch.from_numpy(prepared.cell_features))
    torch.manual_seed(1)
    unrelated = ScMoFormer(s.model, 8, 6, 4, True, seed=0).eval()
    with torch.no_grad():
        far = unrelated(prepared.tensors(torch.device("cpu")), SparseAdjacency.from_scipy(prepared.relations.cell_gene),
                        torch.from_numpy(prepared.cell_features))
    ref = outputs["softmax"].norm()
    assert (outputs["performer"] - outputs["softmax"]).norm() / ref < 0.03
    assert (far - outputs["softmax"]).norm() / ref > 0.3


# --- bad input ------------------------------------------------------------------------------------------------


def test_bad_input_raises_data_error():
    task, edges = synthetic_task()
    s = load_settings(SMALL)
    foreign = pd.DataFrame({"gene_a": ["ZZ1"], "gene_b": ["ZZ2"], "combined_score": [900]})
    with pytest.raises(DataError, match="no shared genes with STRING"):
        prepare_graph(task.x, task.genes, task.proteins, s, edges=foreign)
    with pytest.raises(DataError, match="only 1 of 2 panel proteins"):
        prepare_graph(task.x, task.genes, ["CD4", "IgG1"], s, edges=edges)
    with pytest.raises(DataError, match="needs the STRING edge table"):
        prepare_graph(task.x, task.genes, task.proteins, s, edges=None)
    with pytest.raises(DataError, match="sparse"):
        prepare_graph(task.x.toarray(), task.genes, task.proteins, s, edges=edges)
    with pytest.raises(DataError, match="not unique"):
        prepare_graph(task.x, [*task.genes[:-1], "cd4"], task.proteins, s, edges=edges)
    with pytest.raises(DataError, match="combined_score"):
        prepare_graph(task.x, task.genes, task.proteins, s, edges=edges.assign(combined_score=2000))
    with pytest.raises(DataError, match="divisible"):
        load_settings({"model": {"hidden": 30, "heads": 4}})
    with pytest.raises(DataError, match="invalid configuration"):
        load_settings({"method": "scmoformer_big"})
    no_val = ProteinTask(**{**task.__dict__, "split": np.where(task.split == "val", "train", task.split)})
    with pytest.raises(DataError, match="validation"):
        train_scmoformer(no_val, s, seed=0, edges=edges)


# --- memory -----------------------------------------------------------------------------------------------------

WIDE = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, pandas as pd, scipy.sparse as sp, torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)
    threadpool_limits(1)
    from genegraph.models.layers.sparse import SparseAdjacency
    from genegraph.models.scmoformer import load_settings, prepare_graph
    from genegraph.models.scmoformer.model import ScMoFormer
    n_cells, n_genes, nnz = 2000, 60000, 1_200_000
    rng = np.random.default_rng(0)
    flat = np.unique(rng.integers(0, n_cells * n_genes, nnz))
    x = sp.csr_matrix((rng.random(flat.size).astype(np.float32) + 0.1, (flat // n_genes, flat % n_genes)),
                      shape=(n_cells, n_genes))
    genes = [f"G{i}" for i in range(n_genes - 3)] + ["CD4", "CD8A", "CD19"]
    edges = pd.DataFrame({"gene_a": [f"G{i}" for i in range(0, 5000, 2)] + ["CD4"],
                          "gene_b": [f"G{i + 1}" for i in range(0, 5000, 2)] + ["CD8A"], "combined_score": 500})
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = load_settings({"method": "scmoformer_no_pe", "model": {"hidden": 8, "layers": 1, "heads": 2},
                       "encodings": {"svd_components": 8}})
    g = prepare_graph(x, genes, ["CD4", "CD8", "CD19"], s, edges=edges)
    model = ScMoFormer(s.model, 8, 3, None, True, seed=0)
    batch = np.arange(500)
    out = model(g.tensors(torch.device("cpu")), SparseAdjacency.from_scipy(x[batch]),
                torch.from_numpy(g.cell_features[batch]))
    out.square().mean().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump({"growth_mb": (peak - base) / 1024, "shape": list(out.shape)}, sys.stdout)
""")


def test_wide_input_memory_stays_sparse():
    """2,000 cells × 60,000 genes at 1 % density: the dense matrix would be 480 MB (float32); preparing the
    graph and one training step must stay far below it."""
    proc = subprocess.run([sys.executable, "-c", WIDE], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["shape"] == [500, 3]
    assert report["growth_mb"] < 200, report
