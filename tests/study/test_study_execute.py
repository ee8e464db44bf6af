"""study/execute.py: one run folder claimed, trained, recorded; divergence and errors are
recorded as failures; a run left by a dead worker is taken over; a live holder is respected."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthscale.study import claims
from synthscale.study.execute import execute_run
from synthscale.study.run_folder import BUSY, DONE, FAILED, record_lost_worker, run_status
from synthscale.study.runner import plan_study, write_run_config
from synthscale.study.spec import load_spec

from tests.study.tiny import history_events, tiny_world, write_tiny_spec  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def planned(tiny_world, tmp_path_factory):  # noqa: F811
    """A planned tiny study (2 runs: natural and hq@1/3 at 2048 tokens), configs written."""
    root = tmp_path_factory.mktemp("execute")
    spec, _ = load_spec(write_tiny_spec(root / "spec.yaml", tiny_world, [2048]))
    runs, prepared = plan_study(spec, root / "study", progress=False)
    dirs = []
    for run in runs:
        write_run_config(run, prepared, spec, root / "study" / "runs" / run.run_id)
        dirs.append(root / "study" / "runs" / run.run_id)
    return dirs


def _copy_run(src: Path, dst: Path, **train_overrides) -> Path:
    dst.mkdir(parents=True)
    config = json.loads((src / "config.json").read_text())
    config["settings"]["train"].update(train_overrides)
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "status.json").write_text(json.dumps({"state": "pending"}))
    return dst


def test_diverged_run_is_failed_with_reason_and_log_tail(planned, tmp_path: Path) -> None:
    run_dir = _copy_run(planned[0], tmp_path / "nan-run", lr=1e30, grad_clip=0.0, warmup_frac=0.0)
    status = execute_run(run_dir, threads=1)
    assert status["state"] == FAILED and status["reason"] == "diverged"
    assert "RunError" in status["error"] and "diverged" in status["error"]
    assert any("RunError" in line for line in status["log_tail"])  # the traceback went to run.log
    assert run_status(run_dir)["state"] == FAILED
    assert history_events(run_dir) == ["started", "failed"]
    assert not (run_dir / "claim.json").exists() and not (run_dir / "eval.json").exists()


def test_raising_run_is_failed_and_done_run_is_not_redone(planned, tmp_path: Path) -> None:
    bad = _copy_run(planned[0], tmp_path / "bad-run", batch_size=4096)  # fewer tokens than one step
    status = execute_run(bad, threads=1)
    assert status["state"] == FAILED and status["reason"] == "error" and "ConfigError" in status["error"]
    assert execute_run(bad, threads=1)["state"] == FAILED and history_events(bad) == ["started", "failed"]
    assert execute_run(bad, threads=1, retry_failed=True)["state"] == FAILED  # retried: fails again
    assert history_events(bad) == ["started", "failed", "retry", "started", "failed"]

    good = planned[1]
    first = execute_run(good, threads=1)
    assert first["state"] == DONE and (good / "eval.json").exists()
    again = execute_run(good, threads=1)
    assert again["state"] == DONE and history_events(good) == ["started", "done"]


def test_run_left_running_by_dead_worker_is_taken_over(planned, tmp_path: Path) -> None:
    run_dir = _copy_run(planned[0], tmp_path / "orphan")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info = {**claims.holder_identity(), "pid": dead.pid, "token": "dead", "claimed": time.time(),
            "heartbeat": time.time()}
    (run_dir / "claim.json").write_text(json.dumps(info))
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "pid": dead.pid}))
    status = execute_run(run_dir, threads=1)
    assert status["state"] == DONE
    assert history_events(run_dir) == ["taken_over", "started", "done"]


def test_live_holder_is_respected(planned, tmp_path: Path) -> None:
    run_dir = _copy_run(planned[0], tmp_path / "held")
    with claims.try_claim(run_dir / "claim.json", purpose="someone else"):
        assert execute_run(run_dir, threads=1)["state"] == BUSY
        assert record_lost_worker(run_dir, "killed", "x")["state"] == BUSY  # never overwrites a live run
    assert run_status(run_dir)["state"] == "pending" and history_events(run_dir) == []


HOLDER = """
import json, os, sys, time
from synthscale.study.claims import try_claim
run_dir, finish = sys.argv[1], sys.argv[2] == "finish"
claim = try_claim(run_dir + "/claim.json", purpose="another driver's worker").start_heartbeat()
print("holding", flush=True)
time.sleep(2.0)
if finish:
    with open(run_dir + "/status.json", "w") as f:
        json.dump({"state": "done", "note": "finished by the other worker"}, f)
    claim.release()
