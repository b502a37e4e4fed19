"""The MuSe-GNN model (spec §2.2-2.3): a dataset-specific first layer L_i, shared blocks D_m keyed by a
share key, and per-dataset decoders.

Layers are PyTorch Geometric's ``TransformerConv`` and ``GraphNorm``. A ``TransformerConv`` is run either
by PyG's scatter message passing (sparse graphs) or as dense masked multi-head attention over the N x N
adjacency (:func:`dense_transformer_conv`; one fused kernel instead of ~800 k edge gathers on dense
co-expression graphs). Both use the same module and weights and give the same result.

Shapes: x (N, C) node features (C = cells, or the K sketch dims); z (N, dim) embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GraphNorm, TransformerConv

from genegraph.stats.svd import principal_scores

#: Graphs up to this many genes use dense attention when ``attn_impl="auto"``.
DENSE_MAX_GENES = 4096


@dataclass
class GraphInput:
    """Message-passing structure of one graph, on the model's device.

    Dense form: ``attn_bias`` (N, N) float32 additive attention mask indexed [target, source], 0 on edges
    and -inf elsewhere (an isolated node gets a 0 self entry so that its softmax row is defined; an additive
    mask is faster than a boolean one in CPU attention), ``dense_attr`` (d_e, N, N) edge features
    [.., target, source] or None, ``isolated`` (N,) bool or None (nodes without neighbours; their message is
    set to 0, as PyG's sum over no edges gives). Sparse form: ``edge_index`` (2, E) [source; target],
    ``edge_attr`` (E, d_e).
    """

    attn_bias: Tensor | None = None
    dense_attr: Tensor | None = None
    isolated: Tensor | None = None
    edge_index: Tensor | None = None
    edge_attr: Tensor | None = None

    @property
    def dense(self) -> bool:
        return self.attn_bias is not None


def graph_input(
    adj: sp.csr_matrix, attrs: Sequence[sp.csr_matrix] = (), impl: str = "auto",
    device: torch.device | str = "cpu",
) -> GraphInput:
    """Build the :class:`GraphInput` of an (N, N) adjacency (entry [s, t] = edge s -> t) with optional
    per-edge-type weight matrices ``attrs`` (same shape; read on the adjacency's edges).

    ``impl``: "dense", "pyg" or "auto" (dense up to :data:`DENSE_MAX_GENES` genes).
    """
    n = adj.shape[0]
    if impl == "auto":
        impl = "dense" if n <= DENSE_MAX_GENES else "pyg"
    coo = adj.tocoo()
    if impl == "pyg":
        edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)).to(device)
        edge_attr = None
        if attrs:
            cols = [np.asarray(a[coo.row, coo.col]).ravel() for a in attrs]
            edge_attr = torch.from_numpy(np.stack(cols, 1).astype(np.float32)).to(device)
        return GraphInput(edge_index=edge_index, edge_attr=edge_attr)
    if impl != "dense":
        raise ValueError(f"attn_impl must be 'dense', 'pyg' or 'auto', not {impl!r}")
    mask = np.zeros((n, n), dtype=bool)
    mask[coo.col, coo.row] = True
    isolated = ~mask.any(axis=1)
    mask[np.flatnonzero(isolated), np.flatnonzero(isolated)] = True
    dense_attr = None
    if attrs:
        dense_attr = torch.zeros((len(attrs), n, n), dtype=torch.float32)
        for t, a in enumerate(attrs):
            vals = np.asarray(a[coo.row, coo.col]).ravel().astype(np.float32)
            dense_attr[t, coo.col, coo.row] = torch.from_numpy(vals)
        dense_attr = dense_attr.to(device)
    bias = torch.zeros((n, n), dtype=torch.float32).masked_fill_(~torch.from_numpy(mask), float("-inf"))
    return GraphInput(
        attn_bias=bias.to(device),
        dense_attr=dense_attr,
        isolated=torch.from_numpy(isolated).to(device) if isolated.any() else None,
    )


def dense_transformer_conv(conv: TransformerConv, x: Tensor, g: GraphInput) -> Tensor:
    """PyG ``TransformerConv`` (no beta, no dropout) as dense masked attention. x: (N, in) -> (N, H·C).

    Per head h: α = softmax_j over neighbours of q_i·(k_j + e_ij)/√C; message Σ_j α_ij (v_j + e_ij),
    e_ij = W_e a_ij; concatenated (or averaged when ``concat=False``) plus the skip W_s x_i.
    """
    if conv.beta or conv.dropout:
        raise ValueError("dense_transformer_conv supports beta=False, dropout=0 only")
    n, heads, c = x.shape[0], conv.heads, conv.out_channels
    q = conv.lin_query(x).view(n, heads, c).transpose(0, 1)
    k = conv.lin_key(x).view(n, heads, c).transpose(0, 1)
    v = conv.lin_value(x).view(n, heads, c).transpose(0, 1)
    bias = g.attn_bias.to(q.dtype)
    if conv.lin_edge is None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    else:
        w = conv.lin_edge.weight.view(heads, c, -1).to(q.dtype)  # (H, C, d_e)
        attr = g.dense_attr.to(q.dtype)
        scores = q @ k.transpose(1, 2) + torch.einsum("hnt,tnm->hnm", q @ w, attr)
        alpha = (scores / math.sqrt(c) + bias).softmax(dim=-1)
        out = alpha @ v + torch.einsum("hnm,tnm->hnt", alpha, attr) @ w.transpose(1, 2)
    if g.isolated is not None:  # empty-row guard: PyG sums over no edges -> 0
        out = out.masked_fill(g.isolated.view(1, n, 1), 0.0)
    out = out.transpose(0, 1).reshape(n, heads * c) if conv.concat else out.mean(dim=0)
    return out + conv.lin_skip(x) if conv.root_weight else out


def transformer_conv(conv: TransformerConv, x: Tensor, g: GraphInput) -> Tensor:
    """Run ``conv`` on ``x`` over graph ``g``: dense attention or PyG message passing."""
    if g.dense:
        return dense_transformer_conv(conv, x, g)
    return conv(x, g.edge_index, g.edge_attr)


class DatasetEncoder(nn.Module):
    """L_i: TransformerConv(C_i -> dim, heads) -> GraphNorm(heads·dim) -> Mish. (N, C_i) -> (N, heads·dim)."""

    def __init__(self, in_dim: int, dim: int, heads: int, edge_dim: int | None = None):
        super().__init__()
        self.conv = TransformerConv(in_dim, dim, heads=heads, edge_dim=edge_dim)
        self.norm = GraphNorm(heads * dim)

    def forward(self, x: Tensor, g: GraphInput, amp: torch.dtype | None = None) -> Tensor:
        with torch.autocast(x.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            h = transformer_conv(self.conv, x, g)
        return F.mish(self.norm(h.float()))


class SharedEncoder(nn.Module):
    """D_m: a = Mish(GraphNorm(TC(h0·dim -> dim, h1)(h))); z = TC(h1·dim -> dim, h2, mean of heads)(a)
    + TC(h0·dim -> dim, 1)(h) (the code's learned "residual"). (N, h0·dim) -> (N, dim)."""

    def __init__(self, dim: int, heads: Sequence[int], edge_dim: int | None = None):
        super().__init__()
        h0, h1, h2 = heads
        self.conv1 = TransformerConv(h0 * dim, dim, heads=h1, edge_dim=edge_dim)
        self.norm = GraphNorm(h1 * dim)
        self.conv2 = TransformerConv(h1 * dim, dim, heads=h2, concat=False, edge_dim=edge_dim)
        self.residual = TransformerConv(h0 * dim, dim, heads=1, edge_dim=edge_dim)

    def forward(self, h: Tensor, g: GraphInput) -> Tensor:
        a = F.mish(self.norm(transformer_conv(self.conv1, h, g)))
        return transformer_conv(self.conv2, a, g) + transformer_conv(self.residual, h, g)


class RowMLPDecoder(nn.Module):
    """The authors' decoder: an MLP applied to each row of S = z zᵀ, Linear(N,N) -> Mish -> Linear(N,N)
    -> Mish -> Linear(N,N). Tied to the graph's N and gene order; 3(N² + N) parameters."""

    def __init__(self, n_genes: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(n_genes, n_genes), nn.Mish(), nn.Linear(n_genes, n_genes), nn.Mish(),
            nn.Linear(n_genes, n_genes),
        )

    def forward(self, z: Tensor) -> Tensor:
        """(N, d) -> (N, N) logits (not symmetric)."""
        return self.mlp(z @ z.T)

    def pair_logits(self, z: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        return self(z)[rows, cols]


class PairwiseDecoder(nn.Module):
    """Improved-mode decoder, N-agnostic and symmetric: logit(a, b) = MLP([z_a ⊙ z_b, |z_a - z_b|]),
    Linear(2·dim, hidden) -> Mish -> Linear(hidden, 1)."""

    #: Row block of the dense forward (bounds the (block, N, 2·dim) intermediate).
    BLOCK = 256

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.Mish(), nn.Linear(hidden, 1))

    def pair_logits(self, z: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """Logits of the (rows[e], cols[e]) pairs: (E,)."""
        a, b = z[rows], z[cols]
        return self.mlp(torch.cat([a * b, (a - b).abs()], dim=-1)).squeeze(-1)

    def forward(self, z: Tensor) -> Tensor:
        """(N, d) -> (N, N) logits of all pairs, computed in row blocks."""
        blocks = []
        for lo in range(0, z.shape[0], self.BLOCK):
            a, b = z[lo:lo + self.BLOCK, None, :], z[None, :, :]
            blocks.append(self.mlp(torch.cat([a * b, (a - b).abs()], dim=-1)).squeeze(-1))
        return torch.cat(blocks, dim=0)


class MuSeGNN(nn.Module):
    """All graphs' encoders and decoders. Graph i has first layer ``encoders[i]``, shared block
    ``shared[key_index[i]]`` (one per distinct share key, in sorted key order) and ``decoders[i]``."""

    def __init__(
        self, in_dims: Sequence[int], n_genes: Sequence[int], share_keys: Sequence[str], dim: int = 32,
        heads: Sequence[int] = (4, 2, 1), decoder: str = "row_mlp", decoder_hidden: int = 64,
        edge_dim: int | None = None,
    ):
        super().__init__()
        if not len(in_dims) == len(n_genes) == len(share_keys):
            raise ValueError("in_dims, n_genes and share_keys need one entry per graph")
        if len(heads) != 3:
            raise ValueError(f"heads needs 3 entries (L_i, D_m conv 1, D_m conv 2), got {list(heads)}")
        self.keys = sorted(set(share_keys))
        self.key_index = [self.keys.index(k) for k in share_keys]
        self.encoders = nn.ModuleList(DatasetEncoder(c, dim, heads[0], edge_dim) for c in in_dims)
        self.shared = nn.ModuleList(SharedEncoder(dim, heads, edge_dim) for _ in self.keys)
        if decoder == "row_mlp":
            self.decoders = nn.ModuleList(RowMLPDecoder(n) for n in n_genes)
        elif decoder == "pairwise":
            self.decoders = nn.ModuleList(PairwiseDecoder(dim, decoder_hidden) for _ in n_genes)
        else:
            raise ValueError(f"decoder must be 'row_mlp' or 'pairwise', not {decoder!r}")

    def encode(self, i: int, x: Tensor, g: GraphInput, amp: torch.dtype | None = None) -> Tensor:
        """Embeddings of graph i: (N_i, C_i) -> (N_i, dim), float32. ``amp``: autocast dtype of L_i."""
        return self.shared[self.key_index[i]](self.encoders[i](x, g, amp), g)

    def decode(self, i: int, z: Tensor, amp: torch.dtype | None = None) -> Tensor:
        """(N_i, N_i) edge logits of graph i, float32."""
        with torch.autocast(z.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            return self.decoders[i](z).float()

    def decode_pairs(self, i: int, z: Tensor, rows: Tensor, cols: Tensor, amp: torch.dtype | None = None) -> Tensor:
        """(E,) logits of the entries (rows, cols) of graph i, float32."""
        with torch.autocast(z.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            return self.decoders[i].pair_logits(z, rows, cols).float()

    def param_groups(self, lr_enc: float, lr_dec: float) -> list[dict]:
        """Adam groups: first layers and shared blocks at ``lr_enc``, decoders at ``lr_dec`` (the code's
        three optimisers; Adam keeps per-parameter state, so one optimiser with groups is identical)."""
        return [
            {"params": list(self.encoders.parameters()), "lr": lr_enc},
            {"params": list(self.shared.parameters()), "lr": lr_enc},
            {"params": list(self.decoders.parameters()), "lr": lr_dec},
        ]


def transformer_conv_parameters(in_dim: int, out: int, heads: int, concat: bool = True,
                                edge_dim: int | None = None) -> int:
    """Parameters of PyG TransformerConv(in, out, heads): q, k, v (+ skip) with bias, (+ edge, no bias)."""
    hc = heads * out
    skip = in_dim * hc + hc if concat else in_dim * out + out
    return 3 * (in_dim * hc + hc) + skip + (edge_dim or 0) * hc


def musegnn_parameter_count(
    in_dims: Sequence[int], n_genes: Sequence[int], n_keys: int, dim: int = 32,
    heads: Sequence[int] = (4, 2, 1), decoder: str = "row_mlp", decoder_hidden: int = 64,
    edge_dim: int | None = None,
) -> int:
    """Closed-form parameter count (spec §2.2: 512·C_i + 896 per first layer, 58,048 per shared block,
    3(N² + N) per row-MLP decoder at the defaults)."""
    h0, h1, h2 = heads
    first = sum(transformer_conv_parameters(c, dim, h0, True, edge_dim) + 3 * h0 * dim for c in in_dims)
    block = (transformer_conv_parameters(h0 * dim, dim, h1, True, edge_dim) + 3 * h1 * dim
             + transformer_conv_parameters(h1 * dim, dim, h2, False, edge_dim)
             + transformer_conv_parameters(h0 * dim, dim, 1, True, edge_dim))
    if decoder == "row_mlp":
        dec = sum(3 * (n * n + n) for n in n_genes)
    else:
        dec = len(n_genes) * (2 * dim * decoder_hidden + decoder_hidden + decoder_hidden + 1)
    return first + n_keys * block + dec


def cell_sketch(x: Tensor, k: int) -> Tensor:
    """Truncated-SVD sketch of the residual matrix: (N, C) -> (N, min(k, N, C)) = U_k Σ_k = x V_k, uncentred,
    each component's sign fixed (:func:`genegraph.stats.svd.principal_scores`) so the sketch is reproducible."""
    k = min(k, x.shape[0], x.shape[1])
    scores = principal_scores(x.detach().double().cpu().numpy(), k, center=False, gram="rows")
    return torch.from_numpy(scores).to(device=x.device, dtype=x.dtype)
