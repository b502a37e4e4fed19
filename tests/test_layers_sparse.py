"""Cached-transpose SpMM and weighted SAGE-mean convolution against dense references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from genegraph.models.layers.sparse import (
    SparseAdjacency,
    WeightedSAGEConv,
    builtin_spmm,
    edge_dropout,
    spmm,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_adj(n_dst=7, n_src=5, density=0.4, seed=0):
    m = sp.random(n_dst, n_src, density=density, random_state=seed, format="csr", dtype=np.float32)
    m.data += 0.1
    return m, SparseAdjacency.from_scipy(m)


def test_from_edges_merges_parallel_edges_but_counts_them_in_degree():
    # edges src -> dst: 0->1 twice (weights 1 and 2), 2->1, 1->0
    adj = SparseAdjacency.from_edges(dst=[1, 1, 1, 0], src=[0, 0, 2, 1], weight=[1.0, 2.0, 5.0, 4.0], shape=(3, 3))
    dense = adj.to_dense().numpy()
    expected = np.array([[0, 4, 0], [3, 0, 5], [0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(dense, expected)
    np.testing.assert_array_equal(adj.degree.numpy(), [1, 3, 0])
    np.testing.assert_array_equal(adj.t_degree.numpy(), [2, 1, 1])
    assert adj.nnz == 3


def test_from_edges_rejects_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        SparseAdjacency.from_edges(dst=[3], src=[0], weight=[1.0], shape=(3, 3))


def test_transpose_is_the_dense_transpose_and_shares_memory():
    m, adj = _random_adj()
    t = adj.transpose()
    np.testing.assert_allclose(t.to_dense().numpy(), m.toarray().T)
    assert t.values.data_ptr() == adj.t_values.data_ptr()
    np.testing.assert_array_equal(t.degree.numpy(), (m.toarray() != 0).sum(axis=0))
    np.testing.assert_allclose(adj.values[adj.from_t.long()].numpy(), adj.values.numpy()[adj.from_t.numpy()])
    np.testing.assert_allclose(adj.t_values.numpy(), adj.values.numpy()[adj.to_t.numpy()])


def test_spmm_forward_and_backward_match_dense():
    m, adj = _random_adj(9, 6)
    a = torch.tensor(m.toarray(), dtype=torch.float64)
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g = torch.randn(9, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x1 = x.clone().float().requires_grad_(True)
    out = spmm(adj, x1)
    out.backward(g.float())
    x2 = x.clone().requires_grad_(True)
    ref = a @ x2
    ref.backward(g)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x1.grad.numpy(), x2.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_spmm_with_replacement_weights_uses_them_forward_and_backward():
    m, adj = _random_adj(8, 8, 0.5, seed=3)
    new = torch.arange(adj.nnz, dtype=torch.float32) % 3  # some zeros: like dropped edges
    dense = np.zeros(m.shape, dtype=np.float64)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(adj.crow.numpy()))
    dense[rows, adj.col.numpy()] = new.numpy()
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    out = spmm(adj, x, new)
    (out**2).sum().backward()
    xd = x.detach().double().requires_grad_(True)
    ref = torch.tensor(dense) @ xd
    (ref**2).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), xd.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_builtin_path_gives_the_same_product():
    _, adj = _random_adj(10, 4, 0.5)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(builtin_spmm(adj, x).numpy(), spmm(adj, x).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("in_feats,out_feats", [(3, 5), (6, 2)])  # W_neigh after / before the product
def test_sage_mean_conv_matches_dense_formula_and_gradients(in_feats, out_feats):
    m, adj = _random_adj(6, 5, 0.45, seed=5)
    dense = torch.tensor(m.toarray(), dtype=torch.float64)
    deg = torch.tensor((m.toarray() != 0).sum(axis=1), dtype=torch.float64).clamp(min=1)
    torch.manual_seed(0)
    conv = WeightedSAGEConv(in_feats, in_feats, out_feats)
    with torch.no_grad():
        conv.bias.copy_(torch.randn(out_feats))
    gen = torch.Generator().manual_seed(7)
    h_src = torch.randn(5, in_feats, generator=gen, requires_grad=True)
    h_dst = torch.randn(6, in_feats, generator=gen, requires_grad=True)
    out = conv(adj, h_src, h_dst)
    (out**3).sum().backward()

    ws = conv.fc_self.weight.detach().double().requires_grad_(True)
    wn = conv.fc_neigh.weight.detach().double().requires_grad_(True)
    b = conv.bias.detach().double().requires_grad_(True)
    hs = h_src.detach().double().requires_grad_(True)
    hd = h_dst.detach().double().requires_grad_(True)
    ref = hd @ ws.T + ((dense @ hs) / deg[:, None]) @ wn.T + b
    (ref**3).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    for got, want in [(h_src.grad, hs.grad), (h_dst.grad, hd.grad), (conv.fc_self.weight.grad, ws.grad),
                      (conv.fc_neigh.weight.grad, wn.grad), (conv.bias.grad, b.grad)]:
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-3, atol=1e-4)


def test_sage_mean_isolated_dst_gets_only_self_term():
    adj = SparseAdjacency.from_edges(dst=[0], src=[1], weight=[2.0], shape=(2, 2))
    conv = WeightedSAGEConv(2, 2, 2)
    h = torch.randn(2, 2)
    out = conv(adj, h, h)
    np.testing.assert_allclose(out[1].detach().numpy(), conv.fc_self(h[1]).detach().numpy() + 0.0, atol=1e-6)


def test_edge_dropout_drops_rescales_and_keeps_degree():
    values = torch.ones(20000)
    torch.manual_seed(0)
    dropped = edge_dropout(values, 0.4, training=True)
    kept = dropped != 0
    assert abs(kept.float().mean().item() - 0.6) < 0.02
    np.testing.assert_allclose(dropped[kept].numpy(), 1 / 0.6, rtol=1e-6)
    assert torch.equal(edge_dropout(values, 0.4, training=False), values)

    # In the conv the mean still divides by the structural in-degree.
    m, adj = _random_adj(6, 6, 0.6, seed=8)
    conv = WeightedSAGEConv(3, 3, 3, edge_drop=0.5)
    h = torch.randn(6, 3, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(11)
    mask_values = edge_dropout(adj.values, 0.5, training=True)
    torch.manual_seed(11)
    out = conv(adj, h, h)
    dense = np.zeros(m.shape)
    rows = np.repeat(np.arange(6), np.diff(adj.crow.numpy()))
    dense[rows, adj.col.numpy()] = mask_values.numpy()
    deg = np.maximum((m.toarray() != 0).sum(axis=1), 1)
    neigh = (dense @ h.numpy().astype(np.float64)) / deg[:, None]
    ref = conv.fc_self(h).detach().numpy() + neigh @ conv.fc_neigh.weight.detach().numpy().T
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    conv.eval()
    assert torch.equal(conv(adj, h, h), conv(adj, h, h))
