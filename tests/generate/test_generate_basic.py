"""The generate stage's interface: styles, the Backend contract, run_generation provenance, toyworld backend."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from synthscale.corpus import Document, read_documents, write_documents
from synthscale.errors import ConfigError
from synthscale.generate import (Backend, BackendError, GateConfig, GenerateJob, GenerationRequest, GenerationResult,
                                 Style, get_style, plan_requests, request_seed, run_generation)
from synthscale.toyworld.backend import ToyworldBackend
from synthscale.toyworld import ToyworldConfig, make_world
from synthscale.toyworld.textbook import topic_catalogue

FACTS = [{"subject": "Brumholt", "relation": "population", "object": "1200"},
         {"subject": "Brumholt", "relation": "on_river", "object": "Olm"},
         {"subject": "Tessa Varn", "relation": "born_year", "object": "1801"}]
SOURCE = Document(id="web-1", text="Home | News\nbrumholt (pop. 1200) lol. Subscribe now!", domain="web",
                  source="toyworld", meta={"facts": FACTS})


class EchoBackend(Backend):
    """Answers with the last line of the prompt; fails requests whose prompt contains 'FAIL'."""

    name, model, revision = "echo", "echo-model", "r1"

    def __init__(self):
        self.batches: list[int] = []

    def generate(self, requests):
        self.batches.append(len(requests))
        out = []
        for r in requests:
            if "FAIL" in r.prompt:
                out.append(GenerationResult.failed(r, "asked to fail"))
            else:
                text = "Sure! Here is the paraphrase:\n" + r.prompt.splitlines()[-1]
                out.append(GenerationResult(r.request_id, text, "stop", len(r.prompt.split()), len(text.split()),
                                            meta={"seen_seed": r.seed}))
        return out


def test_builtin_styles_render_their_slot_and_hash_the_template():
    hq, textbook = get_style("hq"), get_style("textbook")
    assert hq.kind == "rephrase" and textbook.kind == "generate" and get_style("qa").kind == "rephrase"
    assert hq.render(document=SOURCE).endswith(SOURCE.text)
    assert "the river Olm" in textbook.render(topic="the river Olm")
    assert len(hq.prompt_hash) == 16 and hq.prompt_hash != get_style("qa").prompt_hash
    with pytest.raises(ConfigError, match="rephrases a document"):
        hq.render()
    with pytest.raises(ConfigError, match="unknown generation style 'wiki'"):
        get_style("wiki")


def test_render_does_not_expand_braces_inside_the_document():
    doc = Document(id="d", text="literal {topic} and {text} stay")
    assert get_style("hq").render(document=doc).endswith("literal {topic} and {text} stay")


def test_style_validates_template_and_postprocess_steps():
    with pytest.raises(ConfigError, match="must contain {document}"):
        Style("x", "rephrase", "no slot here")
    with pytest.raises(ConfigError, match="unknown postprocess step 'shout'"):
        Style("x", "generate", "{topic}", postprocess=("shout",))
    assert get_style("hq").clean("Sure, here is a paraphrase of the text:\nClean prose.\n\n\n\nMore.  ") == \
        "Clean prose.\n\nMore."


def _job(tmp_path, docs, out="out", **fields) -> GenerateJob:
    corpus = tmp_path / "in.jsonl"
    write_documents(corpus, docs)
    fields.setdefault("gates", dataclasses.replace(GateConfig.off(), min_words=1))
    return GenerateJob(out=str(tmp_path / out), input=str(corpus), chunk_tokens=0, **fields)


def test_run_generation_writes_provenance_and_counts_failures(tmp_path):
    docs = [Document(id=f"d{i}", text=f"line {i}" + (" FAIL" if i == 3 else "")) for i in range(7)]
    backend = EchoBackend()
    summary = run_generation(_job(tmp_path, docs, style="hq", seed=5, batch_size=3), backend, progress=False)
    written = list(read_documents(tmp_path / "out" / "shards"))
    assert backend.batches == [3, 3, 1]
    assert (summary["requests"], summary["written"], summary["failed"]) == (7, 6, 1)
    assert "asked to fail" in (tmp_path / "out" / "failures.jsonl").read_text()
    assert summary["generator"] == "echo-model@r1"
    assert [d.parent_id for d in written] == ["d0", "d1", "d2", "d4", "d5", "d6"]
    for d in written:
        assert d.style == "hq" and d.domain == "hq" and d.generator == "echo-model@r1"
        assert d.prompt_hash == get_style("hq").prompt_hash
        assert d.sampling == get_style("hq").sampling
        assert d.seed == request_seed(5, f"hq/{d.parent_id}") == d.meta["seen_seed"]
        assert d.text == f"line {d.parent_id[1:]}"  # the chatty preamble was stripped
        assert d.meta["backend"] == "echo" and d.meta["cleaned_by"] == ["strip_preamble"]
    assert summary["tokens"]["input"] > 0 and summary["tokens"]["output"] > 0


def test_request_seeds_do_not_depend_on_batch_size(tmp_path):
    docs = [Document(id=f"d{i}", text=f"t{i}") for i in range(5)]
    a = run_generation(_job(tmp_path, docs, "a", style="qa", seed=1, batch_size=1), EchoBackend(), progress=False)
    b = run_generation(_job(tmp_path, docs, "b", style="qa", seed=1, batch_size=4), EchoBackend(), progress=False)
    assert a["written"] == b["written"] == 5
    shard = Path("shards") / "shard-00000.jsonl.gz"
    assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes()


def test_generation_rejects_wrong_items_and_broken_backends(tmp_path):
    topics = tmp_path / "topics.txt"
    topics.write_text("a topic\n")
    with pytest.raises(ConfigError, match="rephrases documents"):
        run_generation(GenerateJob(out=str(tmp_path / "t"), style="hq", topics=str(topics)), EchoBackend(),
                       progress=False)
    topic_only = Style("topics-only", "generate", "Write about {topic}.")
    with pytest.raises(ConfigError, match="generates from topics"):
        list(plan_requests([SOURCE], topic_only, {}, 0))

    class Dropper(EchoBackend):
        def generate(self, requests):
            return super().generate(requests)[:-1]

    two = [SOURCE, Document(id="web-2", text=SOURCE.text, meta=SOURCE.meta)]
    with pytest.raises(BackendError, match="returned 1 results for 2 requests"):
        run_generation(_job(tmp_path, two, "x", style="hq"), Dropper(), progress=False)
    assert not list((tmp_path / "x" / "shards").iterdir())  # nothing half-written


def test_toyworld_backend_rephrases_every_fact_and_reports_usage():
    backend = ToyworldBackend()
    style = get_style("hq")
    req = GenerationRequest("hq/web-1", style.render(document=SOURCE), "hq", 7, dict(style.sampling), document=SOURCE)
    qa_req = GenerationRequest("qa/web-1", "prompt", "qa", 7, {}, document=SOURCE)
    hq, qa = backend.generate([req, qa_req])
    assert hq.finish_reason == qa.finish_reason == "stop"
    for fact in FACTS:
        assert fact["subject"] in hq.text and fact["object"] in hq.text
        assert fact["subject"] in qa.text and fact["object"] in qa.text
    assert "Subscribe" not in hq.text and "lol" not in hq.text
    assert qa.text.count("\nAnswer: ") == qa.text.count("Question: ") >= 1
    assert hq.prompt_tokens == len(req.prompt.split()) and hq.completion_tokens == len(hq.text.split())
    assert hq.meta["facts"] == FACTS
    assert backend.generator.startswith("toyworld@")


def test_toyworld_backend_truncates_at_max_tokens_and_reports_errors():
    backend = ToyworldBackend()
    cut = backend.generate([GenerationRequest("r", "p", "hq", 1, {"max_tokens": 4}, document=SOURCE)])[0]
    assert cut.finish_reason == "length" and cut.completion_tokens == 4 and len(cut.text.split()) == 4
    bare = Document(id="plain", text="no facts here")
    results = backend.generate([
        GenerationRequest("a", "p", "hq", 1, {}, document=bare),
        GenerationRequest("b", "p", "textbook", 1, {}, topic="anything"),
        GenerationRequest("c", "p", "poetry", 1, {}, document=SOURCE),
        GenerationRequest("d", "p", "hq", 1, {}, document=Document(id="bad", text="x", meta={"facts": [{"s": 1}]})),
    ])
    assert [r.finish_reason for r in results] == ["error"] * 4
    assert "no meta['facts']" in results[0].error and "need a world" in results[1].error
    assert "no style 'poetry'" in results[2].error and "string subject" in results[3].error


def test_toyworld_backend_writes_textbook_chapters_for_catalogue_topics():
    world = make_world(ToyworldConfig.preset("tiny"))
    backend = ToyworldBackend(world, textbook_error_rate=0.0)
    topics = topic_catalogue(world)
    results = backend.generate([GenerationRequest(f"t{i}", "p", "textbook", i, {}, topic=t.text)
                                for i, t in enumerate(topics)])
    assert all(r.finish_reason == "stop" and r.text.startswith("Chapter: ") for r in results)
    assert {r.meta["topic_kind"] for r in results} == {"region", "guild", "family", "relation"}
    assert all(r.meta["n_wrong"] == 0 for r in results)
    unknown = backend.generate([GenerationRequest("u", "p", "textbook", 0, {}, topic="not a topic")])[0]
    assert unknown.finish_reason == "error" and "not in this world's topic catalogue" in unknown.error
