"""Shared fixtures: where the public data and reference outputs live (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: ``../shared`` beside the repository, or the folder named by GENEGRAPH_SHARED.
SHARED = Path(os.environ.get("GENEGRAPH_SHARED", REPO.parent / "shared")).resolve()


def _shared_subdir(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent (set GENEGRAPH_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real public datasets (read-only)."""
    return _shared_subdir("data")


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """``../shared/reference``: outputs of the original R CS-CORE, SPARK-X and SCTransform."""
    return _shared_subdir("reference")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (the CI machines are small and shared; results do not depend on it)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
