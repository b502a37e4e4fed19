"""MuSe-GNN model: forward shapes, the parameter-count formula of spec §2.2, dense attention == PyG
TransformerConv, the empty-row guard, edge features and the cell sketch."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.nn import TransformerConv

from genegraph.models.musegnn.model import (
    MuSeGNN,
    PairwiseDecoder,
    cell_sketch,
    graph_input,
    musegnn_parameter_count,
    transformer_conv,
)

#: spec §1.4: cells of the 15 heart datasets (Σ = 410,048).
HEART_CELLS = [26997, 20506, 31455, 57867, 42226, 30963, 12443, 23195, 14958, 22449, 24889, 35064, 26004,
               37334, 3698]


def _random_adj(n: int, density: float, seed: int, symmetric: bool = False, diag: bool = True) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    a = rng.random((n, n)) < density
    if symmetric:
        a = np.triu(a, 1)
        a = a | a.T
    np.fill_diagonal(a, diag)
    return sp.csr_matrix(a)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------------------
# shapes and parameter counts


def test_forward_shapes_for_graphs_of_any_size():
    torch.manual_seed(0)
    sizes = [(1000, 30), (7, 50), (70, 120)]  # (genes, cells): a 7-gene and a 70-gene graph as in the demo
    model = MuSeGNN([c for _, c in sizes], [n for n, _ in sizes], ["scrna_blood", "scrna_blood", "spatial_brain"])
    assert len(model.shared) == 2 and model.key_index == [0, 0, 1]
    for i, (n, c) in enumerate(sizes):
        g = graph_input(_random_adj(n, 0.3, i), device="cpu")
        z = model.encode(i, torch.randn(n, c), g)
        assert z.shape == (n, 32) and z.dtype == torch.float32 and torch.isfinite(z).all()
        logits = model.decode(i, z)
        assert logits.shape == (n, n)
        rows, cols = torch.tensor([0, n - 1]), torch.tensor([n - 1, 0])
        assert torch.allclose(model.decode_pairs(i, z, rows, cols), logits[rows, cols])


def test_pairwise_decoder_dense_equals_pairs_and_is_symmetric():
    torch.manual_seed(1)
    dec = PairwiseDecoder(dim=8, hidden=16)
    z = torch.randn(300, 8)  # > one row block
    dense = dec(z)
    rows, cols = torch.meshgrid(torch.arange(300), torch.arange(300), indexing="ij")
    assert torch.allclose(dense, dec.pair_logits(z, rows.reshape(-1), cols.reshape(-1)).view(300, 300), atol=1e-6)
    assert torch.allclose(dense, dense.T, atol=1e-6)


def test_parameter_count_matches_spec_formula():
    """§2.2: L_i = 512·C_i + 512 + 384; D_m = 58,048; decoder = 3·(N² + N)."""
    in_dims, n_genes = [200, 559, 2464], [1000, 1000, 70]
    model = MuSeGNN(in_dims, n_genes, ["cite_blood", "scrna_blood", "spatial_brain"])
    expected = sum(512 * c + 512 + 384 for c in in_dims) + 3 * 58_048 + sum(3 * (n * n + n) for n in n_genes)
    assert _n_params(model) == expected
    assert musegnn_parameter_count(in_dims, n_genes, 3) == expected
    # per unit, as the spec lists them
    assert _n_params(model.shared[0]) == 58_048
    assert _n_params(model.encoders[0]) == 512 * 200 + 896
    assert _n_params(model.decoders[0]) == 3_003_000


def test_parameter_count_of_the_heart_model():
    """15 heart graphs, one share key: 209.96 M + 45.05 M + 0.06 M ≈ 255 M (spec §2.2)."""
    total = musegnn_parameter_count(HEART_CELLS, [1000] * 15, 1)
    assert sum(HEART_CELLS) == 410_048
    assert total == 512 * 410_048 + 896 * 15 + 58_048 + 3_003_000 * 15
    assert 254.9e6 < total < 255.2e6


@pytest.mark.parametrize("kwargs", [
    {"edge_dim": 3}, {"decoder": "pairwise", "decoder_hidden": 16}, {"dim": 16, "heads": (2, 3, 2)},
])
def test_parameter_count_formula_of_variants(kwargs):
    in_dims, n_genes = [40, 90], [30, 50]
    model = MuSeGNN(in_dims, n_genes, ["a", "b"], **kwargs)
    assert _n_params(model) == musegnn_parameter_count(in_dims, n_genes, 2, **kwargs)


def test_cell_sketch_shrinks_first_layer():
    model = MuSeGNN([64], [1000], ["k"])
    assert _n_params(model.encoders[0]) == 512 * 64 + 896


# ---------------------------------------------------------------------------------------------------------
# dense attention == PyG TransformerConv


def _attrs(adj: sp.csr_matrix, d: int, seed: int) -> list[sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    return [sp.csr_matrix(adj.multiply(rng.uniform(0.1, 3.0, adj.shape)), dtype=np.float32) for _ in range(d)]


@pytest.mark.parametrize("density", [0.02, 0.15, 0.8])
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("heads,concat", [(1, True), (4, True), (2, False)])
def test_dense_attention_equals_pyg(density, edge_dim, heads, concat):
    """Same TransformerConv weights, random directed graphs with isolated nodes: outputs and gradients agree."""
    seed = int(density * 100) + heads
    n = 120
    adj = _random_adj(n, density, seed, diag=density > 0.1)  # sparse graphs also without self-loops
    attrs = _attrs(adj, edge_dim, seed) if edge_dim else []
    torch.manual_seed(seed)
    conv = TransformerConv(24, 8, heads=heads, concat=concat, edge_dim=edge_dim)
    x = torch.randn(n, 24)
    out = {}
    for impl in ("dense", "pyg"):
        conv.zero_grad()
        y = transformer_conv(conv, x, graph_input(adj, attrs, impl))
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        out[impl] = (y.detach(), [p.grad.clone() for p in conv.parameters()])
    assert out["dense"][0].shape == (n, heads * 8 if concat else 8)
    torch.testing.assert_close(out["dense"][0], out["pyg"][0], atol=1e-5, rtol=1e-5)
    for gd, gp in zip(out["dense"][1], out["pyg"][1]):
        torch.testing.assert_close(gd, gp, atol=1e-4, rtol=1e-4)


def test_empty_row_guard_isolated_nodes_get_only_the_skip():
    """Without self-loops an isolated node's softmax row is empty: PyG gives a zero message, not NaN."""
    adj = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool))
    torch.manual_seed(0)
    conv = TransformerConv(5, 4, heads=2)
    x = torch.randn(3, 5)
    g = graph_input(adj, impl="dense")
    assert g.isolated.tolist() == [False, False, True]
    y = transformer_conv(conv, x, g)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[2], conv.lin_skip(x)[2])
    torch.testing.assert_close(y, conv(x, graph_input(adj, impl="pyg").edge_index))


