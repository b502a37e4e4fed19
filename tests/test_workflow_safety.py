"""Workflow safety: checksum lock for empty sha256, failed re-downloads, kills, concurrent controllers and
damaged outputs -- real snakemake runs on one small dataset in temporary copies of the repository."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
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
import yaml
from test_workflow import REPO, copy_repo, job_counts, sheet, smk, write_sheet

pytestmark = pytest.mark.workflow

DATASET = "pbmc5k_cite"
DOWNLOAD = f"resources/downloads/{DATASET}/download.json"
COEXPR = f"results/{DATASET}/graph/coexpression.h5ad"


def one_row(workdir: Path) -> pd.DataFrame:
    """Restrict the sheet to the small demo dataset; return its row."""
    table = sheet(workdir)
    table = table[table["dataset"] == DATASET]
    write_sheet(workdir, table)
    return table


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A copy whose one dataset has been run up to its co-expression graph."""
    workdir = copy_repo(tmp_path_factory.mktemp("built"))
    one_row(workdir)
    smk(workdir, "-c", "2", COEXPR)
    return workdir


def clone(built: Path, dst: Path) -> Path:
    shutil.copytree(built, dst, symlinks=True)
    return dst


def popen(workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        assert proc.poll() is None, f"snakemake ended before '{text}' appeared in {path}:\n{proc.stdout.read()}"
        time.sleep(0.05)
    raise AssertionError(f"'{text}' never appeared in {path}")


def graph_arrays(path: Path) -> dict[str, np.ndarray]:
    g = ad.read_h5ad(path)
    x = g.X.toarray() if hasattr(g.X, "toarray") else np.asarray(g.X)
    return {"rho": np.asarray(g.varp["cscore_rho"]), "coexpr": g.varp["coexpr"].toarray(), "x": x}


def test_empty_sha256_is_recorded_then_verified(tmp_path):
    workdir = copy_repo(tmp_path)
    row = one_row(workdir)
    write_sheet(workdir, row.assign(sha256=""))
    source = workdir / row["source"].iloc[0]
    smk(workdir, "-c", "1", DOWNLOAD)
    lock = pd.read_csv(workdir / "resources" / "checksums.lock.tsv", sep="\t")
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert lock.set_index("source").loc[row["source"].iloc[0], "sha256"] == expected  # first run records
    smk(workdir, "-c", "1", DOWNLOAD, "--forcerun", "download_dataset")  # second run verifies
    good = (workdir / "resources" / "downloads" / DATASET / source.name).read_bytes()
    with open(source, "ab") as fh:  # the source changes upstream
        fh.write(b"\0")
    out = smk(workdir, "-c", "1", DOWNLOAD, "--forcerun", "download_dataset", check=False)
    assert f"dataset '{DATASET}': sha256 mismatch" in out and "recorded in resources/checksums.lock.tsv" in out
    assert (workdir / "resources" / "downloads" / DATASET / source.name).read_bytes() == good


def test_a_failed_redownload_leaves_the_last_good_copy(built, tmp_path):
    workdir = clone(built, tmp_path / "w")
    table = sheet(workdir)
    name = Path(table["source"].iloc[0]).name
    copy = workdir / "resources" / "downloads" / DATASET / name
    good = copy.read_bytes()
    write_sheet(workdir, table.assign(sha256="0" * 64))  # an edited row with a wrong checksum
    out = smk(workdir, "-c", "1", DOWNLOAD, check=False)
    assert f"dataset '{DATASET}': sha256 mismatch" in out
    assert copy.read_bytes() == good, "the verified copy was removed or replaced"
    write_sheet(workdir, table)  # the row is fixed: the source is fetched and verified again
    smk(workdir, "-c", "1", DOWNLOAD)
    manifest = json.loads((workdir / DOWNLOAD).read_text())
    assert manifest["source"]["sha256"] == hashlib.sha256(good).hexdigest() and copy.read_bytes() == good


def test_a_kill_during_coexpression_leaves_no_partial_graph(built, tmp_path):
    workdir = clone(built, tmp_path / "w")
    reference = graph_arrays(workdir / COEXPR)
    (workdir / COEXPR).unlink()
    log = workdir / "logs" / "coexpression" / f"{DATASET}.log"
    log.unlink()
    proc = popen(workdir, "-c", "1", COEXPR)
    try:
        wait_for(log, "CS-CORE:", proc)  # the job is inside CS-CORE
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (workdir / COEXPR).exists()
    smk(workdir, "--unlock")
    smk(workdir, "-c", "1", COEXPR, "--rerun-incomplete")
    again = graph_arrays(workdir / COEXPR)
    for key, value in reference.items():
        assert np.array_equal(value, again[key]), key


def test_a_second_controller_is_refused_and_a_lockless_one_cannot_corrupt(built, tmp_path):
    workdir = clone(built, tmp_path / "w")
    reference = graph_arrays(workdir / COEXPR)
    log = workdir / "logs" / "coexpression" / f"{DATASET}.log"
    log.unlink()  # the copy holds the build's log: wait for this run's own line
    first = popen(workdir, "-c", "1", COEXPR, "--forcerun", "coexpression")
    try:
        wait_for(log, "read results", first)
        os.killpg(first.pid, signal.SIGSTOP)  # the first controller holds its lock, its job half done
        refused = smk(workdir, "-c", "1", COEXPR, "--forcerun", "coexpression", check=False)
        assert "LockException" in refused or "cannot be locked" in refused.lower()
        # even with the lock bypassed, both write whole files under temporary names: the last rename wins
        second = smk(workdir, "-c", "1", COEXPR, "--nolock", "--forcerun", "coexpression")
        assert "Finished" in second
    finally:
        os.killpg(first.pid, signal.SIGCONT)
        assert first.wait(timeout=600) == 0, first.stdout.read()
    again = graph_arrays(workdir / COEXPR)
    for key, value in reference.items():
        assert np.array_equal(value, again[key]), key
    assert not list((workdir / "results" / DATASET / "graph").glob(".*tmp*"))


def test_a_truncated_output_is_recomputed_with_what_follows(built, tmp_path):
    workdir = clone(built, tmp_path / "w")
    reference = graph_arrays(workdir / COEXPR)
    features = workdir / "results" / DATASET / "features.h5ad"
    features.write_bytes(features.read_bytes()[: features.stat().st_size // 3])
    dry = smk(workdir, "-n", "-c", "1", COEXPR)
    assert "features.h5ad is damaged" in dry
    assert job_counts(dry) == {"features": 1, "coexpression": 1}
    smk(workdir, "-c", "1", COEXPR)
    assert ad.read_h5ad(features).n_obs > 0
    again = graph_arrays(workdir / COEXPR)
    for key, value in reference.items():
        assert np.array_equal(value, again[key]), key
    assert "Nothing to be done" in smk(workdir, "-n", "-c", "1", COEXPR)


def fake_string_release(folder: Path) -> tuple[str, dict[str, str]]:
    """STRING's download layout under ``folder`` (v12.0, human) built from the embedded demo subset, reached
    through a file:// base URL; returns the base URL and the sha256 of each file."""
    demo = REPO / "resources" / "priors" / "string_demo"
    files = {"protein.links.detailed": demo / "9606.protein.links.txt.gz",
             "protein.aliases": demo / "9606.protein.aliases.txt.gz"}
    digests = {}
    for kind, src in files.items():
        dst = folder / f"{kind}.v12.0" / f"9606.{kind}.v12.0.txt.gz"
        dst.parent.mkdir(parents=True)
        shutil.copyfile(src, dst)
        digests[dst.name] = hashlib.sha256(dst.read_bytes()).hexdigest()
    info = folder / "protein.info.v12.0" / "9606.protein.info.v12.0.txt.gz"
    info.parent.mkdir(parents=True)
    with gzip.open(info, "wt") as fh:
        fh.write("#string_protein_id\tpreferred_name\tprotein_size\tannotation\n")
    digests[info.name] = hashlib.sha256(info.read_bytes()).hexdigest()
    return f"file://{folder}", digests


def test_changed_string_checksum_or_species_table_reruns_exactly_their_jobs(built, tmp_path):
    workdir = clone(built, tmp_path / "w")
    base, digests = fake_string_release(tmp_path / "string_release")
    settings = tmp_path / "string.yaml"
    settings.write_text(yaml.safe_dump({"priors": {"string": {"source": "download", "base_url": base}}}))
    graph = f"results/{DATASET}/graph/graph.h5ad"
    smk(workdir, "-c", "1", graph, "--configfile", str(settings))
    assert "Nothing to be done" in smk(workdir, "-n", "-c", "1", graph, "--configfile", str(settings))

    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(yaml.safe_dump({"priors": {"string": {"source": "download", "base_url": base,
                                                            "sha256": digests}}}))
    out = smk(workdir, "-n", "-c", "1", graph, "--configfile", str(pinned))
    assert job_counts(out) == {"download_string": 1, "string_mygene": 1, "string_gene_links": 1, "build_graphs": 1}

    table = {"human": {"taxon": 9606, "gene_table": "resources/genes/genes_homo_sapiens.csv.gz"},
             "mouse": {"taxon": 10090, "gene_table": "resources/genes/genes_mus_musculus.csv.gz"}}
    unrelated = tmp_path / "rat.yaml"  # a species no dataset uses: nothing reruns
    unrelated.write_text(yaml.safe_dump({"species": {**table, "rat": {"taxon": 10116, "gene_table": "x"}},
                                         "priors": {"string": {"source": "download", "base_url": base}}}))
    assert "Nothing to be done" in smk(workdir, "-n", "-c", "1", graph, "--configfile", str(unrelated))
    mouse = tmp_path / "mouse.yaml"  # the mouse entry is not used by this human dataset's graph either
    mouse.write_text(yaml.safe_dump({"species": {**table, "mouse": {"taxon": 10091, "gene_table": table["mouse"][
        "gene_table"]}}, "priors": {"string": {"source": "download", "base_url": base}}}))
    assert "Nothing to be done" in smk(workdir, "-n", "-c", "1", graph, "--configfile", str(mouse))
    human = tmp_path / "human.yaml"  # the human entry is: STRING and the prior edges are redone, nothing before
    human.write_text(yaml.safe_dump({"species": {**table, "human": {**table["human"], "taxon": 9605}},
                                     "priors": {"string": {"source": "download", "base_url": base}}}))
    out = smk(workdir, "-n", "-c", "1", graph, "--configfile", str(human))
    assert job_counts(out) == {"download_string": 1, "string_mygene": 1, "string_gene_links": 1, "build_graphs": 1}
    assert "Params have changed since last execution" in out