os._exit(0)  # without finish: dies holding the claim
"""


def test_driver_waits_for_live_holders_and_takes_over_dead_ones(planned, tmp_path: Path) -> None:
    import os

    from synthscale.study.drive import execute_tasks
    from synthscale.study.executors import Resources, RunTask
    from synthscale.study.executors.local import LocalExecutor

    from tests.conftest import ROOT

    finishing = _copy_run(planned[0], tmp_path / "held-finishing")
    dying = _copy_run(planned[0], tmp_path / "held-dying")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(d), mode], stdout=subprocess.PIPE, text=True,
                                env=env) for d, mode in ((finishing, "finish"), (dying, "die"))]
    assert [h.stdout.readline().strip() for h in holders] == ["holding", "holding"]
    tasks = [RunTask(d, Resources(gpus=0, cpus=1, mem_gb=1, time_min=10)) for d in (finishing, dying)]
    pool = LocalExecutor(workers=2, threads=1, heartbeat_s=1, stale_after_s=30, gpus=["7"])  # one GPU per worker
    counts = execute_tasks(pool, tasks, progress=False)
    for h in holders:
        h.wait()
    assert counts == {"done": 2}
    assert run_status(finishing)["note"] == "finished by the other worker" and history_events(finishing) == []
    assert history_events(dying) == ["taken_over", "started", "done"] and (dying / "eval.json").exists()
    assert run_status(dying)["cuda_visible_devices"] == "7"  # the worker's CUDA_VISIBLE_DEVICES


def test_prepare_is_locked_and_built_once(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    import threading

    from synthscale.study.prepare import PREPARE_CLAIM, prepare_study

    spec, _ = load_spec(write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048]))
    prep = tmp_path / "study" / "prepared"
    prep.mkdir(parents=True)
    other_driver = claims.try_claim(prep / PREPARE_CLAIM)
    result: dict = {}
    waiter = threading.Thread(target=lambda: result.update(data=prepare_study(spec, tmp_path / "study", False)))
    waiter.start()
    time.sleep(1.5)
    assert waiter.is_alive() and not (prep / "prepared.json").exists()  # waits for the holder
    other_driver.release()
    waiter.join(timeout=120)
    assert result["data"].shards and (prep / "prepared.json").exists() and not (prep / PREPARE_CLAIM).exists()
    built = {p: p.stat().st_mtime_ns for p in prep.rglob("*") if p.is_file() and p.name != "prepared.json"}
    again = prepare_study(spec, tmp_path / "study", progress=False)
    assert again.shards == result["data"].shards
    assert {p: p.stat().st_mtime_ns for p in built} == built  # nothing rebuilt


def test_the_train_command_runs_a_study_run_folder_through_the_same_path(planned, tmp_path: Path) -> None:
    """`synthscale train` on a study run's own shards, model and settings writes the same config.json (the
    same fields, the same resolved TrainConfig) and trains the same numbers as the study's run."""
    from tests.conftest import run_cli

    study_run = planned[0]
    config = json.loads((study_run / "config.json").read_text())
    train = config["settings"]["train"]
    out = tmp_path / "train-run"
    args = ["train", str(out), "--model", config["model"], "--tokens", str(train["tokens"]), "--seed",
            str(train["seed"]), "--seq-len", str(train["seq_len"]), "--batch-size", str(train["batch_size"]),
            "--lr", repr(train["lr"]), "--warmup-frac", repr(train["warmup_frac"]), "--threads", "1",
            "--device", "cpu", "--compile", str(train["compile"]).lower(), "--no-progress",
            *[a for name, prefixes in config["data"]["shards"].items() for a in ("--data", f"{name}={prefixes[0]}")],
            *[a for name, w in config["weights"].items() for a in ("--weight", f"{name}={w}")],
            *[a for d, p in config["data"]["eval_sets"].items() for a in ("--eval-set", f"{d}={p}")],
            "--eval-batch-size", str(config["settings"]["eval_batch_size"])]
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    mine = json.loads((out / "config.json").read_text())
    assert sorted(mine) == sorted(config) and sorted(mine["settings"]) == sorted(config["settings"])
    runtime = {"threads", "device"}
    assert {k: v for k, v in mine["settings"]["train"].items() if k not in runtime} == \
        {k: v for k, v in train.items() if k not in runtime}
    assert mine["settings"]["model_config"] == config["settings"]["model_config"]
    assert not (out / "train_request.json").exists()
    assert run_status(out)["state"] == DONE and history_events(out) == ["started", "done"]
    execute_run(study_run, threads=1)
    ours, theirs = (json.loads((d / "eval.json").read_text())["evals"] for d in (out, study_run))
    assert ours[-1]["domains"] == theirs[-1]["domains"]  # the same run, bit for bit
