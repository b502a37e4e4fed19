"""Workflow tests: real `snakemake` runs on a copy of the repository in a temporary folder.

Lint, dry-run, the full default demo, idempotence, a new sheet row, changed QC parameters, an invalid
sheet, and SLURM submission through the real executor plugin with fake sbatch/sacct on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from genegraph.report.html import SECTIONS, section_ids

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
FAKE_SLURM = Path(__file__).resolve().parent / "fake_slurm"
PARTS = ["Snakefile", "workflow", "config", "envs", "resources", "profiles"]
IGNORE = shutil.ignore_patterns("__pycache__", "downloads", "checksums.lock.tsv*", ".snakemake")


def copy_repo(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dst / part, ignore=IGNORE)
        else:
            shutil.copy2(src, dst / part)
    return dst


def smk(workdir: Path, *args: str, env: dict | None = None, check: bool = True, timeout: int = 900) -> str:
    """Run snakemake in ``workdir``; return stdout + stderr (Snakemake 9 logs to stdout)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{out[-6000:]}")
    return out


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a run or dry-run as {rule: count}."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


#: The demo's training groups (train.group_by: tissue); an added copy of a blood row stays in "blood".
TISSUE = {"pbmc5k_cite": "blood", "pbmc10k_cite": "blood", "pbmc68k": "blood", "visium_brain": "brain"}

#: Modalities of the demo rows (an added copy of a CITE-seq row is CITE-seq) and its cross-dataset protein task.
MODALITY = {"pbmc5k_cite": "cite", "pbmc10k_cite": "cite", "pbmc68k": "scrna", "visium_brain": "spatial"}
CROSS = [("pbmc5k_cite", "pbmc10k_cite")]

PER_DATASET = ["download_dataset", "ingest", "qc", "features", "coexpression", "build_graphs"]


def expected_jobs(datasets: list[str], spatial: set[str], first: str = "download_dataset",
                  fresh: bool = False) -> dict[str, int]:
    """Job counts when ``datasets`` rerun from rule ``first`` on, with the summaries and ``all``
    (``fresh``: nothing built yet, so the species-level STRING table is built too)."""
    chain = PER_DATASET[PER_DATASET.index(first):]
    counts = {rule: len(datasets) for rule in chain}
    if "qc" in chain and spatial & set(datasets):
        counts["spatial_genes"] = len(spatial & set(datasets))
    if "qc" in chain:
        counts["qc_summary"] = 1
    if "qc" in chain and spatial & set(datasets):  # the imputation stage starts from the QC'd spatial datasets
        n = len(spatial & set(datasets))
        counts.update({"imputation_mask": n, "train_imputation": 2 * n, "impute_baseline": 2 * n,
                       "evaluate_imputation": 1})
    if "qc" in chain:  # protein tasks: each CITE-seq dataset, and the cross task touching a rerun dataset
        cite = [d for d in datasets if MODALITY.get(d, "cite") == "cite"]
        tasks = len(cite) + sum(1 for pair in CROSS if set(pair) & set(datasets))
        if tasks:
            counts.update({"protein_split": tasks, "train_protein": 2 * tasks, "protein_baseline": 3 * tasks,
                           "protein_variant": len(cite), "evaluate_protein": 1})
    if "qc" in chain:  # CellPLM reads every QC'd dataset (held-out ones for the gene vocabulary): all of it reruns
        # embedding of the 2 held-out rows; denoising, annotation (+ imputation for the spatial one)
        counts.update({"cellplm_pretrain": 1, "cellplm_embedding": 2, "cellplm_task": 5, "evaluate_cellplm": 1})
    counts["graphs_summary"] = 1
    # one MuSe-GNN, one of each of the 7 baselines and one module set per training group (tissue) that a
    # rerun dataset belongs to; the evaluation and the report read every group
    groups = len({TISSUE.get(d, "blood") for d in datasets})
    counts.update({"train": groups, "baseline": 7 * groups, "modules": groups, "evaluate": 1,
                   "function_prediction": 1, "report": 1})
    if fresh:
        counts["string_mygene"] = 1
        counts["string_gene_links"] = 1
    counts["all"] = 1
    return counts


def scheduled_datasets(output: str) -> set[str]:
    """Datasets named by the scheduled jobs' messages ("Job 3: QC of dataset x")."""
    return set(re.findall(r"^Job \d+: .*?dataset (\w+)", output, re.M))


def sheet(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / "config" / "datasets.tsv", sep="\t", dtype=str, keep_default_na=False)


