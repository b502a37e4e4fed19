"""CellPLM model pieces: NB likelihood, GMVAE terms, masking, gene masks, embedder, determinism, checkpoints,
save/load in a fresh process, bad input."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import textwrap

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from genegraph.errors import DataError
from genegraph.models.cellplm import masking
from genegraph.models.cellplm.embedder import bag_of_genes, grid_positions, sinusoid_2d
from genegraph.models.cellplm.latent import GaussianMixtureLatent
from genegraph.models.cellplm.model import (
    build_model,
    load_model,
    parameter_count,
    save_model,
)
from genegraph.models.cellplm.objective import nb_nll, nb_nll_rows, reconstruction_loss
from genegraph.models.cellplm.pretrain import (
    CorruptCheckpoint,
    checkpoint_files,
    masked_loss,
    pretrain,
    read_checkpoint,
    write_checkpoint,
)
from genegraph.models.cellplm.sentences import (
    build_covariates,
    dataset_sentences,
    dense_counts,
    sentence_input,
)
from genegraph.models.cellplm.settings import cellplm_settings
from genegraph.models.cellplm.simulate import simulate_counts
from genegraph.models.cellplm.tasks import embed_cells
from genegraph.models.cellplm.vocab import (
    GeneVocabulary,
    build_vocabulary,
    gene_mask,
    measured_genes,
    read_vocabulary,
)

CPU = torch.device("cpu")
TINY = {"model": {"hidden": 16, "layers": 1, "heads": 2, "latent_dim": 8, "clusters": 3, "decoder_hidden": 16,
                  "nb_hidden": 8, "dropout": 0.1},
        "masking": {"max_cells": 64},
        "pretrain": {"epochs": 4, "lr": 0.002, "checkpoint_every": 2}}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def tiny(**over) -> object:
    values = {k: dict(v) for k, v in TINY.items()}
    for section, sub in over.items():
        values.setdefault(section, {}).update(sub)
    return cellplm_settings(values)


def panel() -> dict[str, ad.AnnData]:
    a = simulate_counts(60, 30, n_types=3, n_batches=2, seed=1)
    b = simulate_counts(40, 30, n_types=3, seed=2, spatial=True)
    b = b[:, 10:].copy()  # dataset b measures genes G10..G29 only
    return {"a": a, "b": b}


# --- negative binomial -------------------------------------------------------------------------------------


def test_nb_nll_matches_scipy_nbinom():
    x = np.array([0, 1, 3, 7, 20, 0, 150], dtype=np.float64)
    mu = np.array([0.5, 1.2, 2.0, 10.0, 18.0, 4.0, 100.0])
    theta = np.array([0.3, 1.0, 5.0, 2.0, 50.0, 0.7, 3.0])
    ref = -stats.nbinom.logpmf(x, theta, theta / (theta + mu))  # scipy: n = θ, p = θ / (θ + μ)
    got = nb_nll(torch.tensor(x), torch.tensor(mu), torch.tensor(theta)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-7)


def test_nb_row_sums_equal_dense_sums_with_and_without_weights():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 20, generator=g) < 0.3).double() * torch.randint(1, 30, (30, 20), generator=g).double()
    mu = torch.rand(30, 20, generator=g, dtype=torch.float64) * 5 + 0.01
    theta = torch.rand(20, generator=g, dtype=torch.float64) * 3 + 0.1
    w = (torch.rand(30, 20, generator=g) < 0.4).double()
    torch.testing.assert_close(nb_nll_rows(x, mu, theta), nb_nll(x, mu, theta).sum(1))
    torch.testing.assert_close(nb_nll_rows(x, mu, theta, w), (nb_nll(x * w, mu, theta) * w).sum(1))


def test_reconstruction_loss_by_hand_with_scipy():
    counts = np.array([[3.0, 0.0, 1.0], [0.0, 2.0, 2.0], [1.0, 1.0, 0.0]])
    mean = np.array([[1.0, 1.0, 2.0], [2.0, 1.0, 1.0], [1.0, 3.0, 1.0]])
    theta = np.array([2.0, 0.5, 4.0])
    mask = np.array([[True, False, True], [False, False, False], [False, True, False]])

    def nll(x, mu):  # summed NB NLL of a row, means rescaled to the row's total
        mu = mu / mu.sum() * x.sum()
        keep = mu > 0
        return -stats.nbinom.logpmf(x[keep], theta[keep], theta[keep] / (theta[keep] + mu[keep])).sum()

    expected = []
    for i in (0, 2):  # only cells with a masked entry count
        m = mask[i]
        full = nll(counts[i], mean[i])
        masked_x, masked_mu = counts[i][m], mean[i][m]
        mu_hat = masked_mu / masked_mu.sum() * masked_x.sum()
        dae = -stats.nbinom.logpmf(masked_x, theta[m], theta[m] / (theta[m] + mu_hat)).sum()
        expected.append(full + dae)
    loss, parts = reconstruction_loss(torch.tensor(counts), torch.tensor(mean), torch.tensor(theta),
                                      torch.tensor(mask), dae=True)
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-6)
    loss_nodae, _ = reconstruction_loss(torch.tensor(counts), torch.tensor(mean), torch.tensor(theta),
                                        torch.tensor(mask), dae=False)
    assert float(loss_nodae) == pytest.approx(np.mean([nll(counts[0], mean[0]), nll(counts[2], mean[2])]), rel=1e-6)
    no_mask, _ = reconstruction_loss(torch.tensor(counts), torch.tensor(mean), torch.tensor(theta), None, dae=True)
    assert float(no_mask) == pytest.approx(np.mean([nll(counts[i], mean[i]) for i in range(3)]), rel=1e-6)
    assert parts["nb_masked"] > 0


# --- GMVAE ------------------------------------------------------------------------------------------------


def _hand_latent(free_bits: float) -> GaussianMixtureLatent:
    """K = 2, d_z = 1, input dim 1: q(y) = (1/4, 3/4); eval: y = e_1, hidden 1, μ = 2.5, σ² = 1,
    prior μ_y = 1, σ²_y = 2."""
    lat = GaussianMixtureLatent(1, 1, 2, free_bits=free_bits, gauss_weight=5.0, cluster_weight=5.0, temperature=1.0)
    with torch.no_grad():
        for p in lat.parameters():
            p.zero_()
        lat.cluster_logits.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
        lat.z_hidden[0].weight.copy_(torch.tensor([[0.0, 0.0, 1.0]]))
        lat.z_mu.weight.fill_(2.0)
        lat.z_mu.bias.fill_(0.5)
        lat.z_var.bias.fill_(math.log(math.e - 1.0))  # softplus = 1
        lat.prior_mu.weight.copy_(torch.tensor([[0.0, 1.0]]))
        lat.prior_var.bias.fill_(math.log(math.e**2 - 1.0))  # softplus = 2
    return lat.eval()


def test_gmvae_terms_on_a_hand_example():
    lat = _hand_latent(free_bits=0.5)
    out = lat(torch.zeros(1, 1))
    kl = 0.25 * math.log(0.25) + 0.75 * math.log(0.75) + math.log(2.0)  # KL(q(y) || U(2)) = 0.1308
    gauss = 0.5 * math.log(2.0) + 1.5**2 / (2 * 2.0)  # log N(2.5; 2.5, 1) - log N(2.5; 1, 2) = 0.9091
    assert float(out.z.detach()) == pytest.approx(2.5)
    assert float(out.cluster_term.detach()) == pytest.approx(kl, rel=1e-6)
    assert float(out.gauss_term.detach()) == pytest.approx(gauss, rel=1e-5)
    assert float(out.loss.detach()) == pytest.approx(5 * gauss + 5 * 0.5, rel=1e-5)  # cluster term under the floor
    out.loss.backward()
    assert torch.all(lat.cluster_logits.bias.grad == 0)  # the free-bits floor stops its gradient

    lat0 = _hand_latent(free_bits=0.0)
    lat0(torch.zeros(1, 1)).loss.backward()
    assert torch.any(lat0.cluster_logits.bias.grad != 0)


def test_gmvae_training_mode_samples_soft_clusters():
    lat = GaussianMixtureLatent(4, 3, 5, free_bits=0.0, gauss_weight=1.0, cluster_weight=1.0, temperature=0.5).train()
    torch.manual_seed(0)
    a = lat(torch.randn(10, 4))
    torch.manual_seed(0)
    b = lat(torch.randn(10, 4))
    assert torch.equal(a.z, b.z)
    assert not torch.equal(a.z, a.mu)
    torch.testing.assert_close(a.cluster_prob.sum(1), torch.ones(10))


# --- masking ----------------------------------------------------------------------------------------------


def test_keep_cells_caps_then_drops():
    rng = np.random.default_rng(0)
    kept = masking.keep_cells(10_000, 4000, 0.3, rng)
    assert len(kept) == 2800 and len(np.unique(kept)) == 2800 and np.all(np.diff(kept) > 0)
    assert len(masking.keep_cells(5, 4000, 0.0, rng)) == 5
    assert len(masking.keep_cells(1, 4000, 0.9, rng)) == 1


def test_mask_statistics_cell_share_beta_mean_and_cap():
    rng = np.random.default_rng(1)
    rates = masking.gene_rates(20_000, True, 5.0, 13.0, 0.9, 0.25, rng)
    assert rates.mean() == pytest.approx(5 / 18, abs=0.004)  # Beta(5, 13) mean 0.278
    capped = masking.gene_rates(5000, True, 20.0, 1.0, 0.9, 0.25, rng)
    assert capped.max() == pytest.approx(0.9) and np.mean(capped == 0.9) > 0.5
    assert np.all(masking.gene_rates(10, False, 5, 13, 0.9, 0.25, rng) == 0.25)

    cells, mask = masking.bilevel_mask(400, 300, 0.75, True, 5.0, 13.0, 0.9, 0.25, rng)
    assert len(cells) == 300  # exactly 75 % of the cells
    others = np.setdiff1d(np.arange(400), cells)
    assert not mask[others].any()
    assert mask[cells].mean() == pytest.approx(5 / 18, abs=0.02)
    _, fixed = masking.mask_entries(400, 300, 0.5, 0.25, rng)
    assert fixed.any(1).sum() <= 200 and fixed.mean() * 2 == pytest.approx(0.25, abs=0.01)


def test_entry_keep_matches_dense_mask():
    m = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 0], [4, 5, 6]], dtype=np.float32))
    mask = np.array([[True, True, False], [False, True, False], [False, False, True]])
    keep = masking.entry_keep(m.indptr, m.indices, mask)
    assert keep.tolist() == [False, True, False, True, True, False]


# --- vocabulary and gene masks ----------------------------------------------------------------------------


def test_vocabulary_and_measured_genes(tmp_path):
    vocab = build_vocabulary([["B", "A"], ["C", "A"]])
    assert vocab.genes == ("A", "B", "C")
    cols, rows = measured_genes(["C", "X", "A"], vocab)
    assert cols.tolist() == [0, 2] and rows.tolist() == [2, 0]
    assert gene_mask(["C", "X", "A"], vocab).tolist() == [True, False, True]
    (tmp_path / "v.txt").write_text("A\nB\n\nC\n")
    assert read_vocabulary(tmp_path / "v.txt") == vocab
    (tmp_path / "v.json").write_text('{"gene_list": ["A", "B", "C"], "enc_hid": 1024}')
    assert read_vocabulary(tmp_path / "v.json") == vocab
    with pytest.raises(DataError, match="duplicate"):
        GeneVocabulary(("A", "A"))
    with pytest.raises(DataError, match="none of the 2 genes"):
        measured_genes(["X", "Y"], vocab)
    with pytest.raises(DataError, match="duplicate gene names"):
        measured_genes(["A", "A"], vocab)


def _loss_and_grads(adata: ad.AnnData, vocab: GeneVocabulary):
    s = tiny()
    cov = build_covariates({"d": adata})
    model = build_model(s.model, vocab, cov, seed=3).train()
    sent = dataset_sentences("d", adata, vocab, cov)[0]
    torch.manual_seed(0)
    loss, _ = masked_loss(model, sent, s.masking, True, np.random.default_rng(0), CPU)
    model.zero_grad()
    loss.backward()
    return float(loss.detach()), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_unmeasured_genes_never_contribute_to_the_loss():
    vocab = GeneVocabulary(tuple(f"G{j}" for j in range(30)))
    base = simulate_counts(40, 30, seed=5)
    measured = base[:, :20].copy()  # genes G20..G29 of the vocabulary are not measured
    extra = simulate_counts(40, 5, seed=6, gene_prefix="X")  # genes outside the vocabulary
    first = ad.concat([measured, extra], axis=1)
    changed_extra = extra.copy()
    changed_extra.X = sp.csr_matrix(changed_extra.X.toarray() * 7 + 3)
    second = ad.concat([measured, changed_extra], axis=1)
    loss1, g1 = _loss_and_grads(first, vocab)
    loss2, g2 = _loss_and_grads(second, vocab)
    assert loss1 == loss2
    assert g1.keys() == g2.keys() and all(torch.equal(g1[k], g2[k]) for k in g1)
    # vocabulary rows of unmeasured genes get no gradient anywhere
    for name in ("embedder.gene_embedding", "decoder.mean_out.weight", "decoder.log_disp"):
        assert torch.all(g1[name][20:] == 0), name
        assert torch.any(g1[name][:20] != 0), name


# --- embedder ---------------------------------------------------------------------------------------------


def test_bag_of_genes_forward_and_backward_match_dense():
    rng = np.random.default_rng(0)
    counts = sp.random(40, 25, density=0.3, random_state=1, format="csr", dtype=np.float32)
    counts.data = np.ceil(counts.data * 9)
    a = ad.AnnData(counts, var=pd.DataFrame(index=[f"G{j}" for j in range(25)]))
    vocab = build_vocabulary([a.var_names])
    sent = dataset_sentences("d", a, vocab)[0]
    keep = rng.random(counts.nnz) < 0.7
    inp = sentence_input(sent, CPU, keep=keep)
    w = torch.randn(25, 6, dtype=torch.float32, requires_grad=True)
    out = bag_of_genes(inp.x, inp.xt, w)
    (out**2).sum().backward()
    dense = counts.copy()
    dense.data = np.where(keep, np.log1p(dense.data), 0)
    d = torch.tensor(dense.toarray())
    w2 = w.detach().clone().requires_grad_(True)
    ref = d @ w2
    (ref**2).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w.grad, w2.grad)


def test_sinusoidal_pe_by_hand_and_missing_positions():
    pe = sinusoid_2d(torch.tensor([[0, 0], [1, 2]]), 4)  # dim 4: one frequency (1) per axis
    expected = torch.tensor([[0.0, 1.0, 0.0, 1.0], [math.sin(1), math.cos(1), math.sin(2), math.cos(2)]])
    torch.testing.assert_close(pe, expected)
    pos, present = grid_positions(torch.tensor([[0.0, 0.0], [2.0, 1.0], [float("nan"), 1.0], [1.0, 0.5]]), 11)
    assert present.tolist() == [True, True, False, True]
    assert pos[[0, 1, 3]].tolist() == [[0, 0], [10, 5], [5, 2]]  # scaled by the longer side (2)


# --- whole model: determinism, checkpoints, save/load ------------------------------------------------------


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pretraining_is_deterministic_and_learns():
    data = panel()
    vocab = build_vocabulary([a.var_names for a in data.values()])
    s = tiny(pretrain={"epochs": 12})
    r1 = pretrain(data, vocab, s)
    r2 = pretrain(data, vocab, s)
    assert _states_equal(r1.model, r2.model)
    assert r1.history["loss"].tolist() == r2.history["loss"].tolist()
    assert r1.history["nb"].iloc[-3:].mean() < r1.history["nb"].iloc[:3].mean()
    other = pretrain(data, vocab, tiny(pretrain={"epochs": 2, "seed": 1}))
    assert not torch.equal(other.model.embedder.gene_embedding, r1.model.embedder.gene_embedding)
    assert r1.model.covariates.batches == ("a/b0", "a/b1", "b/b0")


def test_checkpoints_resume_exactly_and_corrupt_ones_are_skipped(tmp_path, caplog):
    data = panel()
    vocab = build_vocabulary([a.var_names for a in data.values()])
    full = pretrain(data, vocab, tiny(pretrain={"epochs": 6}))
    ck = tmp_path / "ck"
    part = pretrain(data, vocab, tiny(pretrain={"epochs": 5}), checkpoint_dir=ck)
    assert [e for e, _ in checkpoint_files(ck)] == [5, 4]
    newest = checkpoint_files(ck)[0][1]
    newest.write_bytes(newest.read_bytes()[:-100])  # a job killed while writing, without the atomic rename
    caplog.set_level(logging.WARNING)
    resumed = pretrain(data, vocab, tiny(pretrain={"epochs": 6}), checkpoint_dir=ck)
    assert "truncated" in caplog.text
    assert resumed.resumed_from_epoch == 4
    assert _states_equal(resumed.model, full.model)
    assert resumed.history["loss"].tolist() == full.history["loss"].tolist()
    assert not _states_equal(part.model, full.model)

    for _, path in checkpoint_files(ck):
        path.write_bytes(b"garbage")
    caplog.clear()
    again = pretrain(data, vocab, tiny(pretrain={"epochs": 6}), checkpoint_dir=ck)
    assert again.resumed_from_epoch == 0 and "starting over" in caplog.text
    assert _states_equal(again.model, full.model)


def test_checkpoint_file_integrity(tmp_path):
    path = tmp_path / "epoch_000001.ckpt"
    write_checkpoint(path, {"w": torch.arange(5.0), "epoch": 1})
    assert torch.equal(read_checkpoint(path)["w"], torch.arange(5.0))
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpoint, match="checksum"):
        read_checkpoint(path)
    path.write_bytes(bytes(raw[:-10]))
    with pytest.raises(CorruptCheckpoint, match="truncated"):
        read_checkpoint(path)
    path.write_bytes(b"PK\x03\x04 a zip but not ours")
    with pytest.raises(CorruptCheckpoint, match="header"):
        read_checkpoint(path)


def test_saved_model_reproduces_embeddings_bit_for_bit_in_a_fresh_process(tmp_path):
    data = panel()
    vocab = build_vocabulary([a.var_names for a in data.values()])
    model = pretrain(data, vocab, tiny(pretrain={"epochs": 2})).model
    path = tmp_path / "model.pt"
    save_model(model, path)
    target = simulate_counts(30, 30, seed=9, spatial=True)
    target.write_h5ad(tmp_path / "target.h5ad")
    here = embed_cells(model, target, dataset="a")
    script = textwrap.dedent(f"""
        import anndata as ad, numpy as np, torch
        torch.set_num_threads(1)
        from genegraph.models.cellplm.model import load_model
        from genegraph.models.cellplm.tasks import embed_cells
        model = load_model({str(path)!r})
        np.save({str(tmp_path / 'z.npy')!r}, embed_cells(model, ad.read_h5ad({str(tmp_path / 'target.h5ad')!r}),
                dataset="a"))
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    there = np.load(tmp_path / "z.npy")
    assert there.dtype == here.dtype and np.array_equal(there, here)
    loaded = load_model(path)
    assert parameter_count(loaded) == parameter_count(model) and loaded.vocab == model.vocab
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(DataError, match="unreadable"):
        load_model(tmp_path / "bad.pt")


