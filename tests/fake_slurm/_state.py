"""Shared state of the fake SLURM commands: a folder named by FAKE_SLURM_STATE holding the call log
and one file per job (name, return code)."""

import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_SLURM_STATE"])
JOBS = STATE / "jobs"
ACCOUNT = os.environ.get("FAKE_SLURM_ACCOUNT", "mylab")


def log_call() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "calls.jsonl", "a") as fh:
        fh.write(json.dumps([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\n")


def job_states(name: str | None) -> list[str]:
    """``id|STATE`` lines for the jobs whose job name is ``name`` (all jobs when None)."""
    lines = []
    for meta in sorted(JOBS.glob("*.json"), key=lambda p: int(p.stem)):
        job = json.loads(meta.read_text())
        if name is not None and job["name"] != name:
            continue
        rc_file = JOBS / f"{meta.stem}.rc"
        if job.get("rejected"):
            state = "FAILED"
        elif rc_file.exists() and rc_file.read_text().strip():
            state = "COMPLETED" if rc_file.read_text().strip() == "0" else "FAILED"
        else:
            state = "RUNNING"
        lines.append(f"{meta.stem}|{state}")
    return lines
