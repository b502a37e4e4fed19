"""Multi-head attention over a token sequence, linear in its length: FAVOR+ and flow attention.

Three attention kernels share one interface, ``attention(q, k, v, key_padding_mask)`` on per-head tensors of
shape (..., n, d_head) (the leading dims are usually (batch, heads)):

* ``"performer"`` -- FAVOR+ (Choromanski et al. 2021): positive orthogonal random features phi with
  E[phi(q) . phi(k)] = exp(q . k / sqrt(d_head)), so softmax attention is approximated by
  phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1) in O(n m d) time and memory (m random features). The features are
  drawn from a seeded generator (block-orthogonal Gaussian rows, rescaled to chi-distributed norms), shared by
  all heads, and optionally redrawn every ``redraw_interval`` training forwards. Queries are stabilised by
  their own maximum, keys by the maximum over all keys (both cancel in the normalisation).
* ``"flow"`` -- flow attention (Flowformer, Wu et al. 2022; CellPLM's encoder): sigmoid kernel with flow
  conservation. Incoming flow I_i = phi(q_i) . sum_j phi(k_j), outgoing O_j = phi(k_j) . sum_i phi(q_i);
  the conserved flows decide a softmax *competition* among sources (scaled by n) and a sigmoid *allocation*
  at the sinks; out_i = sigmoid(I^_i) / I_i * phi(q_i) sum_j phi(k_j) v_j^T competition_j. O(n d^2).
* ``"softmax"`` -- exact softmax attention softmax(q k^T / sqrt(d_head)) v, O(n^2); the reference for tests
  and a baseline for benchmarks.

``key_padding_mask`` is boolean, True at padded positions (PyTorch's convention), broadcastable to
q.shape[:-1]. Padded keys get zero weight; outputs at padded queries are zero.

:class:`MultiheadLinearAttention` adds the q/k/v/output projections (no q/k/v bias, as the Performer
reference) and takes a sequence (n, dim) or a batch (b, n, dim); :class:`LinearTransformerLayer` is one
encoder layer (attention + GELU feed-forward, each with dropout and a residual; post-norm by default as in
SpaFormer, ``norm_first=True`` for pre-norm as in CellPLM); :class:`LinearTransformerEncoder` stacks them
(no final norm: models add their own).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ATTENTION_KINDS = ("performer", "flow", "softmax")

#: Added to every FAVOR+ feature (as performer-pytorch): keeps the normaliser away from 0.
FAVOR_EPS = 1e-4
#: Added to the flows (as Flowformer).
FLOW_EPS = 1e-6


def _valid(key_padding_mask: Tensor | None, like: Tensor) -> Tensor | None:
    """(..., n) float 1 at real tokens, 0 at padding, broadcast to like.shape[:-1]; None without a mask."""
    if key_padding_mask is None:
        return None
    return (~key_padding_mask).to(like.dtype).expand(like.shape[:-1])


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
    """Exact scaled dot-product attention; q, k, v (..., n, d_head) -> (..., n, d_head). Builds (..., n, n)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    valid = _valid(key_padding_mask, q)
    if valid is not None:
        scores = scores.masked_fill(valid[..., None, :] == 0, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return out if valid is None else out * valid[..., None]


def default_n_features(d_head: int) -> int:
    """Number of FAVOR+ random features performer-pytorch uses by default: int(d ln d)."""
    return max(1, int(d_head * math.log(d_head)))


def orthogonal_features(n_features: int, d_head: int, generator: torch.Generator) -> Tensor:
    """(n_features, d_head) float32 CPU: rows orthogonal within blocks of d_head, norms chi(d_head)-distributed
    (the law of a Gaussian vector's norm), so each row is marginally N(0, I)."""
    blocks = []
    for start in range(0, n_features, d_head):
        gauss = torch.randn(d_head, d_head, generator=generator)
        q, _ = torch.linalg.qr(gauss)
        blocks.append(q.T[: min(d_head, n_features - start)])
    rows = torch.cat(blocks, 0)
    norms = torch.randn(n_features, d_head, generator=generator).norm(dim=1)
    return rows * norms[:, None]


def favor_features(x: Tensor, projection: Tensor, is_query: bool, valid: Tensor | None = None) -> Tensor:
    """Positive random features phi(x) (..., n, m) of x (..., n, d_head) for the softmax kernel.

    phi(x) = m^-1/2 (exp(w . x' - |x'|^2 / 2 - c) + eps) with x' = x d^-1/4; c is the row maximum for
    queries, the maximum over all (real) keys for keys. Padded keys (valid == 0) get phi = 0."""
    m = projection.shape[0]
    scaled = x * x.shape[-1] ** -0.25
    proj = scaled @ projection.T
    sq = (scaled**2).sum(-1, keepdim=True) / 2
    if is_query:
        shift = proj.amax(dim=-1, keepdim=True)
    else:
        masked = proj if valid is None else proj.masked_fill(valid[..., None] == 0, float("-inf"))
        shift = masked.amax(dim=(-1, -2), keepdim=True)
    feats = (torch.exp(proj - sq - shift.detach()) + FAVOR_EPS) * m**-0.5
    return feats if valid is None else feats * valid[..., None]


def favor_attention(
    q: Tensor, k: Tensor, v: Tensor, projection: Tensor, key_padding_mask: Tensor | None = None
) -> Tensor:
    """FAVOR+ softmax-kernel attention; q, k, v (..., n, d_head), projection (m, d_head) -> (..., n, d_head)."""
    valid = _valid(key_padding_mask, q)
    qf = favor_features(q, projection, True)
    kf = favor_features(k, projection, False, valid)
    context = kf.transpose(-1, -2) @ v
    norm = qf @ kf.sum(-2)[..., None]
    out = (qf @ context) / norm
    return out if valid is None else out * valid[..., None]


def flow_attention(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
    """Flow attention (sigmoid kernel, flow conservation); q, k, v (..., n, d_head) -> (..., n, d_head)."""
    valid = _valid(key_padding_mask, q)
    qs, ks = torch.sigmoid(q), torch.sigmoid(k)
    if valid is None:
        n = torch.full(q.shape[:-2] + (1,), float(q.shape[-2]), dtype=q.dtype, device=q.device)
    else:
        qs, ks = qs * valid[..., None], ks * valid[..., None]
        n = valid.sum(-1, keepdim=True)
    eps = FLOW_EPS
    inv_in = 1.0 / ((qs + eps) @ (ks.sum(-2) + eps)[..., None]).squeeze(-1)
    inv_out = 1.0 / ((ks + eps) @ (qs.sum(-2) + eps)[..., None]).squeeze(-1)
    sink = ((qs + eps) @ ((ks * inv_out[..., None]).sum(-2) + eps)[..., None]).squeeze(-1)
    source = ((ks + eps) @ ((qs * inv_in[..., None]).sum(-2) + eps)[..., None]).squeeze(-1)
    source = source.clamp(-1.0, 1.0)
    if valid is not None:
        source = source.masked_fill(valid == 0, float("-inf"))
    allocation = torch.sigmoid(sink)
    competition = torch.softmax(source, dim=-1) * n
    context = ks.transpose(-1, -2) @ (v * competition[..., None])
    out = (qs @ context) * (inv_in * allocation)[..., None]
    return out if valid is None else out * valid[..., None]


def attention(q: Tensor, k: Tensor, v: Tensor, kind: str, projection: Tensor | None = None,
              key_padding_mask: Tensor | None = None) -> Tensor:
    """Dispatch to the kernel ``kind`` (``projection`` is needed for ``"performer"``)."""
    if kind == "performer":
        if projection is None:
            raise ValueError("performer attention needs the random-feature projection")
        return favor_attention(q, k, v, projection, key_padding_mask)
    if kind == "flow":
        return flow_attention(q, k, v, key_padding_mask)
    if kind == "softmax":
        return softmax_attention(q, k, v, key_padding_mask)
    raise ValueError(f"attention kind must be one of {', '.join(ATTENTION_KINDS)}, not {kind!r}")


class MultiheadLinearAttention(nn.Module):
    """Multi-head self-attention of kind ``"performer"``, ``"flow"`` or ``"softmax"``.

    x (n, dim) or (b, n, dim) -> same shape. ``n_features``: FAVOR+ random features per head (default
    int(d_head ln d_head)); ``seed``: the feature draw; ``redraw_interval``: redraw the features every this
    many forwards in training mode (0: never, as SpaFormer's use of performer-pytorch's SelfAttention).
    ``dropout`` acts on the output projection.
    """

    def __init__(
        self, dim: int, heads: int, kind: str = "performer", n_features: int | None = None,
        dropout: float = 0.0, seed: int = 0, redraw_interval: int = 0,
    ):
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention kind must be one of {', '.join(ATTENTION_KINDS)}, not {kind!r}")
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.kind, self.heads, self.d_head = kind, heads, dim // heads
        self.redraw_interval = redraw_interval
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self._generator = torch.Generator().manual_seed(seed)
        self._calls = 0
        m = default_n_features(self.d_head) if n_features is None else n_features
        features = orthogonal_features(m, self.d_head, self._generator) if kind == "performer" else torch.empty(0)
        self.register_buffer("projection", features)

    @torch.no_grad()
    def redraw_features(self) -> None:
        """Draw new FAVOR+ features from this module's generator (deterministic given the seed)."""
        if self.kind == "performer":
            m = self.projection.shape[0]
            self.projection.copy_(orthogonal_features(m, self.d_head, self._generator))

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        squeeze = x.dim() == 2
        if squeeze:
            x = x[None]
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.reshape(1, -1)
        if self.training and self.kind == "performer" and self.redraw_interval > 0:
            if self._calls and self._calls % self.redraw_interval == 0:
                self.redraw_features()
            self._calls += 1
        b, n, dim = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, self.d_head).permute(2, 0, 3, 1, 4)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, :]
        out = attention(q, k, v, self.kind, self.projection, mask)
        out = self.dropout(self.to_out(out.transpose(1, 2).reshape(b, n, dim)))
        return out[0] if squeeze else out


