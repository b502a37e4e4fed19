"""Damaged outputs (truncated h5ad files and checkpoints) are found and marked for recomputation."""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import torch

from genegraph.data.integrity import damage, damaged_files, mark_damaged


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_whole_files_pass_and_truncated_ones_are_found(tmp_path):
    good = tmp_path / "a" / "good.h5ad"
    good.parent.mkdir()
    ad.AnnData(X=np.ones((3, 2), dtype=np.float32)).write_h5ad(good)
    ckpt = tmp_path / "a" / "checkpoint.pt"
    torch.save({"w": torch.zeros(1000)}, ckpt)
    assert damage(good) is None and damage(ckpt) is None and damaged_files(tmp_path) == []

    bad = tmp_path / "a" / "bad.h5ad"
    bad.write_bytes(good.read_bytes())
    _truncate(bad)
    bad_ckpt = tmp_path / "a" / "bad.pt"
    bad_ckpt.write_bytes(ckpt.read_bytes())
    _truncate(bad_ckpt)
    (tmp_path / "a" / "empty.h5ad").write_bytes(b"")
    (tmp_path / "a" / ".x.123.tmp.h5ad").write_bytes(b"half")  # a temporary file being written: skipped
    found = dict(damaged_files(tmp_path))
    assert set(found) == {bad, bad_ckpt, tmp_path / "a" / "empty.h5ad"}
    assert "truncated" in found[bad] and "BadZipFile" in found[bad_ckpt]


def test_marking_makes_damaged_files_older_than_any_input(tmp_path):
    good = tmp_path / "good.h5ad"
    ad.AnnData(X=np.ones((2, 2), dtype=np.float32)).write_h5ad(good)
    bad = tmp_path / "bad.h5ad"
    bad.write_bytes(good.read_bytes()[:100])
    before = good.stat().st_mtime
    marked = mark_damaged(tmp_path)
    assert [p for p, _ in marked] == [bad]
    assert os.stat(bad).st_mtime == 0 and good.stat().st_mtime == before
