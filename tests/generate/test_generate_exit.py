"""Exit codes of `synthscale generate` a pipeline can trust: 1 when every request failed (with the
reason on stderr and the run marked failed, not complete), a warning with counts when more than
--max-failed-share failed; and a model path that does not exist is named in plain words."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from synthscale.corpus import Document, write_documents

from tests.conftest import run_cli
from tests.generate.test_generate_openai import ScriptedServer


def _corpus(path: Path, n: int) -> Path:
    write_documents(path, [Document(id=f"d{i}", text=f"Brumholt lies on the Olm river, note {i}. It trades salt.")
                           for i in range(n)])
    return path


def _generate(corpus: Path, out: Path, url: str, *extra: str):
    return run_cli("generate", "--input", str(corpus), "--style", "qa", "--backend", "openai", "--model", "m",
                   "--base-url", url, "--revision", "r7", "--max-retries", "0", "--timeout", "5", "--gates", "off",
                   "--batch-size", "1",
                   "--out", str(out), "--quiet", *extra)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_request_failing_exits_1_and_is_not_complete(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "in.jsonl", 3)
    url = f"http://127.0.0.1:{_closed_port()}/v1"  # nothing listens there
    res = _generate(corpus, tmp_path / "out", url)
    assert res.returncode == 1, res.stdout + res.stderr
    summary = json.loads(res.stdout)
    assert (summary["requests"], summary["failed"], summary["written"], summary["state"]) == (3, 3, 0, "failed")
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["state"] == "failed"
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: all 3 requests failed, nothing was written; see ") and "failures.jsonl" in line
    assert "Connection refused" in line and "--retry-failures" in line
    again = _generate(corpus, tmp_path / "out", url)  # a rerun that asks nothing still says so
    assert again.returncode == 1 and "error: all 3 requests failed" in again.stderr

    server = ScriptedServer([])  # now the server is up: --retry-failures asks them again
    try:
        fixed = _generate(corpus, tmp_path / "out", server.url, "--retry-failures")
    finally:
        server.close()
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["written"] == 3 and json.loads(fixed.stdout)["state"] == "complete"


def test_a_share_of_failures_above_the_threshold_warns_with_counts(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "in.jsonl", 4)
    server = ScriptedServer([500, 200, 200, 200])  # the first request fails (no retries), the others answer
    try:
        res = _generate(corpus, tmp_path / "out", server.url)
        quiet = _generate(corpus, tmp_path / "out2", server.url, "--max-failed-share", "0.5")
    finally:
        server.close()
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["failed"] == 1 and json.loads(res.stdout)["written"] == 3
    assert "warning: 1 of 4 requests failed (25%, more than 10%)" in res.stderr and "failures.jsonl" in res.stderr
    assert quiet.returncode == 0 and "warning" not in quiet.stderr


def test_a_model_path_that_does_not_exist_is_named_in_plain_words(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "in.jsonl", 1)
    missing = tmp_path / "models" / "nope"
    for args in (["generate", "--input", str(corpus), "--style", "qa", "--backend", "transformers", "--model",
                  str(missing), "--out", str(tmp_path / "out")],
                 ["serve", str(missing), "--port", "0"],
                 ["export", str(missing), "--hf", str(tmp_path / "hf")]):
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and str(missing) in lines[0] and "no such" in lines[0], (args, res.stderr)
        assert "Repo id" not in res.stderr and "Traceback" not in res.stderr
