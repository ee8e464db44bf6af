"""study status (counts, progress, ETA, stalled runs, recent failures), the spec's executor
section (validation, resource rules) and the cluster docs' specs (they validate)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from synthscale.errors import ConfigError
from synthscale.study import claims
from synthscale.study.executors import resources_for
from synthscale.study.spec import parse_spec
from synthscale.study.spec_executor import ExecutorSettings
from synthscale.study.status import format_status, study_status

ROOT = Path(__file__).resolve().parents[2]
BASE = {"name": "t", "corpora": {"natural": "n.jsonl"}, "eval": {"web": "w.jsonl"},
        "recipes": [{"kind": "natural"}], "models": ["cpu-nano"], "budgets": [4096]}


def _run(study: Path, run_id: str, status: dict, metrics: list[dict] | None = None) -> Path:
    run_dir = study / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps(status))
    if metrics:
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return run_dir


def test_status_counts_progress_eta_stalled_and_failures(tmp_path: Path) -> None:
    study = tmp_path / "study"
    plan = [{"run_id": r, "model": "cpu-nano", "recipe": "natural", "tokens": 4096} for r in "abcde"]
    study.mkdir()
    (study / "plan.json").write_text(json.dumps(plan))
    (study / "spec.resolved.json").write_text(json.dumps({"name": "demo"}))
    done = _run(study, "a", {"state": "done", "finished": time.time(), "summary": {"final_loss": 3.5},
                             "checkpoint": {"file": "checkpoints/final.safetensors", "bytes": 4}})
    (done / "eval.json").write_text(json.dumps({"evals": [{"budget": 4096, "tokens": 4096, "domains": {}}]}))
    (done / "checkpoints").mkdir()
    (done / "checkpoints" / "final.safetensors").write_bytes(b"1234")  # a done run's artifacts (sizes only here)
    live = _run(study, "b", {"state": "running"}, [{"tokens": 512, "loss": 5.0, "tokens_per_s": 100.0},
                                                   {"tokens": 1024, "loss": 4.25, "tokens_per_s": 512.0}])
    dead = _run(study, "c", {"state": "running"})
    _run(study, "d", {"state": "failed", "reason": "diverged", "error": "RunError: training diverged",
                      "log_tail": ["Traceback", "RunError: loss is nan at step 3"], "failed_at": time.time()})
    claim = claims.try_claim(live / "claim.json")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (dead / "claim.json").write_text(json.dumps({**claims.holder_identity(), "pid": gone.pid, "token": "x",
                                                 "heartbeat": time.time()}))
    try:
        status = study_status(study)
    finally:
        claim.release()
    assert status.counts == {"done": 1, "incomplete": 0, "running": 1, "stalled": 1, "pending": 1, "failed": 1}
    running = next(r for r in status.runs if r.run_id == "b")
    assert (running.tokens_done, running.loss, running.eta_s) == (1024, 4.25, 6.0)
    text = format_status(status)
    assert "study demo" in text and "5 runs: 1 done, 1 running, 1 stalled, 1 pending, 1 failed" in text
    line_b = next(line for line in text.splitlines() if line.strip().startswith("b "))
    assert "25.0%" in line_b and "1024/4096" in line_b and "4.250" in line_b and "0:06" in line_b
    assert "d: diverged: RunError: training diverged" in text and "loss is nan at step 3" in text
    assert "--retry-failed" in text
    assert json.loads(json.dumps(status.to_dict()))["counts"]["stalled"] == 1
    assert "e " in format_status(status, show_all=True)
    assert "no planned runs" in format_status(study_status(tmp_path / "nothing"))


def test_executor_section_is_validated() -> None:
    spec = parse_spec({**BASE, "executor": {"kind": "ray", "ray": {"address": "auto"}}})
    assert spec.executor.kind == "ray" and spec.executor.ray.address == "auto"
    with pytest.raises(ConfigError, match=r"executor\.slurm\.partiton: unknown field \(did you mean 'partition'\?\)"):
        parse_spec({**BASE, "executor": {"slurm": {"partiton": "gpu"}}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"executor\.kind: Input should be 'local', 'slurm' or 'ray'"):
        parse_spec({**BASE, "executor": {"kind": "k8s"}})
    with pytest.raises(ConfigError, match=r"stale_after_s \(60\) must be at least 3 x heartbeat_s \(30\)"):
        parse_spec({**BASE, "executor": {"stale_after_s": 60}})
    with pytest.raises(ConfigError, match=r"executor\.resources\.0\.gpus: Input should be greater than or equal to 0"):
        parse_spec({**BASE, "executor": {"resources": [{"gpus": -1}]}})


def test_resources_follow_model_size_and_flops() -> None:
    settings = ExecutorSettings()
    small = resources_for({"params_nonembedding": 98_624, "train_flops_per_token": 1.45e7}, 1_000_000, settings)
    # 10 + 2 * 1.45e13 / (4 cores * 1e10) / 60 = 22.1 minutes
    assert (small.gpus, small.cpus, small.mem_gb, small.time_min) == (0, 4, 8, 23)
    mid = resources_for({"params_nonembedding": 100_688_640, "train_flops_per_token": 9.02e8}, 10**10, settings)
    # 10 + 2 * 9.02e18 / 1e14 / 60 = 3016.7 minutes -> clamped to 2880
    assert (mid.gpus, mid.cpus, mid.time_min) == (1, 8, 2880)
    big = resources_for({"params_nonembedding": 2.8e9, "train_flops_per_token": 1.86e10}, 10**8, settings)
    assert (big.gpus, big.cpus, big.mem_gb) == (1, 16, 128) and big.time_min == 10 + 620


def test_cluster_doc_specs_validate() -> None:
    text = (ROOT / "docs" / "cluster.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]
    kinds = [parse_spec(b, "docs/cluster.md").executor.kind for b in blocks]
    assert kinds == ["slurm", "ray"]
