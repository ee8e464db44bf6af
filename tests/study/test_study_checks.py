"""What `study validate`, `study plan` and `study run` check before training: corpora exist and hold
text, budgets hold an optimizer step, eval domains have tokens; what `study plan` prints (tokens,
FLOPs, estimated time); the overall ETA of a run's progress."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from synthscale.errors import ConfigError
from synthscale.study.checks import check_spec_inputs
from synthscale.study.drive import RunProgress
from synthscale.study.executors.base import Resources, RunTask
from synthscale.study.spec import load_spec

from tests.conftest import run_cli
from tests.study.tiny import tiny_world, write_tiny_spec  # noqa: F401 (fixture)


def _spec(tmp_path: Path, world, **changes) -> Path:
    path = write_tiny_spec(tmp_path / "spec.yaml", world, [2048])
    raw = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _error_line(res) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_validate_finds_missing_empty_and_textless_corpora(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text(json.dumps({"id": "a", "text": "   "}) + "\n")
    (tmp_path / "other.jsonl").write_text(json.dumps({"id": "a", "body": "some text here"}) + "\n")
    spec = _spec(tmp_path, tiny_world, **{"corpora.natural": str(tmp_path / "empty.jsonl"),
                                          "corpora.synthetic": {"hq": str(tmp_path / "nope.jsonl.gz")},
                                          "eval": {"web": str(tmp_path / "blank.jsonl"),
                                                   "wiki": str(tmp_path / "other.jsonl")}})
    line = _error_line(run_cli("study", "validate", str(spec)))
    assert f"corpora.natural: {tmp_path / 'empty.jsonl'}: the file is empty" in line
    assert f"corpora.synthetic.hq: {tmp_path / 'nope.jsonl.gz'}: no such file or folder" in line
    assert f"eval.web: {tmp_path / 'blank.jsonl'}: the corpus holds no documents with text" in line
    assert f"eval.wiki: {tmp_path / 'other.jsonl'}:1: malformed record: field 'text' must be a string" in line
    spec_fixed = _spec(tmp_path, tiny_world, **{"eval": {"wiki": {"path": str(tmp_path / "other.jsonl"),
                                                                   "text_field": "body"}}})
    assert run_cli("study", "validate", str(spec_fixed)).returncode == 0  # text_field as the spec says


def test_budgets_below_one_optimizer_step_are_caught_before_training(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    spec = _spec(tmp_path, tiny_world, budgets=[100, 2048])  # batch 8 x seq_len 32 = 256 tokens a step
    line = _error_line(run_cli("study", "run", str(spec), "--out", str(tmp_path / "study")))
    assert line == ("error: budgets: 100 tokens is less than one optimizer step of model cpu-nano (batch_size 8 x "
                    "seq_len 32 = 256 tokens); use budgets of at least 256 tokens or a smaller training.batch_size")
    assert not (tmp_path / "study").exists()  # nothing prepared, nothing trained
    wsd = _spec(tmp_path, tiny_world, budgets=[200, 4096], **{"training.schedule": "wsd"})
    with pytest.raises(ConfigError, match="budgets: 200 tokens is less than one optimizer step"):
        check_spec_inputs(load_spec(wsd)[0])  # a decay branch too


def test_an_empty_natural_corpus_stops_study_run_at_once(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "empty.jsonl.gz").write_bytes(b"")
    spec = _spec(tmp_path, tiny_world, **{"corpora.natural": str(tmp_path / "empty.jsonl.gz")})
    line = _error_line(run_cli("study", "run", str(spec), "--out", str(tmp_path / "study")))
    assert line == f"error: corpora.natural: {tmp_path / 'empty.jsonl.gz'}: the file is empty"


def test_plan_finds_an_eval_domain_without_a_window_and_prints_tokens_flops_and_time(
        tiny_world, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "tiny_eval.jsonl").write_text(json.dumps({"id": "a", "text": "Brumholt lies on the Olm."}) + "\n")
    bad = _spec(tmp_path, tiny_world, eval={"web": str(tmp_path / "tiny_eval.jsonl")})
    assert run_cli("study", "validate", str(bad)).returncode == 0  # it has text; tokens are counted by plan
    line = _error_line(run_cli("study", "plan", str(bad), "--out", str(tmp_path / "bad")))
    assert f"eval.web: {tmp_path / 'tiny_eval.jsonl'}: " in line and "fewer than one eval window" in line

    spec = _spec(tmp_path, tiny_world)
    res = run_cli("study", "plan", str(spec), "--out", str(tmp_path / "study"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "run_id\tmodel\trecipe\ttokens\tFLOPs\tstate" and len(lines) == 1 + 2 + 2
    assert all(row.split("\t")[3] == "2048" and float(row.split("\t")[4]) > 0 for row in lines[1:3])
    assert lines[3].startswith("2 runs (2 to run, 0 done): 4,096 training tokens, ")
    assert lines[4].startswith("estimated time of the 2 runs to run: 0:00:0") and "GFLOP/s per CPU core" in lines[4]
    assert "on this machine" in lines[4]


def test_progress_shows_an_overall_eta(tmp_path: Path) -> None:
    tasks = []
    for i, tokens in enumerate((1000, 3000)):
        run_dir = tmp_path / f"r{i}"
        run_dir.mkdir()
        (run_dir / "config.json").write_text(json.dumps({"tokens": tokens}))
        tasks.append(RunTask(run_dir, Resources(0, 1, 1, 10)))
    bar = RunProgress(tasks, "test", enabled=False)
    start = bar._started
    assert bar.eta_s(0.0, now=start + 10) is None  # nothing trained yet: no rate, no ETA
    bar.finished(tasks[0], {"state": "done"})  # 1000 tokens done ...
    assert bar.eta_s(1000.0, now=start + 10) == pytest.approx(10.0)  # ... + 1000 running in 10 s: 2000 left
    assert bar.eta_s(3000.0, now=time.monotonic()) == 0.0
