"""generate/job + store: resumable sharded runs, manifest, failures, token target, card, SIGKILL recovery."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthscale.corpus import Document, read_documents, write_documents
from synthscale.errors import ConfigError
from synthscale.generate import Backend, GenerateJob, GenerationResult, get_style, request_seed, run_generation
from synthscale.generate.commands import generate_command
from synthscale.generate.gates import GateConfig
from synthscale.generate.store import OutputStore
from synthscale.tokens import encode_corpus, train_tokenizer
from synthscale.toyworld import ToyworldConfig, build_toyworld

SRC = Path(__file__).resolve().parents[2] / "src"
PROVENANCE = ("parent_id", "style", "generator", "prompt_hash", "sampling", "seed")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_toyworld(tmp_path_factory.mktemp("world"), ToyworldConfig.preset("tiny", seed=2), progress=False)


def run(world, out, style="hq", **options):
    options.setdefault("gates", "off")
    return generate_command(str(world.natural), style, "toyworld", None, str(out), progress=False, **options)


def shard_docs(out: Path) -> list[Document]:
    return list(read_documents(out / "shards"))


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def durable_answers(out: Path) -> int:
    """Requests whose answers are on disk: committed shards, plus the journal if it belongs to the next shard."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] != "complete"
    done = sum(len((out / s["index"]).read_text().splitlines()) for s in manifest["shards"])
    journal = out / "index" / "open.journal"
    if journal.exists():
        text = journal.read_text()
        lines = text[:text.rfind("\n") + 1].splitlines()  # a torn last line is not an answer
        if lines and json.loads(lines[0]).get("journal") == len(manifest["shards"]):
            done += len(lines) - 1  # (a journal already sealed into a shard is dropped on resume)
    return done


class UpperBackend(Backend):
    """Answers a rephrasing with its passage in capitals; stops the run (Ctrl-C) at batch ``interrupt_at``."""

    name, model, revision = "upper", "upper", "1"

    def __init__(self, interrupt_at: int | None = None):
        self.batches, self.interrupt_at = 0, interrupt_at

    def generate(self, requests):
        self.batches += 1
        if self.batches == self.interrupt_at:
            raise KeyboardInterrupt
        return [GenerationResult(r.request_id, r.document.text.upper(), "stop", 10, 5) for r in requests]


def test_a_run_writes_numbered_shards_a_manifest_a_summary_and_a_card(world, tmp_path):
    out = tmp_path / "out"
    summary = run(world, out, style="qa", max_docs=60, shard_size=25, batch_size=8)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == [f"shards/shard-{k:05d}.jsonl.gz" for k in range(3)]
    assert [s["tally"]["requests"] for s in manifest["shards"]] == [25, 25, 10]
    assert manifest["state"] == "complete" and manifest["stop_reason"] == "input exhausted"
    docs = shard_docs(out)
    assert len(docs) == len({d.id for d in docs}) == summary["written"] == 60 and summary["requests"] == 60
    style = get_style("qa")
    for d in docs:
        assert all(getattr(d, f) is not None for f in PROVENANCE), d.id
        assert d.style == "qa" and d.generator == summary["generator"] and d.prompt_hash == style.prompt_hash
        assert d.seed == request_seed(0, d.id) and d.sampling == style.sampling and d.id == f"qa/{d.parent_id}"
        assert d.meta["finish_reason"] == "stop" and "backend" not in d.meta  # the generator names it: toyworld@2
    assert summary["tokens"]["output"] > 0 and summary["throughput"]["output_tokens_per_s"] > 0
    assert json.loads((out / "summary.json").read_text())["written"] == 60
    card = (out / "dataset_card.md").read_text()
    for needed in (summary["generator"], style.prompt_hash, style.template.splitlines()[0], "| 60 | 60 | 0 | 0 |",
                   "temperature=0.7", "Quality gates", "GPU hours per billion"):
        assert needed in card, needed


def test_rerun_does_nothing_and_a_larger_max_docs_continues(world, tmp_path):
    out = tmp_path / "out"
    run(world, out, max_docs=30, shard_size=20)
    before = snapshot(out)
    again = run(world, out, max_docs=30, shard_size=20)
    assert again["this_run"] == {"answered": 0, "failed": 0, "already_done": 30}
    assert snapshot(out) == before  # not a byte or a timestamp changed
    more = run(world, out, max_docs=45, shard_size=20)
    assert more["this_run"] == {"answered": 15, "failed": 0, "already_done": 30} and more["requests"] == 45
    assert len({d.id for d in shard_docs(out)}) == 45


