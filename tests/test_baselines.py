"""Baselines (spec §3.5): every method on small synthetic graphs (layout, determinism, loss decrease), the
three fixed bugs of the authors' scripts, PCA against sklearn and the dense GCN layer against PyG."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from genegraph.errors import DataError
from genegraph.evaluate.gene_embedding.metrics import edge_auc
from genegraph.models.baselines import METHODS, baseline_settings, pca_embeddings, run_baseline
from genegraph.models.baselines import autoencoders as ae
from genegraph.models.baselines.data import GraphTensors, gcn_normalised, graph_tensors
from genegraph.models.baselines.gnn import DenseGCNLayer, inner_product_loss, train_gae
from genegraph.models.baselines.pca import pca_scores, scale_columns
from genegraph.models.baselines.skipgram import functional_network, gene2vec, giant
from genegraph.models.embeddings import embedding

sys.path.insert(0, str(Path(__file__).parent))
from graph_fixtures import synthetic_graph, write_graph  # noqa: E402

FAST = {"gae": {"epochs": 3}, "vgae": {"epochs": 3}, "mae": {"epochs": 3}, "wsmae": {"epochs": 3},
        "gene2vec": {"epochs": 2, "extra_epochs": 1}, "giant": {"walks_per_gene": 2, "walk_length": 10}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def graph_paths(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("graphs")
    panel = [("sc_a", "scrna", "blood", range(0, 40), 30), ("sc_b", "scrna", "blood", range(10, 50), 25),
             ("cite_a", "cite", "blood", range(5, 45), 20), ("spot_a", "spatial", "brain", range(30, 39), 60)]
    return [write_graph(folder / f"{d}.h5ad", synthetic_graph(d, [f"G{k}" for k in genes], cells, modality=m,
                                                              tissue=t, seed=s))
            for s, (d, m, t, genes, cells) in enumerate(panel)]


def _block_graph(n_blocks: int = 4, size: int = 12, n_cells: int = 16, seed: int = 0) -> ad.AnnData:
    """Dense blocks, no edge between blocks; features = noisy block profiles."""
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(n_blocks), size)
    g = synthetic_graph("blocks", [f"B{k}" for k in range(len(block))], n_cells=n_cells, seed=seed)
    g.varp["coexpr"] = sp.csr_matrix((block[:, None] == block[None, :]).astype(np.float32))
    profiles = rng.normal(size=(n_blocks, n_cells))
    g.layers["residuals"] = (profiles[block] + 0.3 * rng.normal(size=(len(block), n_cells))).T.astype(np.float32)
    return g


# ---------------------------------------------------------------------------------------------------------
# every method


@pytest.mark.parametrize("method", METHODS)
def test_layout_and_determinism(method, graph_paths):
    emb = run_baseline(method, graph_paths, seed=0, cfg=FAST)
    graphs = [ad.read_h5ad(p) for p in graph_paths]
    z = embedding(emb)
    assert z.shape == (sum(g.n_vars for g in graphs), 32) and z.dtype == np.float32
    assert np.isfinite(z).all()
    assert list(emb.obs.columns) == ["gene", "dataset", "group", "share_key", "modality", "tissue", "species",
                                     "in_all_datasets"]
    assert emb.obs["gene"].tolist() == [gene for g in graphs for gene in g.var_names]
    assert emb.obs["dataset"].astype(str).tolist() == [g.uns["dataset"]["id"] for g in graphs for _ in range(g.n_vars)]
    assert set(emb.obs["share_key"].astype(str)) == {"scrna_blood", "cite_blood", "spatial_brain"}
    common = set.intersection(*[set(g.var_names) for g in graphs])
    assert emb.obs["in_all_datasets"].tolist() == [gene in common for g in graphs for gene in g.var_names]
    assert emb.uns["method"] == method and emb.uns["seed"] == 0
    assert emb.obs_names.is_unique
    again = run_baseline(method, graph_paths, seed=0, cfg=FAST)
    np.testing.assert_array_equal(z, embedding(again))
    if method != "pca":
        assert not np.allclose(z, embedding(run_baseline(method, graph_paths, seed=1, cfg=FAST)))


@pytest.mark.parametrize("method", ["gae", "vgae", "mae", "wsmae"])
def test_loss_decreases(method, graph_paths):
    cfg = {"gae": {"epochs": 30, "lr": 1e-2}, "vgae": {"epochs": 30, "lr": 1e-2},
           "mae": {"epochs": 30, "lr_enc": 5e-3, "lr_dec": 5e-3}, "wsmae": {"epochs": 30, "lr_enc": 1e-3},
           }
    losses = np.asarray(run_baseline(method, graph_paths, seed=0, cfg=cfg).uns["losses"])
    assert len(losses) == cfg[method]["epochs"]
    assert losses[-3:].mean() < 0.9 * losses[:3].mean()


def test_config_and_method_errors(graph_paths):
    with pytest.raises(DataError, match="unknown baseline"):
        run_baseline("scbert", graph_paths, 0)
    with pytest.raises(DataError, match="'epoch' was unexpected"):
        baseline_settings({"gae": {"epoch": 3}})
    with pytest.raises(DataError, match="baselines.mae.mask_frac"):
        baseline_settings({"mae": {"mask_frac": 1.0}})
    cfg = baseline_settings({"wsmae": {"epochs": 5}})  # the other WSMAE defaults survive
    assert (cfg.wsmae.epochs, cfg.wsmae.lr_enc, cfg.wsmae.lr_dec) == (5, 1e-4, 5e-4) and cfg.mae.epochs == 1000


# ---------------------------------------------------------------------------------------------------------
# the three bugs of the authors' scripts


def test_gae_loss_takes_logits_once():
    """The scripts fed sigmoid(z zᵀ) to a BCE-with-logits loss: a loss >= log(1 + e^-1) ≈ 0.31 on every edge
    and >= log 2 on every non-edge. Logits must go in once."""
    target = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    z = torch.tensor([[4.0, -4.0], [4.0, -4.0], [-4.0, 4.0]])
    logits = z @ z.T  # +32 on edges, -32 elsewhere
    assert (logits[target == 1] > 30).all() and (logits[target == 0] < -30).all()
    assert inner_product_loss(z, target) < 1e-5
    expected = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), target)
    assert inner_product_loss(z, target) == pytest.approx(float(expected), abs=1e-6)


def test_gae_fits_block_graph_below_double_sigmoid_floor():
    g = graph_tensors(_block_graph())
    frac_edges = float(g.target.mean())
    floor = frac_edges * np.log1p(np.exp(-1)) + (1 - frac_edges) * np.log(2)  # double-sigmoid minimum
    history = train_gae([g], seed=0, epochs=150, lr=1e-2).history
    assert history[-1] < 0.5 * floor


def _spy_modules(monkeypatch, module, name):
    created = []
    base = getattr(module, name)

    class Spy(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.initial = copy.deepcopy(self.state_dict())
            created.append(self)

    monkeypatch.setattr(module, name, Spy)
    return created


def test_mae_and_wsmae_step_their_decoders(monkeypatch, graph_paths):
    feature_decoders = _spy_modules(monkeypatch, ae, "FeatureDecoder")
    row_decoders = _spy_modules(monkeypatch, ae, "RowMLPDecoder")
    graphs = [graph_tensors(ad.read_h5ad(p)) for p in graph_paths]
    ae.train_mae(graphs, seed=0, epochs=1, lr_enc=5e-4, lr_dec=5e-4)
    ae.train_wsmae(graphs, seed=0, epochs=1, lr_enc=1e-4, lr_dec=5e-4)
    assert len(feature_decoders) == 1 and len(row_decoders) == len(graphs)
    for dec in feature_decoders + row_decoders:  # the scripts never stepped MAE's decoder optimiser
        for name, value in dec.state_dict().items():
            assert not torch.equal(dec.initial[name], value), name


def test_masks_are_fresh_copies_every_step(monkeypatch, graph_paths):
    graphs = [graph_tensors(ad.read_h5ad(p)) for p in graph_paths[:2]]
    originals = [g.x.clone() for g in graphs]
    masks = []
    real = ae.masked_copy

    def recording(x, frac, gen):
        out = real(x, frac, gen)
        masks.append((x.shape, (out == 0) & (x != 0)))
        return out

    monkeypatch.setattr(ae, "masked_copy", recording)
    ae.train_mae(graphs, seed=0, epochs=2, lr_enc=5e-4, lr_dec=5e-4)
    for g, x in zip(graphs, originals, strict=True):
        assert torch.equal(g.x, x)  # the features (the MSE target) are never masked in place
    assert len(masks) == 2 * len(graphs) + len(graphs)  # one draw per step, one per graph for the embedding
    masks.clear()
    ae.train_mae(graphs, seed=0, epochs=2, lr_enc=5e-4, lr_dec=5e-4, embed="unmasked")
    assert len(masks) == 2 * len(graphs)  # the fix embeds the full features
    first_a, second_a = masks[0][1], masks[2][1]  # graph 0 in epochs 1 and 2
    assert not torch.equal(first_a, second_a)
    share = float(first_a.float().mean())
    assert 0.18 < share < 0.32


def test_masked_copy_leaves_input_alone():
    gen = torch.Generator().manual_seed(0)
    x = torch.ones(200, 50)
    a, b = ae.masked_copy(x, 0.25, gen), ae.masked_copy(x, 0.25, gen)
    assert torch.equal(x, torch.ones(200, 50))
    assert abs(float((a == 0).float().mean()) - 0.25) < 0.02 and not torch.equal(a, b)


# ---------------------------------------------------------------------------------------------------------
# building blocks


def test_pca_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 40)) @ rng.normal(size=(40, 40))
    ours = pca_scores(x, 8)
    ref = PCA(n_components=8, svd_solver="full").fit_transform(scale_columns(x))
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), rtol=1e-4, atol=1e-4)
    assert np.allclose(scale_columns(x).mean(axis=0), 0) and np.allclose(scale_columns(x).std(axis=0, ddof=1), 1)


def test_pca_pads_small_datasets(graph_paths):
    z = pca_embeddings([ad.read_h5ad(graph_paths[3])], dim=32)[0]  # 9 genes: at most 8 components
    assert z.shape == (9, 32) and (z[:, 8:] == 0).all() and (np.abs(z[:, :8]).sum(axis=0) > 0).all()


def test_dense_gcn_layer_equals_pyg_gcnconv():
    from torch_geometric.nn import GCNConv

    rng = np.random.default_rng(1)
    upper = np.triu(rng.random((30, 30)) < 0.2, 1)
    adj = sp.csr_matrix(upper | upper.T)  # no self-loops: both add them
    coo = adj.tocoo()
    edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    x = torch.from_numpy(rng.normal(size=(30, 7)).astype(np.float32))
    pyg, ours = GCNConv(7, 5), DenseGCNLayer(7, 5)
    with torch.no_grad():
        ours.lin.weight.copy_(pyg.lin.weight)
        ours.bias.copy_(torch.from_numpy(rng.normal(size=5).astype(np.float32)))
        pyg.bias.copy_(ours.bias)
    expected = pyg(x, edge_index)
    got = ours(x, torch.from_numpy(gcn_normalised(adj)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_gene2vec_embeds_graph_structure_and_repeats():
    g = _block_graph(n_blocks=4, size=15)
    adj = sp.csr_matrix(g.varp["coexpr"] != 0)
    z = gene2vec(adj, list(g.var_names), seed=0, epochs=90, extra_epochs=10)
    assert z.shape == (60, 32) and edge_auc(z, adj) > 0.9
    np.testing.assert_array_equal(z, gene2vec(adj, list(g.var_names), seed=0, epochs=90, extra_epochs=10))


def test_giant_network_and_shared_gene_vectors():
    a = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=float))
    b = sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=float))
    network, vocab = functional_network([a, b], [["G1", "G2", "G3"], ["G2", "G3"]])
    w = pd.DataFrame(network.toarray(), index=vocab, columns=vocab)
    # G1-G2: an edge in the one dataset holding both; G2-G3: in 1 of the 2 datasets holding both
    assert w.loc["G1", "G2"] == 1.0 and w.loc["G2", "G3"] == 0.5 and w.loc["G1", "G3"] == 0
    assert network.diagonal().sum() == 0
    blocks = _block_graph(n_blocks=3, size=12)
    adj = sp.csr_matrix(blocks.varp["coexpr"] != 0)
    names = list(blocks.var_names)
    first, second = giant([adj, adj[:20][:, :20]], [names, names[:20]], seed=0, walks_per_gene=10, walk_length=40,
                          epochs=20)
    np.testing.assert_array_equal(first[:20], second)  # a gene has one vector in every dataset of the group
    assert edge_auc(first, adj) > 0.9

def test_graph_tensors(graph_paths):
    g = ad.read_h5ad(graph_paths[0])
    t = graph_tensors(g)
    assert isinstance(t, GraphTensors) and t.n_genes == g.n_vars
    assert torch.equal(t.target, torch.from_numpy((g.varp["coexpr"].toarray() != 0).astype(np.float32)))
    assert torch.allclose(t.norm_adj, t.norm_adj.T)