def test_whole_encoder_dense_equals_pyg():
    torch.manual_seed(3)
    adj = _random_adj(80, 0.5, 3, symmetric=True)
    attrs = _attrs(adj, 2, 3)
    model = MuSeGNN([33], [80], ["k"], edge_dim=2)
    x = torch.randn(80, 33)
    z_dense = model.encode(0, x, graph_input(adj, attrs, "dense"))
    z_pyg = model.encode(0, x, graph_input(adj, attrs, "pyg"))
    torch.testing.assert_close(z_dense, z_pyg, atol=1e-5, rtol=1e-5)


def test_graph_input_auto_and_orientation():
    adj = sp.csr_matrix(np.array([[0, 1], [0, 0]], dtype=bool))  # one edge 0 -> 1
    g = graph_input(adj, impl="auto")
    assert g.dense and torch.isfinite(g.attn_bias).tolist() == [[True, False], [True, False]]  # 1 attends to 0
    assert (g.attn_bias[torch.isfinite(g.attn_bias)] == 0).all()  # 0 is isolated: a guard self entry
    assert g.isolated.tolist() == [True, False]
    assert graph_input(adj, impl="pyg").edge_index.tolist() == [[0], [1]]
    big = graph_input(sp.identity(5000, format="csr", dtype=bool), impl="auto")
    assert not big.dense
    with pytest.raises(ValueError, match="attn_impl"):
        graph_input(adj, impl="sdpa")


# ---------------------------------------------------------------------------------------------------------
# cell sketch


def test_cell_sketch_is_the_truncated_svd_projection():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 300)).astype(np.float32)
    sk = cell_sketch(torch.from_numpy(x), 10).numpy()
    u, s, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    ref = x.astype(np.float64) @ vt[:10].T
    signs = np.sign(np.sum(sk * ref, axis=0))
    np.testing.assert_allclose(sk, ref * signs, rtol=1e-3, atol=1e-3)
    assert np.array_equal(sk, cell_sketch(torch.from_numpy(x), 10).numpy())  # reproducible
    # Gram matrix kept: the sketch keeps the top-K part of x xᵀ
    np.testing.assert_allclose(np.linalg.norm(sk, axis=0), s[:10], rtol=1e-4)
    assert cell_sketch(torch.from_numpy(x[:, :5]), 10).shape == (60, 5)
