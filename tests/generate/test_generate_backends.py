"""Real generation on CPU: a tiny model synthscale trains and exports, through the transformers backend and
through the openai backend against the project's own server running as a separate process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from synthscale.corpus import read_documents
from synthscale.generate import GateConfig, GenerateJob, GenerationRequest, get_style, run_generation
from synthscale.generate.backends.openai_backend import OpenAIBackend
from synthscale.generate.backends.prompting import render_simple_chat
from synthscale.model import ModelConfig
from synthscale.model.hf import export_hf
from synthscale.tokens import load_tokenizer, train_tokenizer
from synthscale.toyworld import ToyworldConfig, build_toyworld
from synthscale.train import TrainConfig, train

pytest.importorskip("transformers")
from synthscale.generate.backends.transformers_backend import TransformersBackend  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
PROVENANCE = ("parent_id", "style", "generator", "prompt_hash", "sampling", "seed")
SAMPLING = {"temperature": 0.8, "top_p": 0.95, "max_tokens": 12}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A world, a tokenizer trained on its web text, a tiny Llama trained a few steps on it, exported to HF."""
    root = tmp_path_factory.mktemp("tiny")
    world = build_toyworld(root / "world", ToyworldConfig.preset("tiny", seed=5), progress=False)
    texts = [d.text for d in read_documents(world.natural)]
    tok = load_tokenizer(train_tokenizer(texts, 320, root / "tokenizer.json"))
    stream = np.array([t for text in texts for t in tok.encode(text) + [tok.eos_id]], dtype=np.int64)
    seq, batch = 64, 4

    def batches():
        rng = np.random.default_rng(0)
        while True:
            starts = rng.integers(0, len(stream) - seq - 1, batch)
            yield np.stack([stream[s:s + seq + 1] for s in starts])

    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
                      max_seq_len=512)
    run_dir = root / "run"
    train(cfg, TrainConfig(tokens=6 * batch * seq, seq_len=seq, batch_size=batch, lr=3e-3, warmup_steps=1,
                           threads=1, log_every=3), batches(), run_dir, progress=False)
    (run_dir / "config.json").write_text(json.dumps({"data": {"tokenizer": tok.source}}))
    export = export_hf(run_dir, root / "tiny-llama")
    return {"world": world, "export": export, "root": root,
            "revision": json.loads((export / "synthscale.json").read_text())["checkpoint_sha256"][:12]}


@pytest.fixture(scope="module")
def local(tiny):
    with TransformersBackend(tiny["export"], batch_size=3, threads=1) as backend:
        yield backend


