"""study/executors: the same runs through the local pool (2 workers) and Ray (local instance).
A killed worker fails only its run; --retry-failed retries only that run; `study status` shows
progress while runs train. (Slurm and submitit: test_study_slurm.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from synthscale.study.runner import run_study
from synthscale.study.spec import load_spec
from synthscale.study.status import format_status, study_status

from tests.conftest import ROOT, run_cli
from tests.study.tiny import (  # noqa: F401 (fixture)
    history_events,
    statuses,
    tiny_world,
    training_run,
    wait_for,
    write_tiny_spec,
)


def _started_pid(run_dir: Path) -> int | None:
    """The pid of the last worker that started the run (None if none did)."""
    starts = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()
              if json.loads(line)["event"] == "started"] if (run_dir / "history.jsonl").exists() else []
    return starts[-1]["pid"] if starts else None


def _overlap(study: Path) -> bool:
    """True if two runs trained at the same time in different processes (from their histories)."""
    spans = []
    for run_dir in (study / "runs").iterdir():
        events = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
        starts = [e for e in events if e["event"] == "started"]
        ends = [e for e in events if e["event"] in ("done", "failed")]
        if starts and ends:
            spans.append((starts[-1]["time"], ends[-1]["time"], starts[-1]["pid"]))
    return any(a[2] != b[2] and a[0] < b[1] and b[0] < a[1] for a in spans for b in spans)


def test_local_pool_parallel_status_killed_worker_and_retry(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    spec_path = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048, 32768])
    study = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "synthscale.cli", "study", "run", str(spec_path), "--out",
                                   str(study), "--executor", "local", "--workers", "2", "--no-report"],
                                  stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            run_id, status = wait_for(lambda: training_run(study, 32768), 180, "a long run to start training")
            text = format_status(study_status(study))  # what `study status` prints, during the run
            assert run_id in text and "running" in text and "%" in text and "/32768" in text
            os.kill(status["pid"], signal.SIGKILL)  # the worker dies mid-run (as under the OOM killer)
            # a run failed: the driver finishes the others, then exits 1 (a pipeline must not take this for success)
            assert driver.wait(timeout=240) == 1, (tmp_path / "driver.log").read_text()
        finally:
            driver.kill()
    final = statuses(study)
    failed = [r for r, s in final.items() if s["state"] == "failed"]
    assert len(failed) == 1, final
    run_id = failed[0]  # the run the worker held when it was killed (normally the one seen training)
    killed = final.pop(run_id)
    assert killed["reason"] == "killed" and "SIGKILL" in killed["error"]
    assert _started_pid(study / "runs" / run_id) in (status["pid"], None)
    assert any(run_id in line for line in killed["log_tail"]) or not killed["log_tail"]
    assert all(s["state"] == "done" for s in final.values()) and len(final) == 3
    assert _overlap(study), "two workers should have trained runs at the same time"
    assert [f["run_id"] for f in json.loads((study / "failures.json").read_text())] == [run_id]
    assert set(pd.read_csv(study / "results.csv")["run_id"]) == set(final)
    assert "killed" in (tmp_path / "driver.log").read_text()
    assert f"error: 1 of 4 runs failed; see {study / 'failures.json'}" in (tmp_path / "driver.log").read_text()

    spec, _ = load_spec(spec_path)
    again = run_study(spec, study, progress=False, report=False, executor="local", workers=2)
    assert (again.trained, again.skipped, again.not_retried) == (0, 3, 1)  # failed runs are not retried by default
    before = history_events(study / "runs" / run_id)
    assert before[-1] == "failed" and "retry" not in before

    retried = run_study(spec, study, progress=False, report=False, executor="local", workers=2, retry_failed=True)
    assert (retried.trained, retried.skipped, retried.failed) == (1, 3, [])
    assert history_events(study / "runs" / run_id) == [*before, "retry", "started", "done"]
    assert pd.read_csv(study / "results.csv")["run_id"].nunique() == 4
    assert json.loads((study / "failures.json").read_text()) == []
    shown = run_cli("study", "status", str(spec_path), "--out", str(study))
    assert shown.returncode == 0 and "4 runs: 4 done" in shown.stdout


def test_ray_local_instance(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("ray", reason="ray is not installed (pip install 'synthscale[ray]')")
    spec_path = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048],
                                executor={"kind": "ray", "resources": [{"cpus": 1, "mem_gb": 1}]})
    spec, _ = load_spec(spec_path)
    outcome = run_study(spec, tmp_path / "study", progress=False, report=False)
    assert outcome.executor == "ray (local instance)" and outcome.trained == 2 and not outcome.failed
    final = statuses(tmp_path / "study")
    assert all(s["state"] == "done" and s["pid"] != os.getpid() for s in final.values())  # ran in Ray workers
    assert pd.read_csv(tmp_path / "study" / "results.csv")["run_id"].nunique() == 2
