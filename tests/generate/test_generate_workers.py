"""generate across workers: K disjoint parts by a stable hash, each resumable, merged into one output.

For real, no mocks: two local worker processes (through the CLI), a local Ray instance,
submitit's local executor (Slurm's code path), and a worker SIGKILLed mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthscale.corpus import read_documents
from synthscale.errors import ConfigError
from synthscale.generate import GateConfig, GenerateJob, run_generation
from synthscale.generate.commands import generate_command
from synthscale.generate.job_config import PARTITION_KEY
from synthscale.generate.plan import part_of
from synthscale.generate.parts import part_dir
from synthscale.generate.workers import generate_with_workers
from synthscale.toyworld import ToyworldConfig, World, build_toyworld
from synthscale.toyworld.backend import ToyworldBackend
from synthscale.toyworld.textbook import topic_catalogue

from tests.conftest import processes_mentioning

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = dict(style="hq", backend="toyworld", model=None, gates="off", samples=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_toyworld(tmp_path_factory.mktemp("world"), ToyworldConfig.preset("tiny", seed=2), progress=False)


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory):
    """The K=1 output: id -> text."""
    out = tmp_path_factory.mktemp("k1") / "out"
    generate_command(str(world.natural), out=str(out), progress=False, **OPTIONS)
    return {d.id: d.text for d in read_documents(out / "shards")}


def cli(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "synthscale.cli", "generate", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def merged(out: Path) -> list:
    return list(read_documents(out / "shards"))


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock" and p.suffix != ".log"}


def test_part_of_is_a_stable_hash_and_parts_are_disjoint_and_complete():
    assert part_of("web-000001", 2) == part_of("web-000001", 2)
    assert [part_of(f"web-{i:06d}", 3) for i in range(8)] == [2, 0, 0, 1, 1, 0, 2, 0]  # not Python's hash()
    counts = [0, 0, 0]
    for i in range(3000):
        counts[part_of(f"doc-{i}", 3)] += 1
    assert all(900 < c < 1100 for c in counts)


def test_topic_parts_keep_the_global_topic_indices(world, tmp_path):
    topics = tmp_path / "topics.txt"
    topics.write_text("\n".join(t.text for t in topic_catalogue(World.load(world.world))[:12]) + "\n")
    backend = ToyworldBackend.from_world_file(world.world)
    ids = []
    for part in range(3):
        job = GenerateJob(out=str(tmp_path / f"p{part}"), style="textbook", topics=str(topics), part=part, parts=3,
                          gates=GateConfig.off())
        run_generation(job, backend, progress=False)
        ids.append({d.id for d in read_documents(tmp_path / f"p{part}" / "shards")})
        assert all(part_of(i.split("/")[1], 3) == part for i in ids[-1])
    whole = run_generation(GenerateJob(out=str(tmp_path / "all"), style="textbook", topics=str(topics),
                                       gates=GateConfig.off()), backend, progress=False)
    assert sum(map(len, ids)) == whole["written"] == 12
    assert set().union(*ids) == {f"textbook/{i:07d}" for i in range(12)}
    (tmp_path / "p0" / "part.json").write_text(json.dumps({"part": 0, "parts": 3, "key": PARTITION_KEY}))
    with pytest.raises(ConfigError, match="holds part 0 of 3, not part 1 of 3"):
        run_generation(GenerateJob(out=str(tmp_path / "p0"), style="textbook", topics=str(topics), part=1, parts=3,
                                   gates=GateConfig.off()), backend, progress=False)


def test_two_local_workers_from_the_cli_give_the_same_corpus_as_one(world, reference, tmp_path):
    out = tmp_path / "out"
    args = ["--input", str(world.natural), "--style", "hq", "--backend", "toyworld", "--gates", "off",
            "--samples", "2", "--out", str(out), "--workers", "2", "--executor", "local", "--quiet"]
    proc = cli(*args)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    docs = merged(out)
    assert len(docs) == len({d.id for d in docs}) == len(reference) == summary["written"] == summary["requests"]
    assert {d.id: d.text for d in docs} == reference  # same ids and, with a deterministic backend, same texts
    assert summary["workers"]["parts"] == 2 and summary["this_run"]["answered"] == len(reference)
    parts = [{d.id for d in read_documents(part_dir(out, k, 2) / "shards")} for k in range(2)]
    assert parts[0] and parts[1] and not parts[0] & parts[1]
    assert all(part_of(i.split("/")[1].split("~")[0], 2) == k for k in range(2) for i in parts[k])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "complete" and [p["state"] for p in manifest["parts"]] == ["complete"] * 2
    assert sum(s["documents"] for s in manifest["shards"]) == len(reference)
    for entry in manifest["shards"]:  # the merged view is the parts' shards themselves
        assert os.path.samefile(out / entry["file"], out / entry["part_file"])
    card = (out / "dataset_card.md").read_text()
    assert "generated in 2 parts" in card and f"| {len(reference)} | {len(reference)} | 0 | 0 |" in card
    assert json.loads((out / "generate_config.json").read_text())["identity"]["workers"]["parts"] == 2

    before = snapshot(out)
    again = generate_with_workers({**OPTIONS, "input": str(world.natural), "out": str(out)}, workers=2,
                                  progress=False)
    assert again["this_run"] == {"answered": 0, "failed": 0, "already_done": len(reference)}
    assert snapshot(out) == before  # nothing relaunched, nothing rewritten
    with pytest.raises(ConfigError, match="split over 2 workers; rerun with --workers 2"):
        generate_with_workers({**OPTIONS, "input": str(world.natural), "out": str(out)}, workers=3, progress=False)
    with pytest.raises(ConfigError, match="workers differs"):
        generate_command(str(world.natural), out=str(out), progress=False, **OPTIONS)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(world, tmp_path):
    out, clean = tmp_path / "killed", tmp_path / "clean"
    options = {**OPTIONS, "samples": 10, "shard_size": 50, "batch_size": 2}
    args = ["--input", str(world.natural), "--style", "hq", "--backend", "toyworld", "--gates", "off",
            "--samples", "10", "--shard-size", "50", "--batch-size", "2", "--out", str(out), "--workers", "2",
            "--quiet"]
    proc = cli(*args)
    victim = part_dir(out, 1, 2)
    journal = victim / "index" / "open.journal"
    deadline, pid = time.monotonic() + 60, None
    while time.monotonic() < deadline and proc.poll() is None:
        workers = processes_mentioning(str(victim / "task.json"))
        written = (victim / "manifest.json").exists() or (journal.exists() and journal.stat().st_size > 2000)
        if workers and written:
            pid = next(iter(workers))
            break
        time.sleep(0.02)
    assert pid is not None, "the worker finished before it could be killed"
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "1 of 2 workers did not finish (part 1: worker killed by SIGKILL;" in stderr
    assert (part_dir(out, 0, 2) / "_COMPLETE.json").exists() and not (victim / "_COMPLETE.json").exists()
    assert not (out / "manifest.json").exists()  # nothing merged from an unfinished split

    durable = durable_answers(victim)
    resumed = generate_with_workers({**options, "input": str(world.natural), "out": str(out)}, workers=2,
                                    progress=False)
    expected = generate_command(str(world.natural), out=str(clean), progress=False, **{**options, "batch_size": 64})
    docs = merged(out)
    assert resumed["requests"] == expected["requests"] == 800
    assert len(docs) == len({d.id for d in docs}) == 800
    assert {d.id: d.text for d in docs} == {d.id: d.text for d in read_documents(clean / "shards")}
    part0 = resumed["workers"]["per_part"][0]["requests"]
    # the finished part was not relaunched; the killed one asked only what it had not answered durably
    assert resumed["this_run"] == {"answered": 800 - part0 - durable, "failed": 0, "already_done": part0 + durable}


def durable_answers(folder: Path) -> int:
    """Requests whose answers are on disk: committed shards, plus the journal if it belongs to the next shard."""
    manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() \
        else {"shards": []}
    done = sum(len((folder / s["index"]).read_text().splitlines()) for s in manifest["shards"])
    journal = folder / "index" / "open.journal"
    if journal.exists():
        text = journal.read_text()
        lines = text[:text.rfind("\n") + 1].splitlines()  # a torn last line is not an answer
        if lines and json.loads(lines[0]).get("journal") == len(manifest["shards"]):
            done += len(lines) - 1
    return done


def test_ray_local_instance_gives_the_same_corpus(world, reference, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'synthscale[ray]')")
    out = tmp_path / "ray"
    summary = generate_with_workers({**OPTIONS, "input": str(world.natural), "out": str(out)}, executor="ray",
                                    workers=2, progress=False)
    assert summary["workers"]["executor"] == "ray" and summary["written"] == len(reference)
    assert {d.id: d.text for d in merged(out)} == reference


def test_submitit_local_executor_from_the_cli_gives_the_same_corpus(world, reference, tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'synthscale[slurm]')")
    out = tmp_path / "slurm"
    args = ["--input", str(world.natural), "--style", "hq", "--backend", "toyworld", "--gates", "off",
            "--samples", "2", "--out", str(out), "--workers", "2", "--executor", "slurm", "--quiet"]
    proc = cli(*args, "--slurm", "cluster=local", "--slurm", "timeout_min=10")
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["workers"]["executor"] == "slurm" and summary["written"] == len(reference)
    assert {d.id: d.text for d in merged(out)} == reference
    assert list((out / "slurm").glob("*_log.out"))  # submitit's job logs

    args[args.index(str(out))] = str(tmp_path / "bad")  # a fresh folder: its parts must be submitted
    bad = cli(*args, "--slurm", "cluster=local", "--slurm", "no_such_parameter=1")  # submitit refuses it
    _, stderr = bad.communicate(timeout=120)
    assert bad.returncode == 2 and "--executor slurm:" in stderr and "no_such_parameter" in stderr
    wrong_uses = ((["--slurm", "timeout_min"], "--slurm 'timeout_min': expected KEY=VALUE"),
                  (["--executor", "local", "--slurm", "timeout_min=10"], "--slurm: only with --executor slurm"),
                  (["--ray-address", "auto"], "--ray-address: only with --executor ray"))
    for extra, message in wrong_uses:
        wrong = cli(*args, *extra)
        _, stderr = wrong.communicate(timeout=120)
        assert wrong.returncode == 2 and message in stderr, stderr
