"""Linear attention layers: FAVOR+ against exact softmax attention, flow attention, masks, memory, layers."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from genegraph.models.layers.attention import (
    ATTENTION_KINDS,
    LinearTransformerEncoder,
    LinearTransformerLayer,
    MultiheadLinearAttention,
    attention,
    favor_attention,
    flow_attention,
    orthogonal_features,
    softmax_attention,
)


def _qkv(seed: int = 0, n: int = 50, d: int = 16, scale: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    q, k, v = torch.randn(3, 2, 4, n, d, generator=g).unbind(0)
    return q * scale, k * scale, v


def test_orthogonal_features_blocks_are_orthogonal_and_seeded():
    w = orthogonal_features(40, 16, torch.Generator().manual_seed(3))
    assert w.shape == (40, 16)
    block = w[:16] / w[:16].norm(dim=1, keepdim=True)
    assert torch.allclose(block @ block.T, torch.eye(16), atol=1e-5)
    assert torch.equal(w, orthogonal_features(40, 16, torch.Generator().manual_seed(3)))
    assert not torch.equal(w, orthogonal_features(40, 16, torch.Generator().manual_seed(4)))


def test_favor_approaches_softmax_as_features_grow():
    q, k, v = _qkv()
    exact = softmax_attention(q, k, v)
    spread = (exact - v.mean(-2, keepdim=True)).abs().mean().item()

    def err(m: int) -> float:
        errs = [(favor_attention(q, k, v, orthogonal_features(m, 16, torch.Generator().manual_seed(s))) - exact)
                .abs().mean().item() for s in range(3)]
        return sum(errs) / len(errs)

    e16, e128, e2048 = err(16), err(128), err(2048)
    assert e16 > e128 > e2048
    assert e2048 < e16 / 4
    assert e2048 < 0.4 * spread  # much closer to softmax attention than uniform averaging is


def test_softmax_reference_matches_torch():
    q, k, v = _qkv(scale=1.0)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(softmax_attention(q, k, v), ref, atol=1e-5)


def test_flow_attention_hand_formula():
    """Flow attention against a direct transcription of the Flowformer equations, one head, loops in numpy style."""
    q, k, v = _qkv(n=7, d=3, scale=1.0)
    q, k, v = q[0, 0].double(), k[0, 0].double(), v[0, 0].double()
    pq, pk = torch.sigmoid(q), torch.sigmoid(k)
    n, eps = 7, 1e-6
    inc = torch.stack([(pq[i] + eps) @ (pk.sum(0) + eps) for i in range(n)])
    out_ = torch.stack([(pk[j] + eps) @ (pq.sum(0) + eps) for j in range(n)])
    sink = torch.stack([(pq[i] + eps) @ ((pk / out_[:, None]).sum(0) + eps) for i in range(n)])
    source = torch.stack([(pk[j] + eps) @ ((pq / inc[:, None]).sum(0) + eps) for j in range(n)]).clamp(-1, 1)
    comp = torch.softmax(source, 0) * n
    want = torch.stack([
        torch.sigmoid(sink[i]) / inc[i] * sum((pq[i] @ pk[j]) * comp[j] * v[j] for j in range(n)) for i in range(n)
    ])
    assert torch.allclose(flow_attention(q, k, v), want, atol=1e-10)


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_padding_mask_equals_unpadded_sequence(kind):
    q, k, v = _qkv(n=30)
    proj = orthogonal_features(32, 16, torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 1, 30, dtype=torch.bool)
    mask[:, :, 24:] = True
    padded = attention(q, k, v, kind, proj, mask)
    short = attention(q[..., :24, :], k[..., :24, :], v[..., :24, :], kind, proj)
    assert torch.allclose(padded[..., :24, :], short, atol=1e-6)
    assert torch.all(padded[..., 24:, :] == 0)


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_module_shapes_and_permutation_equivariance(kind):
    torch.manual_seed(0)
    mod = MultiheadLinearAttention(32, 4, kind, n_features=24, seed=1).eval()
    x = torch.randn(3, 20, 32)
    y = mod(x)
    assert y.shape == (3, 20, 32)
    assert mod(x[1]).shape == (20, 32)
    assert torch.allclose(mod(x[1]), y[1], atol=1e-6)
    perm = torch.randperm(20)
    assert torch.allclose(mod(x[:, perm]), y[:, perm], atol=1e-5)


def test_module_feature_draw_is_seeded_and_redraws():
    a = MultiheadLinearAttention(32, 4, "performer", seed=7, redraw_interval=2)
    b = MultiheadLinearAttention(32, 4, "performer", seed=7)
    assert a.projection.shape == (int(8 * torch.log(torch.tensor(8.0))), 8)
    assert torch.equal(a.projection, b.projection)
    first = a.projection.clone()
    x = torch.randn(10, 32)
    a.train()
    a(x)
    a(x)
    assert torch.equal(a.projection, first)
    a(x)
    assert not torch.equal(a.projection, first)
    a.eval()
    second = a.projection.clone()
    a(x)
    assert torch.equal(a.projection, second)


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operator produced."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_linear_kinds_never_build_an_n_by_n_tensor(kind):
    n = 3000
    layer = LinearTransformerLayer(16, 2, 32, kind, n_features=16)
    x = torch.randn(n, 16, requires_grad=True)
    with _LargestTensor() as probe:
        layer(x).sum().backward()
    if kind == "softmax":
        assert probe.largest >= n * n  # the probe sees the quadratic tensor when there is one
    else:
        assert probe.largest <= 64 * n


@pytest.mark.parametrize("norm_first", [False, True])
def test_layer_norm_placement(norm_first):
    torch.manual_seed(0)
    layer = LinearTransformerLayer(32, 8, 128, "flow", dropout=0.0, norm_first=norm_first).eval()
    x = 5 + 3 * torch.randn(2, 15, 32)
    y = layer(x)
    assert y.shape == x.shape
    per_token_mean = y.mean(-1).abs().max().item()
    if norm_first:
        assert per_token_mean > 1  # the residual stream keeps the input's offset
    else:
        assert per_token_mean < 1e-5  # post-norm ends with LayerNorm


def test_encoder_stack_trains_and_is_deterministic():
    def run():
        torch.manual_seed(0)
        enc = LinearTransformerEncoder(16, 2, 4, 64, "performer", dropout=0.1, seed=3)
        x = torch.randn(40, 16)
        opt = torch.optim.SGD(enc.parameters(), lr=0.1)
        losses = []
        for _ in range(8):
            loss = (enc(x) - x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    a, b = run(), run()
    assert a == b
    assert a[-1] < a[0]
    enc = LinearTransformerEncoder(16, 2, 4, 64, "performer", seed=3)
    assert not torch.equal(enc.layers[0].attn.projection, enc.layers[1].attn.projection)


def test_bad_kind_and_dims():
    with pytest.raises(ValueError, match="attention kind"):
        MultiheadLinearAttention(16, 4, "cosformer")
    with pytest.raises(ValueError, match="divisible"):
        MultiheadLinearAttention(18, 4)