class LinearTransformerLayer(nn.Module):
    """Self-attention + feed-forward (Linear dim->ffn_dim, GELU, dropout, Linear ffn_dim->dim), each with
    dropout and a residual. Post-norm (``norm_first=False``): x = LN(x + f(x)); pre-norm: x = x + f(LN(x)).
    x (n, dim) or (b, n, dim) -> same shape."""

    def __init__(
        self, dim: int, heads: int, ffn_dim: int, kind: str = "performer", dropout: float = 0.0,
        norm_first: bool = False, n_features: int | None = None, seed: int = 0, redraw_interval: int = 0,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.attn = MultiheadLinearAttention(dim, heads, kind, n_features, dropout, seed, redraw_interval)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim), nn.Dropout(dropout)
        )
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            x = x + self.attn(self.norm1(x), key_padding_mask)
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.attn(x, key_padding_mask))
        return self.norm2(x + self.ffn(x))


class LinearTransformerEncoder(nn.Module):
    """``depth`` :class:`LinearTransformerLayer` s; layer i draws its FAVOR+ features with seed ``seed + i``."""

    def __init__(
        self, dim: int, depth: int, heads: int, ffn_dim: int, kind: str = "performer", dropout: float = 0.0,
        norm_first: bool = False, n_features: int | None = None, seed: int = 0, redraw_interval: int = 0,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            LinearTransformerLayer(dim, heads, ffn_dim, kind, dropout, norm_first, n_features, seed + i,
                                   redraw_interval)
            for i in range(depth)
        )

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return x


__all__ = [
    "ATTENTION_KINDS", "LinearTransformerEncoder", "LinearTransformerLayer", "MultiheadLinearAttention",
    "attention", "default_n_features", "favor_attention", "favor_features", "flow_attention",
    "orthogonal_features", "softmax_attention",
]
