"""study/executors/slurm.py: the runs through submitit's local executor (the Slurm code path,
with a preemption and requeue) and, when it can be set up here, a real single-node Slurm."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from synthscale.study.runner import run_study
from synthscale.study.spec import load_spec

from tests.conftest import ROOT, processes_mentioning
from tests.study.tiny import (  # noqa: F401 (fixture)
    history_events,
    statuses,
    tiny_world,
    training_run,
    wait_for,
    write_tiny_spec,
)


def test_submitit_local_executor_requeues_preempted_run(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'synthscale[slurm]')")
    spec_path = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048, 32768], ratios=(),
                                executor={"kind": "slurm", "resources": [{"cpus": 1, "mem_gb": 1}],
                                          "slurm": {"cluster": "local", "array_parallelism": 2}})
    spec, _ = load_spec(spec_path)
    study = tmp_path / "study"
    preempted: dict = {}

    def preempt() -> None:  # what Slurm does before a time limit or preemption: USR2 to the job
        try:
            run_id, status = wait_for(lambda: training_run(study, 32768), 180, "the long run to train")
            os.kill(status["pid"], signal.SIGUSR2)
            preempted["run_id"] = run_id
        except BaseException as e:  # noqa: BLE001 (reported by the main thread)
            preempted["error"] = e

    watcher = threading.Thread(target=preempt, daemon=True)
    watcher.start()
    outcome = run_study(spec, study, progress=False, report=False)
    watcher.join(timeout=5)
    assert "error" not in preempted, preempted.get("error")
    assert outcome.trained == 2 and not outcome.failed
    assert history_events(study / "runs" / preempted["run_id"]) == ["started", "interrupted", "started", "done"]
    assert any((study / "slurm").glob("*_submitted.pkl"))  # went through submitit's submission path


@pytest.fixture
def single_node_slurm(tmp_path: Path, monkeypatch):
    """A one-node Slurm cluster of this test's own (config, state, munge socket and key under a temp
    folder; its own ports), stopped after the test; the process list is then checked for its daemons."""
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'synthscale[slurm]')")
    folder = tmp_path / "slurm"
    env = {**os.environ, "SYNTHSCALE_SLURM_DIR": str(folder)}
    env.pop("SLURM_CONF", None)
    conf_entry = f"SLURM_CONF={folder / 'slurm.conf'}"  # in the environment of every process of its jobs
    script = str(ROOT / "scripts" / "slurm_single_node.sh")
    setup = subprocess.run([script], capture_output=True, text=True, timeout=420, env=env)
    try:
        if setup.returncode != 0:
            reason = (setup.stderr.strip().splitlines() or ["unknown"])[-1]
            print(f"single-node Slurm could not be set up: {reason}")
            pytest.skip(f"single-node Slurm could not be set up here: {reason}")
        started = processes_mentioning(str(folder))
        assert {"slurmctld", "slurmd", "munged"} <= {cmd.split()[0].rsplit("/", 1)[-1] for cmd in started.values()}
        monkeypatch.setenv("SLURM_CONF", setup.stdout.strip().split("=", 1)[1])
        yield folder
    finally:
        stop = subprocess.run([script, "stop"], capture_output=True, text=True, timeout=120, env=env)
        left = processes_mentioning(str(folder), conf_entry)  # its daemons and its jobs' processes
        assert stop.returncode == 0 and not left, f"the Slurm cluster is still running: {left} {stop.stderr}"


def test_the_slurm_script_stops_only_what_it_started(tmp_path: Path) -> None:
    """`stop` on a folder whose cluster is not running (or never was) stops nothing and succeeds."""
    script = str(ROOT / "scripts" / "slurm_single_node.sh")
    env = {**os.environ, "SYNTHSCALE_SLURM_DIR": str(tmp_path / "none")}
    (tmp_path / "none").mkdir()
    bystander = subprocess.Popen(["sleep", "60"])  # some other process, whose pid a stale pid file names
    try:
        (tmp_path / "none" / "slurmctld.pid").write_text(str(bystander.pid))
        res = subprocess.run([script, "stop"], capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 0, res.stderr
        assert bystander.poll() is None  # not this cluster's daemon: left alone
    finally:
        bystander.kill()
        bystander.wait()


def test_real_single_node_slurm(tiny_world, single_node_slurm, tmp_path: Path) -> None:  # noqa: F811
    spec_path = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048],
                                executor={"kind": "slurm", "resources": [{"cpus": 1, "mem_gb": 1}],
                                          "slurm": {"array_parallelism": 2}})
    spec, _ = load_spec(spec_path)
    outcome = run_study(spec, tmp_path / "study", progress=False, report=False)
    assert outcome.trained == 2 and not outcome.failed
    final = statuses(tmp_path / "study")
    assert all(s["state"] == "done" and s["job"] for s in final.values())  # ran inside Slurm jobs
    script = next((tmp_path / "study" / "slurm").glob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%2" in script and "#SBATCH --cpus-per-task=1" in script


def test_multi_process_run_is_launched_with_torchrun_inside_its_job(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'synthscale[slurm]')")
    # 2 "GPUs" per run: on this CPU machine torchrun starts 2 ranks that train one model with DDP over gloo
    spec_path = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048], ratios=(),
                                executor={"kind": "slurm", "resources": [{"gpus": 2, "cpus": 1, "mem_gb": 1}],
                                          "slurm": {"cluster": "local"}})
    spec, _ = load_spec(spec_path)
    outcome = run_study(spec, tmp_path / "study", progress=False, report=False)
    assert outcome.trained == 1 and not outcome.failed
    (status,) = statuses(tmp_path / "study").values()
    assert status["state"] == "done" and status["nproc"] == 2 and status["summary"]["world_size"] == 2
