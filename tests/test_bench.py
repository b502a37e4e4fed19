"""Every benchmark script still imports and parses its arguments (their figures are measured by running them, never
in tests; this only catches a bench left behind by a library change)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_bench_script_starts(script):
    run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage" in run.stdout.lower()


def test_musegnn_epoch_bench_runs_a_tiny_panel(tmp_path):
    """In its own process: the bench sets torch up as a training job does (denormals flushed on this thread)."""
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(BENCH / "train_epoch.py"), "--scale", "0.0005", "--genes", "60", "--epochs",
                    "1", "--warmup", "0", "--threads", "1", "--json", str(out)], check=True, capture_output=True,
                   timeout=300)
    result = json.loads(out.read_text())
    assert result["n_parameters"] == result["n_parameters_formula"] and len(result["s_per_epoch"]) == 1