# --- bad input and settings -------------------------------------------------------------------------------


def test_bad_counts_and_settings_raise_data_errors():
    vocab = GeneVocabulary(("G0", "G1"))
    a = ad.AnnData(sp.csr_matrix(np.array([[1.5, 0.0], [1.0, 2.0]], dtype=np.float32)),
                   var=pd.DataFrame(index=["G0", "G1"]))
    with pytest.raises(DataError, match="non-integer"):
        dataset_sentences("d", a, vocab)
    a.X = sp.csr_matrix(np.array([[-1.0, 0.0], [1.0, 2.0]], dtype=np.float32))
    with pytest.raises(DataError, match="negative"):
        dataset_sentences("d", a, vocab)
    a.X = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 2.0]], dtype=np.float32))
    a.obsm["spatial"] = np.zeros((2, 1))
    with pytest.raises(DataError, match="n × 2"):
        dataset_sentences("d", a, vocab)
    with pytest.raises(DataError, match="heads"):
        cellplm_settings({"model": {"hidden": 10, "heads": 4}})
    with pytest.raises(DataError, match="norm_groups"):
        cellplm_settings({"model": {"hidden": 16, "heads": 2, "norm_groups": 3}})
    with pytest.raises(DataError, match="cellplm.model.attention"):
        cellplm_settings({"model": {"attention": "quadratic"}})


