"""study run is idempotent and restartable: SIGKILL the driver mid-study, run the same command
again, and every run completes exactly once with a complete results.csv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.conftest import ROOT
from tests.study.tiny import history_events, statuses, tiny_world, wait_for, write_tiny_spec  # noqa: F401 (fixture)


def _mid_study(study: Path) -> bool:
    states = [s["state"] for s in statuses(study).values()]
    return "done" in states and "running" in states


def test_sigkilled_driver_rerun_completes_each_run_exactly_once(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    spec_path = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048, 8192])
    study = tmp_path / "study"
    command = [sys.executable, "-m", "synthscale.cli", "study", "run", str(spec_path), "--out", str(study),
               "--executor", "local", "--workers", "2", "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(lambda: _mid_study(study), 180, "one run done and one running")
        finally:
            first.kill()  # SIGKILL: no cleanup; its workers are orphaned mid-run
            first.wait()
    assert first.returncode == -9
    assert not (study / "results.csv").exists()

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    final = statuses(study)
    assert len(final) == 4 and all(s["state"] == "done" for s in final.values()), final
    for run_id in final:
        events = history_events(study / "runs" / run_id)
        assert events.count("done") == 1, (run_id, events)
        assert events.count("started") == 1 + events.count("taken_over"), (run_id, events)
    results = pd.read_csv(study / "results.csv")
    assert results["run_id"].nunique() == 4 and len(results) == 4 * 2  # domains: web + mean
    assert "skipped" in second.stdout and "0 failed" in second.stdout