def test_resuming_with_a_different_configuration_is_refused(world, tmp_path):
    out = tmp_path / "out"
    run(world, out, max_docs=5)
    with pytest.raises(ConfigError, match="seed differs"):
        run(world, out, max_docs=5, seed=1)
    with pytest.raises(ConfigError, match="style"):
        run(world, out, max_docs=5, style="qa")


def test_failed_requests_go_to_the_failures_file_and_the_job_goes_on(world, tmp_path):
    natural = list(read_documents(world.natural))[:12]
    bare = [Document(id=f"bare-{i}", text="No facts in this one at all, sadly.") for i in range(3)]
    corpus = tmp_path / "mixed.jsonl"
    write_documents(corpus, natural[:5] + bare + natural[5:])
    out = tmp_path / "out"
    summary = generate_command(str(corpus), "hq", "toyworld", None, str(out), gates="off", progress=False)
    assert (summary["requests"], summary["written"], summary["failed"]) == (15, 12, 3)
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["request_id"] for f in failures] == [f"hq/bare-{i}" for i in range(3)]
    assert all("no meta['facts']" in f["error"] for f in failures)
    retried = generate_command(str(corpus), "hq", "toyworld", None, str(out), gates="off", progress=False,
                               retry_failures=True)
    assert retried["this_run"]["answered"] == 3 and retried["failed"] == 6  # tried twice, failed twice
    assert len((out / "failures.jsonl").read_text().splitlines()) == 3  # each listed once


def test_target_tokens_stop_the_run_counted_with_the_training_tokenizer(world, tmp_path):
    tok = train_tokenizer(read_documents(world.natural), 300, tmp_path / "tok.json")
    out = tmp_path / "out"
    summary = run(world, out, tokenizer=str(tok), target_tokens=1500, batch_size=4)
    assert summary["stop_reason"] == "target tokens reached" and summary["state"] == "complete"
    written = summary["tokens"]["written"]
    shard = encode_corpus(out / "shards", str(tok), tmp_path / "shard", progress=False)
    assert shard.n_tokens == written >= 1500  # exactly what training will see, EOS included
    rows = (out / "index" / "shard-00000.tsv").read_text().splitlines()
    last_batch = [int(line.split("\t")[2]) for line in rows[-4:]]
    assert len(rows) % 4 == 0 and written - sum(last_batch) < 1500  # stopped at the first batch reaching it
    assert run(world, out, tokenizer=str(tok), target_tokens=1500, batch_size=4)["this_run"]["answered"] == 0
    with pytest.raises(ConfigError, match="give --tokenizer"):
        run(world, tmp_path / "other", target_tokens=10)


def test_an_interrupted_run_with_a_torn_journal_line_resumes_cleanly(world, tmp_path):
    out = tmp_path / "out"
    job = GenerateJob(out=str(out), style="hq", input=str(world.natural), max_docs=40, batch_size=5, shard_size=100,
                      gates=GateConfig.off())
    with pytest.raises(KeyboardInterrupt):
        run_generation(job, UpperBackend(interrupt_at=4), progress=False)
    assert json.loads((out / "manifest.json").read_text())["state"] == "interrupted"
    journal = out / "index" / "open.journal"
    assert len(journal.read_text().splitlines()) == 1 + 15  # header + three batches
    with open(journal, "a") as f:
        f.write('{"id": "hq/web-000099", "status": "ok", "doc": {"id": "hq/web-0')  # a write cut by SIGKILL
    summary = run_generation(job, UpperBackend(), progress=False)
    assert summary["this_run"] == {"answered": 25, "failed": 0, "already_done": 15}
    docs = shard_docs(out)
    assert len(docs) == len({d.id for d in docs}) == 40 and not journal.exists()


def test_a_second_writer_is_locked_out(world, tmp_path):
    out = tmp_path / "out"
    run(world, out, max_docs=3)
    stored = json.loads((out / "generate_config.json").read_text())
    with OutputStore(out, stored["identity"], stored["settings"]):
        with pytest.raises(ConfigError, match="another generate run is writing"):
            run(world, out, max_docs=3)