def test_schema_defaults_are_the_released_configuration():
    s = cellplm_settings()
    m = s.model
    assert (m.hidden, m.layers, m.heads, m.latent_dim, m.clusters, m.decoder_hidden, m.attention) == (
        1024, 4, 8, 512, 16, 1024, "flow")
    assert (m.free_bits, m.gauss_weight, m.cluster_weight) == (5.0, 5.0, 5.0)
    assert (s.masking.cell_rate, s.masking.beta_a, s.masking.beta_b, s.masking.max_cells) == (0.75, 5.0, 13.0, 4000)
    assert (s.pretrain.lr, s.pretrain.weight_decay) == (2e-4, 1e-8)


def test_decoder_uses_covariates_and_the_mean_row_for_unknown_ones():
    data = panel()
    vocab = build_vocabulary([a.var_names for a in data.values()])
    cov = build_covariates(data)
    model = build_model(tiny().model, vocab, cov, seed=0).eval()
    sent = dataset_sentences("a", data["a"], vocab, cov)[0]
    inp = sentence_input(sent, CPU)
    with torch.no_grad():
        z = torch.randn(inp.n_cells, 8)
        known = model.decoder(z, inp.genes, inp.batch, inp.dataset)[0]
        unknown = model.decoder(z, inp.genes, torch.full_like(inp.batch, -1), torch.full_like(inp.dataset, -1))[0]
        emb = model.decoder.batch_emb[0]
        mean_row = emb.norm(emb.act(emb.table.weight.mean(0, keepdim=True)))
        torch.testing.assert_close(emb(torch.tensor([-1])), mean_row)
    assert not torch.equal(known, unknown)
    assert dense_counts(sent.counts, CPU).shape == known.shape
