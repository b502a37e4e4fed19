"""Torch set-up of a training job: threads and denormals flushed to zero in every worker thread (in a fresh process:
the setting is per thread and would leak into this test process's other numerical tests)."""

import subprocess
import sys

import pytest

from genegraph.device import resolve_device
from genegraph.errors import DataError

JOB = """
import torch
from genegraph.device import torch_job
flushed = torch_job(2)
assert torch.get_num_threads() == 2
tiny = torch.full((4096, 64), 1e-39)  # denormal in float32
out = tiny @ torch.ones(64, 64)  # runs on the worker threads too
print(flushed, float(out.abs().max()), float((torch.tensor([1e-39]) * 1.0).item()))
"""


def test_torch_job_flushes_denormals_in_every_thread():
    out = subprocess.run([sys.executable, "-c", JOB], capture_output=True, text=True, check=True).stdout.split()
    if out[0] != "True":
        pytest.skip("this CPU cannot flush denormals")
    assert float(out[1]) == 0.0 and float(out[2]) == 0.0


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(DataError, match="unsupported device"):
        resolve_device("tpu")