def write_sheet(workdir: Path, table: pd.DataFrame) -> None:
    table.to_csv(workdir / "config" / "datasets.tsv", sep="\t", index=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A repository copy on which the default run (`snakemake -c 2`) has completed."""
    workdir = copy_repo(tmp_path_factory.mktemp("demo"))
    smk(workdir, "-c", "2", timeout=3600)
    return workdir


def test_lint_is_clean(tmp_path):
    out = smk(copy_repo(tmp_path), "--lint")
    assert "Congratulations, your workflow is in a good condition!" in out


def spatial(workdir: Path) -> set[str]:
    table = sheet(workdir)
    return set(table.loc[table["modality"] == "spatial", "dataset"])


def test_dry_run_lists_every_stage(tmp_path):
    out = smk(copy_repo(tmp_path), "-n", "-c", "2")
    datasets = sheet(tmp_path)["dataset"].tolist()
    assert job_counts(out) == expected_jobs(datasets, spatial(tmp_path), fresh=True)


def test_changed_edge_rule_reruns_only_graphs(demo, tmp_path):
    (tmp_path / "override.yaml").write_text("coexpression:\n  p_threshold: 0.001\n")
    out = smk(demo, "-n", "-c", "2", "--configfile", str(tmp_path / "override.yaml"))
    assert job_counts(out) == expected_jobs(sheet(demo)["dataset"].tolist(), set(), first="coexpression")


def test_full_run_writes_graphs_for_every_dataset(demo):
    for d in sheet(demo)["dataset"]:
        graph = ad.read_h5ad(demo / "results" / d / "graph" / "graph.h5ad")
        features = ad.read_h5ad(demo / "results" / d / "features.h5ad")
        selected = features.var_names[features.var["highly_variable"].to_numpy(dtype=bool)]
        assert set(graph.var_names) == set(selected) and graph.n_obs == features.n_obs  # cells x genes throughout
        n = graph.n_vars
        assert 2 <= n <= 1000 and graph.varp["coexpr"].shape == (n, n)
        assert graph.layers["residuals"].shape == graph.shape and np.isfinite(graph.layers["residuals"]).all()
        assert list(graph.uns["edge_types"]) == ["coexpr", "string", "hallmark"]
        for edge_type in graph.uns["edge_types"]:
            adj = graph.varp[edge_type]
            assert adj.shape == (n, n) and (adj != adj.T).nnz == 0
        assert graph.varp["hallmark"].nnz > 0  # every demo graph, the mouse one too, has hallmark edges
        coverage = json.loads((demo / "results" / d / "graph" / "coverage.json").read_text())
        assert 0 < coverage["hallmark_in_set_frac"] <= 1 and 0 <= coverage["string_frac_with_edge"] <= 1
    summary = pd.read_csv(demo / "results" / "graphs_summary.tsv", sep="\t")
    assert summary["dataset"].tolist() == sheet(demo)["dataset"].tolist()
    spatial_graph = ad.read_h5ad(demo / "results" / "visium_brain" / "graph" / "graph.h5ad")
    ranked = pd.read_csv(demo / "results" / "visium_brain" / "genes" / "sparkx.tsv", sep="\t")
    assert set(spatial_graph.var_names) <= set(ranked["gene"])  # spatial genes come from SPARK-X
    assert spatial_graph.uns["sctransform"]["selection"] == "residual_features"


def test_full_run_trains_musegnn(demo):
    emb = ad.read_h5ad(demo / "results" / "musegnn" / "blood" / "seed0" / "embeddings.h5ad")
    blood = [d for d in sheet(demo)["dataset"] if TISSUE[d] == "blood"]  # one model per tissue
    graphs = {d: ad.read_h5ad(demo / "results" / d / "graph" / "graph.h5ad") for d in blood}
    z = emb.obsm["X_emb"]
    assert z.shape == (sum(g.n_vars for g in graphs.values()), 32) and np.isfinite(z).all()
    assert {"gene", "dataset", "group", "share_key", "modality", "tissue", "in_all_datasets"} <= set(emb.obs.columns)
    assert (emb.obs["group"] == "blood").all() and emb.uns["n_parameters"] > 0
    for d, g in graphs.items():
        assert emb.obs.loc[emb.obs["dataset"] == d, "gene"].tolist() == list(g.var_names)
    losses = pd.read_csv(demo / "results" / "musegnn" / "blood" / "seed0" / "losses.tsv", sep="\t")
    assert {"bce", "sim", "infonce", "total"} <= set(losses.columns) and len(losses) == 60
    assert losses["bce"].iloc[-10:].mean() < losses["bce"].iloc[:10].mean()
    run = json.loads((demo / "results" / "musegnn" / "blood" / "seed0" / "run.json").read_text())
    assert run["seed"] == 0 and run["device"] == "cpu" and run["n_parameters"] == run["n_parameters_formula"]


def test_full_run_imputes_the_spatial_dataset(demo):
    scores = pd.read_csv(demo / "results" / "imputation" / "scores.tsv", sep="\t")
    assert set(scores["method"]) == {"spaformer", "spaformer_mlp", "raw", "knn_smooth"}
    assert set(scores["dataset"]) == {"visium_brain"} and (scores["seed"] == 0).all()
    by = scores.set_index("method")
    assert np.isfinite(by["rmse"]).all() and by.loc["spaformer", "rmse"] < by.loc["raw", "rmse"]
    mask = ad.read_h5ad(demo / "results" / "imputation" / "visium_brain" / "mask.h5ad")
    assert 0.25 < mask.uns["mask"]["share_of_entries"] <= 0.3 and mask.uns["mask"]["seed"] == 0
    for method in ("spaformer", "spaformer_mlp"):
        run = demo / "results" / "imputation" / "visium_brain" / method / "seed0"
        assert (run / "model.pt").stat().st_size > 0 and len(pd.read_csv(run / "losses.tsv", sep="\t")) > 0
        imputed = ad.read_h5ad(run / "imputed.h5ad")
        assert imputed.shape == mask.shape and f"X_{method}" in imputed.obsm
    summary = pd.read_csv(demo / "results" / "imputation" / "summary.tsv", sep="\t")
    assert {"rmse_mean", "rmse_sd", "pearson_mean", "cosine_mean"} <= set(summary.columns)


def test_full_run_predicts_proteins(demo):
    scores = pd.read_csv(demo / "results" / "protein" / "scores.tsv", sep="\t")
    methods = {"scmognn", "scmoformer", "svd_linear", "knn", "mean"}
    assert set(scores["method"]) == methods
    assert set(scores["dataset"]) == {"pbmc5k_cite", "pbmc10k_cite", "pbmc5k_cite_to_pbmc10k_cite"}
    assert np.isfinite(scores[["rmse", "mae", "pearson_cell", "pearson_protein"]]).all().all()
    by = scores.groupby("method")["rmse"].mean()
    assert by["scmognn"] < by["mean"]  # the trained model beats the training mean
    split = pd.read_csv(demo / "results" / "protein" / "pbmc5k_cite" / "split.tsv", sep="\t")
    assert set(split["seed0"]) == {"train", "val", "test"}
    assert (split["seed0"] == "test").mean() == pytest.approx(0.2, abs=0.02)
    run = demo / "results" / "protein" / "pbmc5k_cite" / "scmognn" / "seed0"
    pred = ad.read_h5ad(run / "predictions.h5ad")
    assert pred.n_obs == (split["seed0"] == "test").sum() and "truth" in pred.layers
    assert (run / "model.pt").stat().st_size > 0 and len(pd.read_csv(run / "losses.tsv", sep="\t")) > 0
    cross_task = demo / "results" / "protein" / "pbmc5k_cite_to_pbmc10k_cite"
    cross = ad.read_h5ad(cross_task / "mean" / "seed0" / "predictions.h5ad")
    assert cross.obs_names.str.startswith("pbmc10k_cite:").all()  # tested on the other dataset's cells
    matching = pd.read_csv(demo / "results" / "protein" / "matching.tsv", sep="\t")
    assert set(matching["task"]) == {"pbmc5k_cite", "pbmc10k_cite"} and matching["matching_score"].between(0, 1).all()


def test_full_run_pretrains_cellplm_and_runs_its_tasks(demo):
    run = json.loads((demo / "results" / "cellplm" / "pretrain" / "run.json").read_text())
    assert run["datasets"] == ["pbmc5k_cite", "pbmc10k_cite"] and run["n_parameters"] > 0
    history = pd.read_csv(demo / "results" / "cellplm" / "pretrain" / "history.tsv", sep="\t")
    assert len(history) == 20 and history["loss"].iloc[-3:].mean() < history["loss"].iloc[:3].mean()
    scores = pd.read_csv(demo / "results" / "cellplm" / "scores.tsv", sep="\t")
    denoising = scores[scores["task"] == "denoising"]
    assert set(denoising["dataset"]) == {"pbmc68k", "visium_brain"}
    assert {"cellplm", "cellplm_zero_shot", "cellplm_scratch", "raw", "knn_smooth"} == set(denoising["method"])
    assert np.isfinite(denoising["rmse"]).all()
    imputation = scores[scores["task"] == "imputation"].set_index("method")
    assert set(imputation.index) == {"cellplm", "cellplm_scratch"} and np.isfinite(imputation["rmse"]).all()
    emb = ad.read_h5ad(demo / "results" / "cellplm" / "pbmc68k" / "embedding" / "seed0.h5ad")
    assert emb.obsm["X_cellplm"].shape == (emb.n_obs, 16) and np.isfinite(emb.obsm["X_cellplm"]).all()
    # the labelled held-out set (pbmc68k's bulk labels): annotation against its baselines, embeddings scored
    annotation = scores[scores["task"] == "annotation"].set_index("method")
    assert set(annotation["dataset"]) == {"pbmc68k"}
    assert set(annotation.index) == {"cellplm", "cellplm_scratch", "pca_logistic", "celltypist_style"}
    assert annotation["macro_f1"].between(0, 1).all() and annotation.loc["pca_logistic", "macro_f1"] > 0.3
    embedding = scores[(scores["task"] == "embedding") & (scores["dataset"] == "pbmc68k")]
    assert np.isfinite(embedding["nmi"]).all() and len(embedding) >= 2


def test_full_run_ends_in_the_report(demo):
    page = (demo / "results" / "report.html").read_text()
    assert section_ids(page) == [*SECTIONS, "protein", "imputation", "cellplm"]
    summary = pd.read_csv(demo / "results" / "evaluation" / "summary.tsv", sep="\t")
    assert set(summary["method"]) == {"musegnn", "pca", "gae", "vgae", "mae", "wsmae", "gene2vec", "giant"}
    blood = summary[summary["group"] == "blood"].set_index("method")
    assert blood["AUC_mean"].between(0, 1).all() and np.isfinite(blood["avg_score"]).all()
    modules = pd.read_csv(demo / "results" / "evaluation" / "modules" / "blood_table.tsv", sep="\t")
    assert (modules["n_enriched"] > 0).any()  # some module is enriched for a hallmark set
    function = pd.read_csv(demo / "results" / "evaluation" / "function_prediction.tsv", sep="\t")
    assert {"musegnn", "pca", "raw"} <= set(function["method"])


def test_killed_training_resumes_from_checkpoint(demo, tmp_path):
    workdir = tmp_path / "resume"
    shutil.copytree(demo, workdir, symlinks=True)
    (workdir / "more.yaml").write_text("train:\n  epochs: 130\n  checkpoint_every: 5\n")
    target = "results/musegnn/blood/seed0/embeddings.h5ad"  # before --configfile, which takes several values
    args = [sys.executable, "-m", "snakemake", target, "-c", "2", "--configfile", "more.yaml"]
    log = workdir / "logs" / "train" / "blood_seed0.log"
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and "checkpoint after epoch 110" not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None, "snakemake ended before training reached epoch 110"
            time.sleep(1)
        assert "resuming from" in log.read_text()  # the finished 60-epoch run is continued, not restarted
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (workdir / "results" / "musegnn" / "blood" / "seed0" / "run.json").exists()
    smk(workdir, "--unlock")  # a killed controller leaves its lock, as after a cluster kill
    out = smk(workdir, target, "-c", "2", "--rerun-incomplete", "--configfile", "more.yaml")
    run = json.loads((workdir / "results" / "musegnn" / "blood" / "seed0" / "run.json").read_text())
    assert run["epochs"] == 130 and 110 <= run["resumed_from_epoch"] < 130, out[-2000:]
    losses = pd.read_csv(workdir / "results" / "musegnn" / "blood" / "seed0" / "losses.tsv", sep="\t")
    assert losses["epoch"].tolist() == list(range(1, 131))


def test_slurm_gpu_flags_on_train(demo, tmp_path):
    workdir = tmp_path / "gpu"
    shutil.copytree(demo, workdir, symlinks=True)
    prof = slurm_profile(workdir)
    (workdir / "short.yaml").write_text("train:\n  epochs: 2\n  checkpoint_every: 1\n")
    state = tmp_path / "slurm"
    env = {"PATH": f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_STATE": str(state)}
    smk(workdir, "results/musegnn/blood/seed0/embeddings.h5ad", "--workflow-profile", str(prof),
        "--slurm-init-seconds-before-status-checks", "1", "--configfile", "short.yaml", env=env)
    sbatch = [c for c in (json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines())
              if c[0] == "sbatch"]
    assert [c[c.index("--comment") + 1] for c in sbatch] == ["rule_train_wildcards_blood_0"]
    line = " ".join(sbatch[0])
    assert "--gpus=1" in line and "-p gpu" in line and "--cpus-per-gpu=8" in line and "-A mylab" in line
    assert "--cpus-per-task" not in line


def test_full_run_writes_qc_outputs_for_every_dataset(demo):
    datasets = sheet(demo)["dataset"].tolist()
    assert len(datasets) == 4
    for d in datasets:
        qc = demo / "results" / d / "qc"
        assert (qc / "qc.png").stat().st_size > 10_000
        steps = pd.read_csv(qc / "metrics.tsv", sep="\t")
        assert steps["step"].iloc[0] == "input" and (steps["cells"].diff().dropna() <= 0).all()
        adata = ad.read_h5ad(qc / "adata.h5ad")
        assert adata.n_obs == steps["cells"].iloc[-1] and adata.n_vars == steps["genes"].iloc[-1]
        assert {"total_counts", "n_genes_by_counts", "pct_counts_mt", "total_counts_qc"} <= set(adata.obs.columns)
        assert not adata.var_names.str.upper().str.startswith("MT-").any()
        assert (demo / "logs" / "qc" / f"{d}.log").exists() and (demo / "benchmarks" / "qc" / f"{d}.tsv").exists()
        manifest = json.loads((demo / "resources" / "downloads" / d / "download.json").read_text())
        assert len(manifest["source"]["sha256"]) == 64
    summary = pd.read_csv(demo / "results" / "qc_summary.tsv", sep="\t")
    assert summary["dataset"].tolist() == datasets
    spatial = ad.read_h5ad(demo / "results" / "visium_brain" / "qc" / "adata.h5ad")
    assert spatial.obsm["spatial"].shape == (spatial.n_obs, 2)
    cite = ad.read_h5ad(demo / "results" / "pbmc5k_cite" / "qc" / "adata.h5ad")
    assert cite.obsm["protein"].shape[0] == cite.n_obs


def test_second_run_has_nothing_to_do(demo):
    assert "Nothing to be done" in smk(demo, "-n", "-c", "2")


def test_new_row_schedules_only_the_new_dataset(demo):
    table = sheet(demo)
    try:
        extra = table.iloc[[0]].assign(dataset="pbmc5k_again")
        write_sheet(demo, pd.concat([table, extra]))
        out = smk(demo, "-n", "-c", "2")
        assert job_counts(out) == expected_jobs(["pbmc5k_again"], set())
        assert scheduled_datasets(out) == {"pbmc5k_again"}
    finally:
        write_sheet(demo, table)


def test_changed_qc_override_reruns_only_that_dataset(demo):
    table = sheet(demo)
    try:
        changed = table.copy()
        changed.loc[changed["dataset"] == "visium_brain", "min_genes"] = "12"
        write_sheet(demo, changed)
        out = smk(demo, "-n", "-c", "2")
        assert job_counts(out) == expected_jobs(["visium_brain"], {"visium_brain"}, first="qc")
        assert "Params have changed since last execution" in out
        assert scheduled_datasets(out) == {"visium_brain"}
    finally:
        write_sheet(demo, table)
    assert "Nothing to be done" in smk(demo, "-n", "-c", "2")


def test_changed_config_default_reruns_qc_only(demo, tmp_path):
    (tmp_path / "override.yaml").write_text("qc:\n  min_cells: 5\n")
    out = smk(demo, "-n", "-c", "2", "--configfile", str(tmp_path / "override.yaml"))
    table = sheet(demo)
    own = set(table.loc[table["min_cells"] != "", "dataset"])  # rows with their own min_cells keep it
    assert own == {"visium_brain"}
    rerun = sorted(set(table["dataset"]) - own)
    assert job_counts(out) == expected_jobs(rerun, spatial(demo), first="qc")
    assert scheduled_datasets(out) == set(rerun)


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.assign(modality=["scrna", "proteomics", "scrna", "spatial"]),
     "datasets.tsv line 3 (dataset 'pbmc10k_cite'), column 'modality': 'proteomics' is not one of"),
    (lambda t: t.assign(dataset=["a", "b", "a", "c"]), "lines 2, 4, column 'dataset': duplicate dataset id 'a'"),
    (lambda t: t.assign(sha256=["xyz"] + list(t["sha256"][1:])), "column 'sha256': 'xyz' does not match"),
    (lambda t: t.drop(columns=["format"]), "missing column 'format'"),
    (lambda t: t.assign(species=["human", "human", "zebrafish", "mouse"]),
     "dataset 'pbmc68k', column 'species': 'zebrafish' is not in the config's species table"),
])
def test_invalid_sheet_stops_at_parse_time(tmp_path, edit, message):
    workdir = copy_repo(tmp_path)
    write_sheet(workdir, edit(sheet(workdir)))
    out = smk(workdir, "-n", "-c", "2", check=False)
    assert message in out
    assert "Job stats" not in out


def test_invalid_config_rejected(tmp_path):
    workdir = copy_repo(tmp_path)
    (workdir / "bad.yaml").write_text("qc:\n  min_genes: 0\n")
    out = smk(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert "invalid configuration" in out and "qc.min_genes: 0 is less than the minimum of 1" in out


def test_bad_input_fails_with_the_dataset_named(tmp_path):
    workdir = copy_repo(tmp_path)
    table = sheet(workdir)
    write_sheet(workdir, table.assign(sha256=["0" * 64] + list(table["sha256"][1:])))
    out = smk(workdir, "-c", "1", "results/pbmc5k_cite/qc/adata.h5ad", check=False)
    assert "dataset 'pbmc5k_cite': sha256 mismatch" in out
    folder = workdir / "resources" / "downloads" / "pbmc5k_cite"
    assert not folder.exists() or not [p for p in folder.iterdir() if not p.name.startswith(".")]


def slurm_profile(workdir: Path) -> Path:
    """The shipped profile with its placeholders filled in and without conda (absent here)."""
    text = (REPO / "profiles" / "slurm" / "config.v8+.yaml").read_text()
    assert "cpus_per_task" not in text.split("default-resources:")[1].split("set-resources:")[0]
    text = (text.replace("CHANGE_ME_cpu_partition", "cpu").replace("CHANGE_ME_account", "mylab")
            .replace("CHANGE_ME_gpu_partition", "gpu"))
    text = "\n".join(line for line in text.splitlines() if not line.startswith("software-deployment-method"))
    prof = workdir / "prof"
    prof.mkdir()
    (prof / "config.v8+.yaml").write_text(text)
    return prof


def test_slurm_submission_with_fake_sbatch(tmp_path):
    workdir = copy_repo(tmp_path / "repo")
    prof = slurm_profile(workdir)
    state = tmp_path / "slurm"
    env = {"PATH": f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_STATE": str(state),
           "FAKE_SLURM_FAIL_FIRST": "rule_qc_wildcards_visium_brain"}
    out = smk(workdir, "--workflow-profile", str(prof), "--slurm-init-seconds-before-status-checks", "1",
              "results/visium_brain/qc/adata.h5ad", "results/pbmc5k_cite/qc/adata.h5ad", env=env)
    assert (workdir / "results" / "visium_brain" / "qc" / "adata.h5ad").exists()
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    sbatch = [c for c in calls if c[0] == "sbatch"]
    comments = [c[c.index("--comment") + 1] for c in sbatch]
    # downloads are local rules: never submitted
    assert not any("download" in c for c in comments)
    assert sorted(set(comments)) == ["rule_ingest_wildcards_pbmc5k_cite", "rule_ingest_wildcards_visium_brain",
                                     "rule_qc_wildcards_pbmc5k_cite", "rule_qc_wildcards_visium_brain"]
    for call in sbatch:
        line = " ".join(call)
        assert "-A mylab" in line and "-p cpu" in line and "--cpus-per-task=1" in line
        assert "--gpus" not in line and "--gres" not in line
    # the failed first qc attempt is resubmitted with doubled memory and runtime
    qc_visium = [c for c in sbatch if "rule_qc_wildcards_visium_brain" in c]
    assert len(qc_visium) == 2
    mem = [int(c[c.index("--mem") + 1]) for c in qc_visium]
    runtime = [int(c[c.index("-t") + 1]) for c in qc_visium]
    assert mem[1] == 2 * mem[0] and runtime == [30, 60]
    assert "Finished jobid" in out


def test_snakemake_report_builds(demo):
    smk(demo, "--report", "results/report.zip")
    assert (demo / "results" / "report.zip").stat().st_size > 100_000