@pytest.fixture(scope="module")
def server(tiny):
    """`python -m synthscale.generate.server EXPORT --port 0` in its own process; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "synthscale.generate.server", str(tiny["export"]), "--port", "0",
                             "--max-batch", "4", "--threads", "1"], env=env, stdout=subprocess.PIPE, text=True)
    deadline, line = time.monotonic() + 180, ""
    while time.monotonic() < deadline and proc.poll() is None and "serving" not in line:
        if select.select([proc.stdout], [], [], 1.0)[0]:
            line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        pytest.fail(f"the server did not start (exit code {proc.poll()})")
    yield line.strip().split(" at ")[1]
    proc.terminate()
    proc.wait(timeout=30)


def requests_for(prompts, seed0=10, **sampling):
    return [GenerationRequest(f"r{i}", p, "hq", seed0 + i, {**SAMPLING, **sampling}) for i, p in enumerate(prompts)]


PROMPTS = ["Brumholt is a town", "Question: Where is the river Olm?\nAnswer:", "The guild of tanners",
           "In the year 1801, the first bridge over the river was built by Tessa Varn, who"]


def test_transformers_backend_answers_with_exact_usage_and_per_request_seeds(tiny, local):
    results = local.generate(requests_for(PROMPTS))
    tok = local.tokenizer
    for prompt, r in zip(PROMPTS, results):
        assert r.finish_reason in ("stop", "length") and r.text
        assert r.prompt_tokens == len(tok(prompt)["input_ids"]) and 1 <= r.completion_tokens <= 12
        assert r.finish_reason == "stop" or r.completion_tokens == 12
    alone = [local.generate([q])[0] for q in reversed(requests_for(PROMPTS))][::-1]
    assert [r.text for r in alone] == [r.text for r in results]  # a request's text ignores its batch
    reseeded = local.generate(requests_for(PROMPTS, seed0=99))
    assert [r.text for r in reseeded] != [r.text for r in results]
    greedy = requests_for(PROMPTS[:1], temperature=0)
    assert local.generate(greedy)[0].text == local.generate(greedy)[0].text
    too_long = local.generate(requests_for(["river " * 600]))[0]
    assert too_long.finish_reason == "error" and "context of 512" in too_long.error
    near_limit = next(p for p in (" ".join(["river"] * k) for k in range(1, 600))
                      if len(tok(p)["input_ids"]) >= 506)
    capped, short = local.generate(requests_for([near_limit, PROMPTS[0]], temperature=0))
    room = 512 - len(tok(near_limit)["input_ids"])
    assert capped.completion_tokens <= room and (capped.finish_reason == "length") == (capped.completion_tokens == room)
    assert short.text == local.generate(requests_for([PROMPTS[0]], temperature=0))[0].text
    assert local.generator == f"tiny-llama@{tiny['revision']}"
    assert local.count_tokens(["Brumholt is a town"]) == [len(tok("Brumholt is a town")["input_ids"])]


def qa_job(tiny, out, **kw):
    return GenerateJob(out=str(out), style="qa", input=str(tiny["world"].natural), max_docs=3, chunk_tokens=64,
                       sampling={"max_tokens": 16}, gates=GateConfig.off(), batch_size=4, **kw)


def check_provenance(out: Path, generator: str) -> list:
    docs = list(read_documents(out / "shards"))
    assert docs and len(docs) == len({d.id for d in docs})
    for d in docs:
        assert all(getattr(d, f) is not None for f in PROVENANCE), d.id
        assert d.generator == generator and d.prompt_hash == get_style("qa").prompt_hash
        assert d.sampling["max_tokens"] == 16 and d.id == f"qa/{d.parent_id}"
    card = (out / "dataset_card.md").read_text()
    assert generator in card and get_style("qa").prompt_hash in card
    return docs


def test_transformers_backend_runs_a_resumable_qa_job_with_provenance(tiny, local, tmp_path):
    summary = run_generation(qa_job(tiny, tmp_path / "out"), local, progress=False)
    docs = check_provenance(tmp_path / "out", local.generator)
    assert summary["written"] == len(docs) and summary["written"] + summary["rejected"] == summary["requests"] >= 3
    assert set(summary["quality_gates"]["rejected_by_reason"]) <= {"empty"}  # gates off keep every non-empty output
    assert f"{local.generator} tokenizer" == json.loads((tmp_path / "out" / "generate_config.json").read_text())[
        "identity"]["chunk_counter"]  # chunks were measured with the generator's tokenizer
    assert run_generation(qa_job(tiny, tmp_path / "out"), local, progress=False)["this_run"]["answered"] == 0


def test_the_server_lists_the_model_and_answers_completions_like_the_local_backend(tiny, local, server):
    listing = json.loads(urllib.request.urlopen(server + "/models", timeout=30).read())
    assert listing["data"][0]["id"] == "tiny-llama" and listing["data"][0]["revision"] == tiny["revision"]
    with OpenAIBackend("tiny-llama", base_url=server, endpoint="completions", concurrency=4) as remote:
        assert remote.generator == local.generator
        over_http = remote.generate(requests_for(PROMPTS))
    in_process = local.generate(requests_for(PROMPTS))
    for a, b in zip(over_http, in_process):
        assert (a.text, a.finish_reason, a.prompt_tokens, a.completion_tokens) == \
            (b.text, b.finish_reason, b.prompt_tokens, b.completion_tokens)


def test_the_server_chat_endpoint_uses_the_documented_template_and_reports_length(tiny, local, server):
    with OpenAIBackend("tiny-llama", base_url=server, endpoint="chat") as remote:
        (chat,) = remote.generate(requests_for(PROMPTS[:1]))
        (short,) = remote.generate(requests_for(PROMPTS[1:2], max_tokens=3, temperature=0))
    expected_prompt = render_simple_chat([{"role": "user", "content": PROMPTS[0]}])
    assert chat.prompt_tokens == len(local.tokenizer(expected_prompt, add_special_tokens=False)["input_ids"])
    assert chat.finish_reason in ("stop", "length") and chat.completion_tokens <= 12
    assert (short.finish_reason, short.completion_tokens) == ("length", 3) or short.finish_reason == "stop"
    with OpenAIBackend("no-such-model", base_url=server, max_retries=3, backoff=0.01) as wrong:
        (missing,) = wrong.generate(requests_for(PROMPTS[:1]))
    assert missing.finish_reason == "error" and "HTTP 404" in missing.error and missing.meta["attempts"] == 1


def test_the_openai_backend_runs_a_resumable_qa_job_against_the_server(tiny, server, tmp_path):
    with OpenAIBackend("tiny-llama", base_url=server, endpoint="completions", concurrency=4) as remote:
        summary = run_generation(qa_job(tiny, tmp_path / "out"), remote, progress=False)
        docs = check_provenance(tmp_path / "out", f"tiny-llama@{tiny['revision']}")
        assert summary["written"] == len(docs) and summary["tokens"]["output"] > 0
        assert summary["throughput"]["gpu_hours_per_billion_output_tokens"] is None  # unknown without --gpus
        before = (tmp_path / "out" / "manifest.json").stat().st_mtime_ns
        assert run_generation(qa_job(tiny, tmp_path / "out"), remote, progress=False)["this_run"]["answered"] == 0
        assert (tmp_path / "out" / "manifest.json").stat().st_mtime_ns == before


def test_the_padded_batch_prefill_answers_like_the_one_prompt_at_a_time_prefill(local):
    """On CPU prompts are prefilled one at a time and their caches joined; GPUs (and models with sliding-window
    or recurrent layers) prefill the left-padded batch at once. Both give the same answers."""
    sampled = [GenerationRequest(f"s{i}", p, "hq", 40 + i, SAMPLING) for i, p in enumerate(PROMPTS)]
    requests = requests_for(PROMPTS, temperature=0) + sampled
    assert local._ragged_prefill in (None, True)
    joined = local.generate(requests)
    local._ragged_prefill = False
    try:
        padded = local.generate(requests)
    finally:
        local._ragged_prefill = None
    assert [(r.text, r.finish_reason, r.completion_tokens) for r in padded] == \
        [(r.text, r.finish_reason, r.completion_tokens) for r in joined]
