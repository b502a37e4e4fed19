"""MuSe-GNN training stage: config, graph loading, outputs, determinism, resume after an interruption, the
improved-mode switches, and loss decrease on a small set of real graphs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from genegraph.device import resolve_device
from genegraph.errors import DataError
from genegraph.models.embeddings import embedding
from genegraph.models.musegnn import train as train_mod
from genegraph.models.musegnn.train import TrainSettings, load_graph, train_musegnn, train_settings

sys.path.insert(0, str(Path(__file__).parent))
from graph_fixtures import graph_from_counts, synthetic_graph, write_graph  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: A tiny but complete panel: two scRNA graphs sharing a key, a CITE graph, a 9-gene spatial graph.
PANEL = [
    ("sc_a", "scrna", "blood", range(0, 40), 30),
    ("sc_b", "scrna", "blood", range(10, 50), 25),
    ("cite_a", "cite", "blood", range(5, 45), 20),
    ("spot_a", "spatial", "brain", range(30, 39), 60),
]


@pytest.fixture(scope="module")
def panel(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("graphs")
    return [write_graph(folder / f"{d}.h5ad",
                        synthetic_graph(d, [f"G{k}" for k in genes], cells, modality=m, tissue=t, seed=s))
            for s, (d, m, t, genes, cells) in enumerate(PANEL)]


def _cfg(**kw) -> dict:
    cfg = {"epochs": 4, "checkpoint_every": 2, "loss": {"n_diff": 8}}
    for key, value in kw.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg


def _train(paths, out: Path, seed: int = 0, **kw) -> dict:
    return train_musegnn(paths, _cfg(**kw), out, seed=seed, device="cpu", threads=1)


def _embeddings(result: dict) -> np.ndarray:
    return embedding(ad.read_h5ad(result["embeddings"]))


# ---------------------------------------------------------------------------------------------------------
# configuration and inputs


def test_config_defaults_are_the_faithful_settings():
    cfg = train_settings()
    assert isinstance(cfg, TrainSettings)
    assert (cfg.epochs, cfg.partner, cfg.amp, cfg.adjacency) == (2000, "uniform", "off", "coexpr")
    assert (cfg.model.dim, cfg.model.heads, cfg.model.share_key, cfg.model.decoder) == \
        (32, (4, 2, 1), "technique_tissue", "row_mlp")
    assert cfg.model.cell_sketch is None and cfg.model.edge_types == ()
    lo = cfg.loss
    assert (lo.lambda_c, lo.tau, lo.n_diff, lo.sim_reduction, lo.replace, lo.resample_pos) == \
        (0.01, 0.07, 100, "mean", True, False)
    assert (lo.bce, lo.bce_include_diag) == ("dense", True)
    assert (cfg.optim.lr_enc, cfg.optim.lr_dec) == (1e-4, 1e-3)


@pytest.mark.parametrize("bad,match", [
    ({"epochs": 2.5}, "train.epochs: 2.5 is not of type 'integer'"),
    ({"epoch": 3}, "'epoch' was unexpected"),
    ({"model": {"share_key": "tissue"}}, "train.model.share_key"),
    ({"model": {"heads": [4, 2]}}, "train.model.heads"),
    ({"loss": {"replace": "yes"}}, "train.loss.replace"),
    ({"loss": {"tau": 0}}, "train.loss.tau"),
    ({"model": {"edge_types": ["coexpr"]}}, "edge_types"),
    ({"same_key_frac": 1.5}, "train.same_key_frac"),
    ({"loss": 3}, "train.loss: 3 is not of type 'object'"),
    ({"amp": False}, "YAML reads unquoted"),
    ({"seeds": [0]}, "'seeds' was unexpected"),  # run-level keys are passed apart
])
def test_config_errors_name_the_key(bad, match):
    with pytest.raises(DataError, match=match):
        train_settings(bad)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="CUDA is not available"):
            resolve_device("cuda")


def test_load_graph_checks_its_input(tmp_path, panel):
    cfg = train_settings()
    g = load_graph(panel[3], cfg, torch.device("cpu"))
    assert (g.dataset, g.share_key, g.n_genes, g.n_cells) == ("spot_a", "spatial_brain", 9, 60)
    assert g.target.dtype == torch.bool and g.inputs.dense
    a = ad.read_h5ad(panel[0])
    del a.varp["coexpr"]
    write_graph(tmp_path / "noadj.h5ad", a)
    with pytest.raises(DataError, match="coexpr"):
        load_graph(tmp_path / "noadj.h5ad", cfg, torch.device("cpu"))
    with pytest.raises(DataError, match="varp\\['coexpr_sign'\\] is missing"):
        load_graph(tmp_path / "noadj.h5ad", train_settings({"adjacency": "hallmark",
                                                            "model": {"edge_types": ["string", "coexpr_sign"]}}),
                   torch.device("cpu"))
    a = ad.read_h5ad(panel[0])
    a.layers["residuals"][0, 0] = np.nan
    write_graph(tmp_path / "nan.h5ad", a)
    with pytest.raises(DataError, match="NaN"):
        load_graph(tmp_path / "nan.h5ad", cfg, torch.device("cpu"))
    a = ad.read_h5ad(panel[0])
    a.uns["dataset"] = {"id": "x"}
    write_graph(tmp_path / "nometa.h5ad", a)
    with pytest.raises(DataError, match="modality"):
        load_graph(tmp_path / "nometa.h5ad", cfg, torch.device("cpu"))


def test_repeated_dataset_ids_are_refused(tmp_path, panel):
    with pytest.raises(DataError, match="repeat"):
        _train([panel[0], panel[0]], tmp_path)


# ---------------------------------------------------------------------------------------------------------
# outputs, determinism, resume


def test_training_writes_embeddings_losses_and_metadata(tmp_path, panel):
    res = _train(panel, tmp_path / "out")
    emb = ad.read_h5ad(res["embeddings"])
    sizes = [len(genes) for _, _, _, genes, _ in PANEL]
    assert embedding(emb).shape == (sum(sizes), 32) and np.isfinite(embedding(emb)).all()
    assert emb.uns["method"] == "musegnn" and emb.uns["seed"] == 0
    assert list(emb.obs.columns[:8]) == ["gene", "dataset", "group", "share_key", "modality", "tissue", "species",
                                         "in_all_datasets"]
    assert emb.obs["dataset"].value_counts().to_dict() == {d: n for (d, *_), n in zip(PANEL, sizes)}
    assert set(emb.obs["share_key"]) == {"scrna_blood", "cite_blood", "spatial_brain"}
    common = set.intersection(*({f"G{k}" for k in genes} for _, _, _, genes, _ in PANEL))
    assert set(emb.obs.loc[emb.obs["in_all_datasets"], "gene"]) == common == {f"G{k}" for k in range(30, 39)}
    assert emb.obs_names.is_unique

    losses = pd.read_csv(res["losses"], sep="\t")
    assert list(losses.columns) == ["epoch", "bce", "sim", "infonce", "total", "seconds"]
    assert losses["epoch"].tolist() == [1, 2, 3, 4]
    assert np.isfinite(losses[["bce", "sim", "infonce", "total"]].to_numpy()).all()
    assert (losses["sim"] <= 0).all() and (losses["infonce"] > 0).all()
    np.testing.assert_allclose(losses["total"], losses["bce"] + losses["sim"] + 0.01 * losses["infonce"],
                               rtol=1e-5, atol=1e-6)

    run = json.loads(Path(res["run"]).read_text())
    assert run["seed"] == 0 and run["device"] == "cpu" and run["epochs"] == 4
    assert run["n_parameters"] == run["n_parameters_formula"]
    assert {"torch", "torch_geometric", "numpy", "genegraph"} <= set(run["versions"])
    assert run["wall_time_s"] > 0 and run["final_losses"]["bce"] == pytest.approx(losses["bce"].iloc[-1])
    assert [g["dataset"] for g in run["graphs"]] == [p[0] for p in PANEL]
    assert Path(res["checkpoint"]).exists()
    assert torch.get_num_threads() >= 1


def test_same_seed_same_embeddings_other_seed_other_embeddings(tmp_path, panel):
    a = _embeddings(_train(panel, tmp_path / "a"))
    b = _embeddings(_train(panel, tmp_path / "b"))
    c = _embeddings(_train(panel, tmp_path / "c", seed=1))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_resume_after_interruption_gives_the_uninterrupted_result(tmp_path, panel, monkeypatch):
    full = _train(panel, tmp_path / "full", epochs=7, checkpoint_every=2)
    real_epoch = train_mod.run_epoch
    calls = {"n": 0}

    def crash_in_epoch_6(state):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("killed")
        return real_epoch(state)

    monkeypatch.setattr(train_mod, "run_epoch", crash_in_epoch_6)
    with pytest.raises(KeyboardInterrupt):
        _train(panel, tmp_path / "cut", epochs=7, checkpoint_every=2)
    assert not (tmp_path / "cut" / "embeddings.h5ad").exists()
    assert torch.load(tmp_path / "cut" / "checkpoint" / "checkpoint.pt", weights_only=True)["epoch"] == 4
    monkeypatch.setattr(train_mod, "run_epoch", real_epoch)
    resumed = _train(panel, tmp_path / "cut", epochs=7, checkpoint_every=2)
    assert resumed["resumed_from_epoch"] == 4
    assert np.array_equal(_embeddings(full), _embeddings(resumed))
    cols = ["epoch", "bce", "sim", "infonce", "total"]
    pd.testing.assert_frame_equal(pd.read_csv(full["losses"], sep="\t")[cols],
                                  pd.read_csv(resumed["losses"], sep="\t")[cols])
    # extending a finished run continues from its last checkpoint
    longer = _train(panel, tmp_path / "cut", epochs=9, checkpoint_every=2)
    assert longer["resumed_from_epoch"] == 7
    # a checkpoint of another configuration is ignored, not resumed
    other = _train(panel, tmp_path / "cut", epochs=9, checkpoint_every=2, seed=5)
    assert other["resumed_from_epoch"] == 0


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path, panel):
    """A real SIGKILL of a training process after its first checkpoint; the rerun resumes and matches."""
    epochs, panel = 150, panel[:2]
    script = textwrap.dedent(f"""
        import sys
        from genegraph.models.musegnn.train import train_musegnn
        train_musegnn({[str(p) for p in panel]!r}, {{"epochs": {epochs}, "checkpoint_every": 5,
                      "loss": {{"n_diff": 8}}}}, sys.argv[1], device="cpu", threads=1)
    """)
    ckpt = tmp_path / "killed" / "checkpoint" / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "killed")], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert ckpt.exists(), "the training process wrote no checkpoint"
    assert not (tmp_path / "killed" / "embeddings.h5ad").exists(), "the run finished before it was killed"
    resumed = train_musegnn(panel, {"epochs": epochs, "checkpoint_every": 5, "loss": {"n_diff": 8}},
                            tmp_path / "killed", device="cpu", threads=1)
    assert 0 < resumed["resumed_from_epoch"] < epochs
    assert not list((tmp_path / "killed" / "checkpoint").glob(".*tmp*"))  # no half-written checkpoint left
    full = train_musegnn(panel, {"epochs": epochs, "checkpoint_every": 1000, "loss": {"n_diff": 8}},
                         tmp_path / "full", device="cpu", threads=1)
    assert np.array_equal(_embeddings(full), _embeddings(resumed))


# ---------------------------------------------------------------------------------------------------------
# improved-mode switches


def test_all_improved_options_together(tmp_path, panel):
    res = _train(panel, tmp_path / "imp", partner="stratified", model={
        "decoder": "pairwise", "cell_sketch": 16, "edge_types": ["string", "hallmark"], "attn_impl": "pyg",
        "share_key": "technique"}, loss={
        "bce": "sampled", "bce_include_diag": False, "max_pos": 200, "neg_ratio": 2.0, "resample_pos": True,
        "replace": False, "sim_reduction": "sum"})
    run = json.loads(Path(res["run"]).read_text())
    assert run["share_keys"] == ["cite", "scrna", "spatial"]
    assert [g["n_features"] for g in run["graphs"]] == [16, 16, 16, 9]  # K = min(16, genes, cells)
    assert run["n_parameters"] == run["n_parameters_formula"]
    losses = pd.read_csv(res["losses"], sep="\t")
    assert np.isfinite(losses[["bce", "sim", "infonce", "total"]].to_numpy()).all()
    assert losses["sim"].abs().max() > 1.0  # a sum over common genes: a mean of λ·cos cannot exceed 1
    np.testing.assert_allclose(losses["total"], losses["bce"] + losses["sim"] + 0.01 * losses["infonce"],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("share_key,n_blocks", [("global", 1), ("none", 4), ("technique_tissue", 3)])
def test_share_keys(tmp_path, panel, share_key, n_blocks):
    res = _train(panel, tmp_path / share_key, epochs=1, model={"share_key": share_key})
    assert len(json.loads(Path(res["run"]).read_text())["share_keys"]) == n_blocks


def test_dense_and_pyg_attention_train_alike(tmp_path, panel):
    a = _embeddings(_train(panel, tmp_path / "d", epochs=2, model={"attn_impl": "dense"}))
    b = _embeddings(_train(panel, tmp_path / "p", epochs=2, model={"attn_impl": "pyg"}))
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_bf16_autocast_stays_close_to_float32(tmp_path, panel):
    a = _embeddings(_train(panel, tmp_path / "fp32", epochs=2))
    b = _embeddings(_train(panel, tmp_path / "bf16", epochs=2, amp="bf16"))
    assert np.isfinite(b).all() and not np.array_equal(a, b)
    np.testing.assert_allclose(a, b, atol=0.1 * np.abs(a).max())


def test_a_single_graph_trains_on_bce_alone(tmp_path, panel):
    res = _train(panel[:1], tmp_path / "one", epochs=2)
    losses = pd.read_csv(res["losses"], sep="\t")
    assert (losses["sim"] == 0).all() and (losses["infonce"] == 0).all()


# ---------------------------------------------------------------------------------------------------------
# real data


@pytest.fixture(scope="module")
def real_graphs(shared_data, tmp_path_factory) -> list[Path]:
    """Three real PBMC graphs of 150 genes: two halves of 10x frozen PBMC donor A, and the Zheng sorted set."""
    folder = tmp_path_factory.mktemp("real")
    pbmc = ad.read_h5ad(shared_data / "scrna_pbmc_10x_mudan" / "pbmcA_frozen_donorA_counts.h5ad")
    zheng = ad.read_h5ad(shared_data / "scrna_pbmc_10x_mudan" / "zheng2017_sorted_pbmc_reference_counts.h5ad")
    parts = [("pbmcA_1", pbmc[:400]), ("pbmcA_2", pbmc[400:800]), ("zheng", zheng[::5])]
    return [write_graph(folder / f"{name}.h5ad",
                        graph_from_counts(sp.csr_matrix(a.X), a.var_names, name, n_genes=150, rho=0.1, seed=k))
            for k, (name, a) in enumerate(parts)]


def test_losses_decrease_on_real_graphs(tmp_path, real_graphs):
    res = train_musegnn(real_graphs, {"epochs": 40, "checkpoint_every": 40}, tmp_path, device="cpu", threads=1)
    losses = pd.read_csv(res["losses"], sep="\t")
    first, last = losses.iloc[:3].mean(), losses.iloc[-3:].mean()
    assert last["bce"] < first["bce"] - 0.1, (first["bce"], last["bce"])
    assert last["sim"] < first["sim"] - 0.05, (first["sim"], last["sim"])
    assert last["total"] < first["total"] - 0.2, (first["total"], last["total"])
    emb = ad.read_h5ad(res["embeddings"])
    assert emb.obs["in_all_datasets"].any() and not emb.obs["in_all_datasets"].all()


def test_a_truncated_checkpoint_is_not_resumed(tmp_path, panel, caplog):
    first = _train(panel, tmp_path / "run", epochs=4, checkpoint_every=2)
    ckpt = Path(first["checkpoint"])
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    again = _train(panel, tmp_path / "run", epochs=6, checkpoint_every=2)
    assert again["resumed_from_epoch"] == 0 and "ignoring unreadable checkpoint" in caplog.text
    fresh = _train(panel, tmp_path / "fresh", epochs=6, checkpoint_every=2)
    assert np.array_equal(_embeddings(fresh), _embeddings(again))


def test_graphs_sharing_no_gene_skip_the_contrastive_terms(tmp_path):
    """The authors skip the similarity and InfoNCE terms for a partner without a common gene; ``contrast``
    runs InfoNCE anyway."""
    folder = tmp_path / "disjoint"
    paths = [write_graph(folder / f"{d}.h5ad", synthetic_graph(d, [f"{d}_{k}" for k in range(20)], 12, seed=s))
             for s, d in enumerate(["a", "b"])]
    skipped = pd.read_csv(_train(paths, tmp_path / "skip", epochs=2)["losses"], sep="\t")
    assert (skipped["sim"] == 0).all() and (skipped["infonce"] == 0).all()
    contrasted = pd.read_csv(_train(paths, tmp_path / "contrast", epochs=2, loss={"disjoint_pairs": "contrast"})
                             ["losses"], sep="\t")
    assert (contrasted["infonce"] > 0).all()
