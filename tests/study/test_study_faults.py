"""Fail loudly, lose nothing: fault injection on a finished tiny study, and the exit codes of `study run`.

For each artifact of a run (final checkpoint, eval.json, status.json, metrics.jsonl) and of the
study (results.parquet, results.csv, analysis.json, and more), delete it, then corrupt it, then
run `synthscale study run` again: it must end with results identical to the undamaged study
(every row, the same numbers, the same analysis) and exit 0, or exit 2 with one line naming the
file; never fewer rows and exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from synthscale.study.artifacts import HashCache, check_run, read_evals
from synthscale.errors import InputError

from tests.conftest import run_cli
from tests.study.tiny import tiny_world, write_tiny_spec  # noqa: F401 (fixture)

RUN_ARTIFACTS = ("checkpoints/final.safetensors", "eval.json", "status.json", "metrics.jsonl")


@pytest.fixture(scope="module")
def finished(tiny_world, tmp_path_factory):  # noqa: F811
    """A finished tiny study (4 runs, one eval domain: 8 result rows) and its undamaged outputs."""
    root = tmp_path_factory.mktemp("finished")
    spec = write_tiny_spec(root / "spec.yaml", tiny_world, [2048, 4096])
    raw = yaml.safe_load(spec.read_text())
    raw["training"]["threads"] = 1  # a retrained run must match bit for bit: same threads as the first time
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = run_cli("study", "run", str(spec), "--out", str(root / "study"), "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "(8 of 8 planned rows, 4 of 4 runs)" in res.stdout
    study = root / "study"
    import pandas as pd

    return {"spec": spec, "study": study, "csv": (study / "results.csv").read_bytes(),
            "parquet": pd.read_parquet(study / "results.parquet"),
            "analysis": json.loads((study / "analysis.json").read_text()),
            "runs": sorted(p.name for p in (study / "runs").iterdir())}


def copy_study(finished, tmp_path: Path) -> Path:
    study = tmp_path / "study"
    shutil.copytree(finished["study"], study)
    return study


def rerun(finished, study: Path):
    return run_cli("study", "run", str(finished["spec"]), "--out", str(study), "--quiet")


def assert_identical(finished, study: Path, res) -> None:
    assert res.returncode == 0, res.stdout + res.stderr
    assert "(8 of 8 planned rows, 4 of 4 runs)" in res.stdout, res.stdout
    assert (study / "results.csv").read_bytes() == finished["csv"]
    import pandas as pd

    assert pd.read_parquet(study / "results.parquet").equals(finished["parquet"])
    assert json.loads((study / "analysis.json").read_text()) == finished["analysis"]
    assert (study / "report" / "report.html").is_file()


def damage(path: Path, how: str) -> None:
    """Delete ``path``, or corrupt it the way disks and people do (same size for a checkpoint)."""
    if how == "delete":
        path.unlink()
    elif path.suffix == ".safetensors":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte deep in the weights: the header still reads
        path.write_bytes(bytes(data))
    elif path.suffix in (".json", ".parquet"):
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])  # cut short
    else:
        path.write_bytes(b"\x00\xffgarbage, not what was written\n")


@pytest.mark.parametrize("how", ["delete", "corrupt"])
def test_damaged_run_artifacts_are_redone_and_results_are_identical(finished, tmp_path: Path, how: str) -> None:
    study = copy_study(finished, tmp_path)
    damaged = dict(zip(finished["runs"], RUN_ARTIFACTS))  # one artifact per run
    for run_id, name in damaged.items():
        damage(study / "runs" / run_id / name, how)

    status = run_cli("study", "status", str(finished["spec"]), "--out", str(study))
    assert status.returncode == 0 and "4 runs: " in status.stdout
    eval_run = next(r for r, n in damaged.items() if n == "eval.json")
    assert f"{eval_run}: eval.json: run evaluation is {'missing' if how == 'delete' else 'damaged'}" in status.stdout

    res = rerun(finished, study)
    assert_identical(finished, study, res)
    warnings = res.stderr
    checkpoint_run = next(r for r, n in damaged.items() if n.startswith("checkpoints"))
    assert f"run {eval_run} is incomplete: eval.json" in warnings and "re-evaluated from its checkpoint" in warnings
    assert f"run {checkpoint_run} is incomplete: checkpoints/final.safetensors is " \
           f"{'missing' if how == 'delete' else 'damaged'}" in warnings and "it will be retrained" in warnings
    status_run = next(r for r, n in damaged.items() if n == "status.json")
    assert f"run {status_run}: status.json is {'missing' if how == 'delete' else 'damaged'}" in warnings
    history = [json.loads(line)["event"] for line in (study / "runs" / eval_run / "history.jsonl").read_text()
               .splitlines()]
    assert history[-3:] == ["incomplete", "started", "done"]  # evaluated again, not trained
    assert "evaluation only" in (study / "runs" / eval_run / "history.jsonl").read_text()
    if how == "delete":  # and now nothing is left to do (once is enough to check)
        again = rerun(finished, study)
        assert again.returncode == 0 and "trained 0 runs, skipped 4" in again.stdout and not again.stderr.strip()


@pytest.mark.parametrize("how", ["delete", "corrupt"])
def test_damaged_study_outputs_are_rebuilt_identically(finished, tmp_path: Path, how: str) -> None:
    study = copy_study(finished, tmp_path)
    for name in ("results.parquet", "results.csv", "analysis.json"):
        damage(study / name, how)
    res = rerun(finished, study)
    assert_identical(finished, study, res)
    assert "trained 0 runs, skipped 4 finished runs" in res.stdout


def test_other_damage_is_repaired_too(finished, tmp_path: Path) -> None:
    """Cases the issue did not list: prepared data, the report's key, the plan, logs, a run's config."""
    study = copy_study(finished, tmp_path)
    prepared = study / "prepared"
    for path in [*sorted((prepared / "shards").glob("natural-*.json")), *sorted((prepared / "eval").glob("*")),
                 *sorted(prepared.glob("tokenizer-*.json")), study / "report" / "inputs.json", study / "plan.json",
                 study / "baselines.json", study / "runs" / finished["runs"][0] / "history.jsonl",
                 study / "runs" / finished["runs"][1] / "config.json"]:
        damage(path, "corrupt")
    (study / "report" / "report.md").unlink()
    res = rerun(finished, study)
    assert_identical(finished, study, res)
    assert (study / "report" / "report.md").is_file()
    assert "the prepared token shard is damaged; building it again" in res.stderr


def test_report_falls_back_to_the_csv_and_says_so(finished, tmp_path: Path) -> None:
    study = copy_study(finished, tmp_path)
    damage(study / "results.parquet", "corrupt")
    res = run_cli("report", str(study))
    assert res.returncode == 0, res.stderr
    assert "warning: results.parquet is damaged, so this report was built from results.csv" in res.stderr
    assert "results.parquet is damaged" in (study / "report" / "report.md").read_text()
    damage(study / "results.csv", "delete")
    res = run_cli("report", str(study))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "results.parquet: results table is damaged" in res.stderr and "synthscale study run SPEC" in res.stderr
    res = run_cli("report", str(tmp_path / "no-such-study"))
    assert res.returncode == 2 and "no-such-study: no such study folder" in res.stderr


def test_study_run_exits_1_and_names_the_failed_runs(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    spec = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048, 4096], ratios=())
    raw = yaml.safe_load(spec.read_text())
    raw["training"]["lr"] = 1.0e6  # diverges...
    raw["training"]["schedule"] = "wsd"  # ... in the one run of the study (its decay branch is the other budget)
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    for attempt in range(2):  # the rerun does not retry it (no --retry-failed), and still exits 1
        res = run_cli("study", "run", str(spec), "--out", str(tmp_path / "study"), "--quiet")
        assert res.returncode == 1, res.stdout + res.stderr
        assert res.stderr.strip().splitlines()[-1] == \
            f"error: 1 of 1 runs failed; see {tmp_path / 'study' / 'failures.json'}"
        assert "(0 of 4 planned rows, 0 of 1 runs)" in res.stdout
        assert res.stdout.count("missing 4 rows of cpu-nano-natural-4096") == 1 and "failed: diverged" in res.stdout
    assert len(json.loads((tmp_path / "study" / "failures.json").read_text())) == 1


# --- the artifact check itself -------------------------------------------------------------------

def _eval_file(path: Path, records) -> Path:
    path.write_text(json.dumps({"evals": records}))
    return path


def test_eval_records_must_hold_every_budget_and_domain(tmp_path: Path) -> None:
    good = {"web": {"loss": 3.0, "bpb": 1.5}, "wiki": {"loss": 3.5, "bpb": 1.7}}
    path = _eval_file(tmp_path / "eval.json", [{"budget": 100, "tokens": 96, "domains": good},
                                               {"budget": 200, "tokens": 192, "domains": good}])
    assert [r["budget"] for r in read_evals(path, [100, 200], ["web", "wiki"])] == [100, 200]
    with pytest.raises(InputError, match="no evaluation at budget 300"):
        read_evals(path, [100, 300], ["web"])
    with pytest.raises(InputError, match="no 'code' domain at budget 100"):
        read_evals(path, [100], ["code", "web"])
    _eval_file(path, [{"budget": 100, "tokens": 96, "domains": {"web": {"loss": float("nan"), "bpb": 1.0}}}])
    with pytest.raises(InputError, match="'web' at budget 100: loss is nan, not a finite number"):
        read_evals(path, [100], ["web"])
    _eval_file(path, [{"budget": 100, "tokens": 96, "domains": good}] * 2)
    with pytest.raises(InputError, match="budget 100 is evaluated twice"):
        read_evals(path, [100], ["web"])
    path.write_text('{"evals": {}}')
    with pytest.raises(InputError, match="has no list 'evals'"):
        read_evals(path, [100], ["web"])


def test_checkpoint_must_match_the_recorded_hash(tmp_path: Path) -> None:
    from synthscale.study.artifacts import checkpoint_record

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _eval_file(run / "eval.json", [{"budget": 64, "tokens": 64, "domains": {"web": {"loss": 1.0, "bpb": 1.0}}}])
    ckpt = run / "checkpoints" / "final.safetensors"
    ckpt.write_bytes(b"weights v1")
    status = {"state": "done", "checkpoint": checkpoint_record(run)}
    hashes = HashCache(tmp_path / "hashes.json")
    assert check_run(run, status, [64], ["web"], hashes).ok
    hashes.save()
    assert HashCache(tmp_path / "hashes.json").sha256(ckpt) == status["checkpoint"]["sha256"]
    recorded_ns = status["checkpoint"]["stat"][1]
    ckpt.write_bytes(b"weights v2")  # same size, other bytes (and a later mtime, as any rewrite has)
    os.utime(ckpt, ns=(recorded_ns + 10**9, recorded_ns + 10**9))  # explicit: file times tick coarsely
    check = check_run(run, status, [64], ["web"], HashCache(tmp_path / "hashes.json"))
    assert not check.ok and "sha256 differs" in check.problem and check.action == "retrained"
    os.utime(ckpt, ns=(recorded_ns, recorded_ns))  # the recorded (size, mtime, inode): trusted, not hashed
    assert check_run(run, status, [64], ["web"]).ok
    ckpt.write_bytes(b"weights v1")
    (run / "eval.json").unlink()
    check = check_run(run, status, [64], ["web"])
    assert check.problem == "eval.json: run evaluation is missing" and check.reevaluable
    assert not check_run(run, status, [32, 64], ["web"]).reevaluable  # wsd branches are not kept: retrain
    legacy = {"state": "done"}  # finished before hashes were recorded: the header must read
    _eval_file(run / "eval.json", [{"budget": 64, "tokens": 64, "domains": {"web": {"loss": 1.0, "bpb": 1.0}}}])
    assert "checkpoint is damaged" in check_run(run, legacy, [64], ["web"]).problem


def test_study_outputs_are_written_with_the_mode_a_plain_open_gives(finished) -> None:
    import stat

    from synthscale._io import current_umask

    want = 0o666 & ~current_umask()  # the umask the fixture's study ran with (this process's, inherited)
    study = finished["study"]
    files = [study / "results.csv", study / "results.parquet", study / "analysis.json", study / "plan.json",
             *sorted((study / "report").glob("*")), *sorted((study / "prepared" / "shards").glob("*"))]
    assert any(p.suffix == ".png" for p in files) and len(files) > 10
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.is_file()} == \
        {p.name: oct(want) for p in files if p.is_file()}
