"""Gene-function prediction (spec §4.5-4.6): label readers, the cross-validated k-NN on features with a known
signal, the per-dataset and pooled scopes, and the real label files of ../shared/data (skipped when absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from genegraph.errors import DataError
from genegraph.evaluate.gene_embedding.function_prediction import (
    function_settings,
    knn_cv,
    pooled_features,
    predict_functions,
    read_dosage_labels,
    read_label_table,
    read_tf_list,
)
from genegraph.models.embeddings import EMBEDDING_KEY, embedding

sys.path.insert(0, str(Path(__file__).parent))
from graph_fixtures import synthetic_graph  # noqa: E402

SEEDS = (0, 1, 2)


def test_knn_cv_finds_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [120, 40])
    signal = rng.normal(size=(160, 8)) + 3.0 * y[:, None]
    noise = rng.normal(size=(160, 8))
    good, bad = knn_cv(signal, y, SEEDS), knn_cv(noise, y, SEEDS)
    assert good["accuracy"].shape == (3,) and good["majority"] == pytest.approx(0.75)
    assert good["accuracy"].mean() > 0.97 and good["balanced_accuracy"].mean() > 0.95
    assert bad["balanced_accuracy"].mean() < 0.62
    again = knn_cv(signal, y, SEEDS)
    np.testing.assert_array_equal(good["accuracy"], again["accuracy"])
    balanced = knn_cv(signal, y, SEEDS, balance=True)
    assert balanced["accuracy"].mean() > 0.95
    too_small = knn_cv(signal[:44], np.r_[np.zeros(40, int), np.ones(4, int)], SEEDS)
    assert np.isnan(too_small["accuracy"]).all()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two datasets of 60 genes (40 shared); 'TF' genes have a shifted residual profile in each dataset
    and a shifted 'good' embedding; the 'noise' embedding carries no signal."""
    folder = tmp_path_factory.mktemp("labels")
    rng = np.random.default_rng(1)
    genes = [f"GENE{k}" for k in range(80)]
    tfs = set(genes[::4])  # 20 TFs, 15 of them in each dataset
    panel = {"d1": genes[:60], "d2": genes[20:]}
    graphs = {}
    for s, (ds, names) in enumerate(panel.items()):
        g = synthetic_graph(ds, names, n_cells=30, seed=s)
        is_tf = np.array([n in tfs for n in names])
        shift = 2.5 * is_tf[:, None] * np.r_[np.ones(15), np.zeros(15)]
        g.layers["residuals"] = (g.layers["residuals"] + shift.T).astype(np.float32)
        graphs[ds] = g
    obs = pd.DataFrame({"gene": panel["d1"] + panel["d2"], "dataset": ["d1"] * 60 + ["d2"] * 60})
    label = obs["gene"].isin(tfs).to_numpy()
    good = rng.normal(size=(120, 16)) + 3.0 * label[:, None]
    noise = rng.normal(size=(120, 16))
    embs = {m: ad.AnnData(obs=obs.set_axis(obs["dataset"] + ":" + obs["gene"]),
                          obsm={EMBEDDING_KEY: x.astype(np.float32)})
            for m, x in (("good", good), ("noise", noise))}
    (folder / "tfs.txt").write_text("\n".join(sorted(tfs)) + "\n")
    pd.DataFrame({"gene": genes, "label": ["tf" if g in tfs else "other" for g in genes]}).to_csv(
        folder / "labels.csv", index=False)
    return graphs, embs, folder


def test_predict_functions_scopes_and_methods(run):
    graphs, embs, folder = run
    cfg = {"tasks": [{"name": "tf", "kind": "tf_list", "path": str(folder / "tfs.txt")},
                     {"name": "tab", "kind": "table", "path": str(folder / "labels.csv")}],
           "seeds": list(SEEDS)}
    table = predict_functions(embs, graphs, cfg)
    per_ds = table[table["scope"] == "per_dataset"]
    assert set(per_ds["method"]) == {"raw", "good", "noise"}
    assert set(per_ds["dataset"]) == {"d1", "d2", "mean"}
    assert set(table.loc[table["scope"] == "pooled", "method"]) == {"good", "noise"}  # no pooled raw vector
    assert len(table) == 2 * (3 * 3 + 2)
    tf = table[table["task"] == "tf"].set_index(["scope", "dataset", "method"])
    assert tf.loc[("per_dataset", "d1", "raw"), "n_genes"] == 60
    assert tf.loc[("pooled", "all", "good"), "n_genes"] == 80
    assert tf.loc[("per_dataset", "d1", "raw"), "majority"] == pytest.approx(45 / 60)
    for key in (("per_dataset", "mean", "raw"), ("per_dataset", "mean", "good"), ("pooled", "all", "good")):
        assert tf.loc[key, "balanced_accuracy_mean"] > 0.9, key
    for key in (("per_dataset", "mean", "noise"), ("pooled", "all", "noise")):
        assert tf.loc[key, "balanced_accuracy_mean"] < 0.7, key
    assert tf.loc[("per_dataset", "mean", "raw"), "n_genes"] == 120
    # the generic table gives the same labels, hence the same scores
    tab = table[table["task"] == "tab"].set_index(["scope", "dataset", "method"])
    pd.testing.assert_series_equal(tf["accuracy_mean"], tab["accuracy_mean"])