def test_sigkill_mid_run_then_rerun_finds_every_document_exactly_once(world, tmp_path):
    out, clean = tmp_path / "killed", tmp_path / "clean"
    options = dict(samples=10, shard_size=50, gates="off")
    script = ("import sys; import synthscale.toyworld; from synthscale.generate.commands import generate_command; "
              "generate_command(sys.argv[1], 'hq', 'toyworld', None, sys.argv[2], samples=10, shard_size=50, "
              "batch_size=2, gates='off', progress=False)")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(world.natural), str(out)], env=env)
    manifest = out / "manifest.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and len(json.loads(manifest.read_text())["shards"]) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the runner finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = durable_answers(out)
    assert 100 <= finished < 800

    resumed = run(world, out, batch_size=2, **options)
    assert resumed["this_run"]["answered"] == 800 - finished  # finished requests were not asked again
    expected = run(world, clean, batch_size=64, **options)
    docs, reference = shard_docs(out), shard_docs(clean)
    assert resumed["requests"] == expected["requests"] == 800
    assert len(docs) == len({d.id for d in docs}) == 800
    assert {d.id: d.text for d in docs} == {d.id: d.text for d in reference}  # same seeds, same outputs


def test_chunked_rephrasings_are_reassembled_per_parent(tmp_path):
    text = " ".join(f"Sentence number {i} says something about the river and the town." for i in range(30))
    corpus = tmp_path / "long.jsonl"
    write_documents(corpus, [Document(id="long-1", text=text), Document(id="short-1", text="A short one, five words.")])
    job = GenerateJob(out=str(tmp_path / "out"), style="hq", input=str(corpus), chunk_tokens=40, reassemble=True,
                      gates=GateConfig.off())
    summary = run_generation(job, UpperBackend(), progress=False)
    assert summary["requests"] > 8 and summary["reassembled"] == {"file": "reassembled.jsonl.gz", "documents": 2,
                                                                 "complete": 2, "incomplete": 0}
    chunks = shard_docs(tmp_path / "out")
    assert all(d.parent_id.startswith("long-1#") for d in chunks[:-1]) and chunks[-1].parent_id == "short-1"
    whole = {d.id: d for d in read_documents(tmp_path / "out" / "reassembled.jsonl.gz")}
    assert " ".join(whole["hq/long-1"].text.split()) == text.upper()
    assert whole["hq/long-1"].parent_id == "long-1" and whole["hq/short-1"].text == "A SHORT ONE, FIVE WORDS."


def test_textbooks_from_a_topic_file_with_several_samples(world, tmp_path):
    topics = tmp_path / "topics.txt"
    from synthscale.toyworld.textbook import topic_catalogue
    from synthscale.toyworld.world import World

    chosen = [t.text for t in topic_catalogue(World.load(world.world))[:3]]
    topics.write_text("# toyworld topics\n" + "\n".join(chosen) + "\n\n")
    summary = generate_command(None, "textbook", "toyworld", str(world.world), str(tmp_path / "out"),
                               topics=str(topics), samples=2, gates="off", progress=False)
    docs = shard_docs(tmp_path / "out")
    assert summary["written"] == 6
    assert [d.id for d in docs] == [f"textbook/{i:07d}~{k}" for i in range(3) for k in range(2)]
    assert [d.meta["topic"] for d in docs] == [t for t in chosen for _ in range(2)]
    assert docs[0].text != docs[1].text and docs[0].parent_id is None
    assert all(d.prompt_hash == get_style("textbook").prompt_hash and d.meta["seeded_by"] == "topic" for d in docs)
    with pytest.raises(ConfigError, match="exactly one of --input"):
        generate_command(str(world.natural), "textbook", "toyworld", None, str(tmp_path / "x"), topics=str(topics))


def test_backends_are_built_by_name_and_misplaced_options_are_refused(world, tmp_path):
    from synthscale.errors import MissingDependencyError
    from synthscale.generate import make_backend

    if importlib.util.find_spec("vllm") is None:  # the CPU test machines do not have it
        with pytest.raises(MissingDependencyError, match=r"synthscale\[vllm\]"):
            make_backend("vllm", "some/model")
    with pytest.raises(ConfigError, match="unknown backend 'llamafile'"):
        make_backend("llamafile", "x")
    with pytest.raises(ConfigError, match="--base-url applies to the openai backend"):
        run(world, tmp_path / "out", backend_options={"base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(ConfigError, match="the openai backend needs --model"):
        generate_command(str(world.natural), "hq", "openai", None, str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="use them with --style textbook"):
        run(world, tmp_path / "out", style="hq", audience="children")
