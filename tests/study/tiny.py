"""A tiny study on the tiny toyworld, for the tests of study execution (executors, claims, status).

`tiny_world` builds the toyworld once per test session; `write_tiny_spec` writes a spec with
the cpu-nano rung, seq_len 32 and a few thousand tokens per run, so a run trains in about a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthscale.toyworld import ToyworldConfig, build_toyworld


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory):
    """The tiny toyworld corpora (built once per session)."""
    return build_toyworld(tmp_path_factory.mktemp("toyworld"), ToyworldConfig.preset(size="tiny"), progress=False)


def write_tiny_spec(path: Path, world, budgets: list[int], *, name: str = "tiny", ratios: tuple[str, ...] = ("1/3",),
                    executor: dict[str, Any] | None = None) -> Path:
    """Write a study spec over ``world``: natural + hq at ``ratios`` (none: natural only), cpu-nano, ``budgets``."""
    spec = {
        "name": name,
        "corpora": {"natural": str(world.natural), "synthetic": {"hq": str(world.synthetic["hq"])}},
        "eval": {"web": str(world.eval["web"])},
        "tokenizer": {"vocab_size": 384},
        "recipes": [{"kind": "natural"}] + ([{"kind": "hq", "ratios": list(ratios)}] if ratios else []),
        "models": ["cpu-nano"],
        "budgets": budgets,
        "training": {"seq_len": 32, "batch_size": 8},
        "evaluation": {"max_tokens_per_domain": 512},
        "analysis": {"bootstrap": 0},
        "executor": executor or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def statuses(study_dir: Path) -> dict[str, dict]:
    """run_id -> status.json of every run folder of the study."""
    return {d.name: json.loads((d / "status.json").read_text()) for d in sorted((study_dir / "runs").glob("*"))
            if (d / "status.json").exists()}


def history_events(run_dir: Path) -> list[str]:
    """The event names of a run's history.jsonl."""
    path = run_dir / "history.jsonl"
    return [json.loads(line)["event"] for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def training_run(study: Path, budget: int):
    """(run_id, status) of a run of ``budget`` tokens that is past its first logged step, else None."""
    for run_id, status in statuses(study).items():
        training = (study / "runs" / run_id / "metrics.jsonl").exists()
        if status["state"] == "running" and f"-{budget}-" in run_id and training:
            return run_id, status
    return None