def test_pooled_features_average_rows(run):
    _, embs, _ = run
    emb = embs["good"]
    pooled = pooled_features(emb)
    assert len(pooled) == 80
    rows = np.flatnonzero(emb.obs["gene"].to_numpy() == "GENE30")  # in both datasets
    np.testing.assert_allclose(pooled.loc["GENE30"].to_numpy(), embedding(emb)[rows].mean(axis=0), rtol=1e-6)


def test_label_readers_and_config(tmp_path):
    dosage = tmp_path / "dosage.csv"
    dosage.write_text("ensembl_id,gene_name,dosage_insensitive,dosage_sensitive\n"
                      "E1,A,Yes,\nE2,B,,Yes\nE3,C,Yes,Yes\nE4,D,,\nE5,A,Yes,\nE6,F,Yes,\nE7,F,,Yes\n")
    labels = read_dosage_labels(dosage)
    assert labels.to_dict() == {"A": 0, "B": 1}
    lambert = tmp_path / "extract.csv"
    lambert.write_text("number,Ensembl ID,HGNC symbol,DBD,Is TF?\n0,E1,TF1,x,Yes\n1,E2,NOTTF,x,No\n")
    assert read_tf_list(lambert) == {"TF1"}
    tsv = tmp_path / "list.tsv"
    tsv.write_text("Ensembl ID\tHGNC symbol\tDBD\nE1\tTF1\tx\nE3\tTF3\ty\n")
    assert read_tf_list(tsv) == {"TF1", "TF3"}
    table = tmp_path / "t.tsv"
    table.write_text("gene\tclass\nA\tx\nB\ty\n")
    assert read_label_table(table).to_dict() == {"A": "x", "B": "y"}
    with pytest.raises(DataError, match="function_prediction.tasks.0.kind"):
        function_settings({"tasks": [{"name": "t", "kind": "go", "path": "x"}]})
    with pytest.raises(DataError, match="function_prediction.scopes"):
        function_settings({"scopes": ["global"]})
    with pytest.raises(DataError, match="task names repeat"):
        function_settings({"tasks": [{"name": "t", "kind": "table", "path": "x"}] * 2})
    with pytest.raises(DataError, match="columns"):
        read_dosage_labels(table)


def test_real_label_files(shared_data):
    folder = shared_data / "gene_labels_eval"
    extract = read_tf_list(folder / "lambert2018_human_tfs" / "DatabaseExtract_v_1.01.csv")
    listed = read_tf_list(folder / "lambert2018_human_tfs" / "lambert2018_1639_TFs.tsv")
    pyscenic = read_tf_list(folder / "lambert2018_human_tfs" / "pyscenic_lambert2018.txt")
    assert len(extract) == 1639 and extract == listed and len(extract & pyscenic) >= 1600
    dosage = read_dosage_labels(folder / "dosage_sensitive_tfs" / "dosage_sens_tf_labels.csv")
    # 122 sensitive and 368 insensitive rows; ZFP41 and ZNF763 are listed twice (two Ensembl ids each)
    assert int(dosage.sum()) == 122 and int((dosage == 0).sum()) == 366 and dosage.index.is_unique
    assert dosage.index.isin(list(extract)).mean() > 0.9  # the dosage task is about TFs

    # a run over real symbols: TF rows of a constructed embedding are shifted; k-NN recovers them
    rng = np.random.default_rng(2)
    genes = sorted(extract)[:60] + [f"NONTF{k}" for k in range(140)]
    graph = synthetic_graph("real", genes, n_cells=10, seed=3)
    is_tf = np.isin(genes, list(extract))
    emb = ad.AnnData(obs=pd.DataFrame({"gene": genes, "dataset": "real"}, index=genes),
                     obsm={EMBEDDING_KEY: (rng.normal(size=(200, 8)) + 3.0 * is_tf[:, None]).astype(np.float32)})
    cfg = {"tasks": [{"name": "tf", "kind": "tf_list",
                      "path": str(folder / "lambert2018_human_tfs" / "DatabaseExtract_v_1.01.csv")}],
           "seeds": [0, 1], "scopes": ["pooled"]}
    table = predict_functions({"emb": emb}, {"real": graph}, cfg)
    row = table.iloc[0]
    assert row["n_genes"] == 200 and row["majority"] == pytest.approx(140 / 200)
    assert row["balanced_accuracy_mean"] > 0.95
