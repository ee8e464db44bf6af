"""The openai backend against a real local HTTP server that misbehaves on purpose: retries, backoff, errors, keys.

The server is a stdlib ThreadingHTTPServer on 127.0.0.1 (a free port) that answers from a
script of statuses; nothing in the HTTP stack is mocked.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synthscale.corpus import Document, write_documents
from synthscale.errors import ConfigError
from synthscale.generate import GateConfig, GenerateJob, GenerationRequest, run_generation
from synthscale.generate.backends.openai_backend import OpenAIBackend

KEY = "sk-test-0123456789-do-not-leak"


class ScriptedServer:
    """Answers POSTs with the next status of ``script`` (200 = a valid chat or completion reply); records requests."""

    def __init__(self, script, retry_after="0", delay_first=0.0):
        self.script, self.retry_after, self.delay_first = list(script), retry_after, delay_first
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # /models
                outer._send(self, 200, {"object": "list", "data": [{"id": "m", "object": "model", "revision": "r7"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                    status = outer.script.pop(0) if outer.script else 200
                    first = len(outer.seen) == 1
                if first and outer.delay_first:
                    time.sleep(outer.delay_first)
                if status != 200:
                    outer._send(self, status, {"error": {"message": f"scripted {status}"}},
                                {"Retry-After": outer.retry_after} if status == 429 else {})
                    return
                text = "Brumholt lies on the Olm and trades in leather, salt and timber."
                choice = ({"message": {"role": "assistant", "content": text}} if self.path.endswith("/chat/completions")
                          else {"text": text})
                outer._send(self, 200, {"choices": [{"index": 0, "finish_reason": "stop", **choice}],
                                        "usage": {"prompt_tokens": 11, "completion_tokens": 13, "total_tokens": 24}})

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def _send(handler, status, payload, headers=None):
        data = json.dumps(payload).encode()
        handler.send_response(status)
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers = []

    def make(*args, **kwargs):
        servers.append(ScriptedServer(*args, **kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def request(i=0, **sampling):
    return GenerationRequest(f"hq/d{i}", f"Rewrite passage {i}.", "hq", 100 + i,
                             {"temperature": 0.7, "max_tokens": 32, **sampling})


def backend(server, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("max_backoff", 0.05)
    return OpenAIBackend("m", base_url=server.url, **kw)


def test_429_and_5xx_are_retried_until_an_answer_comes(server_factory):
    server = server_factory([429, 429, 500, 503])
    with backend(server, max_retries=6) as b:
        (result,) = b.generate([request()])
    assert result.finish_reason == "stop" and result.text.startswith("Brumholt")
    assert (result.prompt_tokens, result.completion_tokens) == (11, 13) and result.meta["attempts"] == 5
    assert len(server.seen) == 5 and all(s["body"]["seed"] == 100 for s in server.seen)
    assert b.revision == "r7"  # from /v1/models


def test_a_request_that_keeps_failing_becomes_an_error_result_with_the_reason(server_factory):
    server = server_factory([503] * 10)
    with backend(server, max_retries=2) as b:
        (result,) = b.generate([request()])
    assert result.finish_reason == "error" and "HTTP 503" in result.error and "scripted 503" in result.error
    assert "gave up after 3 attempts" in result.error and len(server.seen) == 3


def test_client_errors_are_not_retried(server_factory):
    server = server_factory([400])
    with backend(server, max_retries=5) as b:
        (result,) = b.generate([request()])
    assert result.finish_reason == "error" and "HTTP 400" in result.error and len(server.seen) == 1


def test_timeouts_are_retried(server_factory):
    server = server_factory([], delay_first=1.0)
    with backend(server, timeout=0.3, max_retries=2) as b:
        (result,) = b.generate([request()])
    assert result.finish_reason == "stop" and result.meta["attempts"] == 2


def test_an_unreachable_server_fails_after_retries():
    with OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", max_retries=1, backoff=0.01, timeout=1) as b:
        (result,) = b.generate([request()])
    assert result.finish_reason == "error" and "cannot reach" in result.error


def test_bodies_carry_the_seed_sampling_and_endpoint_and_order_is_kept(server_factory):
    server = server_factory([])
    with backend(server, endpoint="completions", concurrency=3) as b:
        results = b.generate([request(i, top_k=5, stop=["\n\n"]) for i in range(7)])
    assert [r.request_id for r in results] == [f"hq/d{i}" for i in range(7)]
    bodies = sorted((s["body"] for s in server.seen), key=lambda body: body["seed"])
    assert all(s["path"] == "/v1/completions" for s in server.seen)
    assert bodies[0] == {"model": "m", "n": 1, "seed": 100, "max_tokens": 32, "temperature": 0.7, "top_k": 5,
                         "stop": ["\n\n"], "prompt": "Rewrite passage 0."}
    with pytest.raises(ConfigError, match="endpoint must be"):
        OpenAIBackend("m", base_url=server.url, endpoint="embeddings")


def test_the_api_key_is_sent_but_never_written_or_shown(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSCALE_TEST_KEY", KEY)
    server = server_factory([429, 401])
    corpus = tmp_path / "in.jsonl"
    write_documents(corpus, [Document(id=f"d{i}", text=f"Passage {i} about Brumholt and the Olm.") for i in range(3)])
    job = GenerateJob(out=str(tmp_path / "out"), style="hq", input=str(corpus), gates=GateConfig.off())
    with backend(server, api_key_env="SYNTHSCALE_TEST_KEY", concurrency=1) as b:
        summary = run_generation(job, b, progress=False)
        shown = repr(b) + json.dumps(b.describe())
    assert all(s["auth"] == f"Bearer {KEY}" for s in server.seen)
    assert summary["failed"] == 1 and summary["written"] == 2  # the 401 is not retried, the job goes on
    assert KEY not in shown and "SYNTHSCALE_TEST_KEY" in shown
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in (gzip.decompress(data) if path.suffix == ".gz" else data), path
