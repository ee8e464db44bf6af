"""Peak memory of encoding, and of planning a study on, one very long single-line document.

Writes a corpus of ONE document of --mb megabytes of text on one jsonl line (words, numbers
and punctuation drawn from a fixed seed), trains a byte-level BPE tokenizer on a 2 MB
sample, then measures in fresh child processes:

- ``encode_peak_rss_mb``: `encode_corpus` of that corpus into a token shard (the prepare step
  of a study does exactly this for every corpus);
- ``plan_peak_rss_mb``: `synthscale study plan` of a study whose natural corpus is that
  document (tokenizer training on it, encoding, eval sets);
- ``baseline_rss_mb``: a child that imports synthscale and reads the document, encodes nothing;
- ``tokens_equal_unsplit``: the shard's tokens equal the tokenizer run on the whole
  document at once (checked on a --check-mb prefix document, since the unsplit run of the
  full document is exactly what needs the memory this benchmark is about).

Prints one JSON line per figure. The issue's target: encode_peak_rss_mb under 1024 for 50 MB.

    python benchmarks/long_document_memory.py --mb 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ("the of and to in a is that for it as was with be by on not he I this are or his from at which but have "
         "an had they you were their one all we can her has there been if more when will would who so no Brumholt "
         "Olm leather salt timber river market council winter harvest guild charter bridge mill tower").split()
PUNCT = (",", ".", ";", ":", "!", "?", "'s", "-", "(", ")")


def make_text(n_bytes: int, seed: int = 0) -> str:
    """About ``n_bytes`` of one-line English-like text (words, numbers, punctuation; no newline)."""
    rng = np.random.default_rng(seed)
    parts: list[str] = []
    size = 0
    while size < n_bytes:
        words = rng.choice(len(WORDS), size=4096)
        kinds = rng.random(4096)
        for w, k in zip(words, kinds):
            token = WORDS[w]
            if k < 0.05:
                token = str(int(k * 1e6))
            elif k < 0.15:
                token += PUNCT[int(k * 100) % len(PUNCT)]
            parts.append(token)
            size += len(token) + 1
    return " ".join(parts)[:n_bytes]


CHILD_ENCODE = """
import resource, sys, time
from synthscale.tokens import encode_corpus
t = time.perf_counter()
info = encode_corpus(sys.argv[1], sys.argv[2], sys.argv[3], progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, info.n_tokens, time.perf_counter() - t)
"""

CHILD_PLAN = """
import contextlib, io, resource, sys
from synthscale.cli import main
sys.argv = ["synthscale", "study", "plan", sys.argv[1], "--out", sys.argv[2]]
code = 0
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code)
"""

CHILD_BASELINE = """
import resource, sys
import synthscale.tokens, synthscale.corpus
docs = list(synthscale.corpus.read_documents(sys.argv[1]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(docs[0].text))
"""


def child(code: str, *args: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; its stdout's last line, split."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip().splitlines()[-1].split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the one-line document (MB)")
    parser.add_argument("--check-mb", type=float, default=4.0, help="prefix document for the exactness check (MB)")
    parser.add_argument("--no-plan", action="store_true", help="skip the `study plan` measurement")
    args = parser.parse_args()

    from synthscale.corpus import Document, write_documents
    from synthscale.tokens import load_tokenizer, open_shard, train_tokenizer

    n_bytes = int(args.mb * 1e6)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        text = make_text(n_bytes)
        corpus = root / "long.jsonl"
        write_documents(corpus, [Document(id="long", text=text)])
        tok_path = train_tokenizer([text[:2_000_000]], 4096, root / "tokenizer.json")
        common = {"benchmark": "long_document_memory", "doc_mb": args.mb, "doc_chars": len(text)}

        rss, chars = child(CHILD_BASELINE, str(corpus))
        print(json.dumps({**common, "figure": "baseline_rss_mb", "value": round(int(rss) / 1024, 1)}), flush=True)

        rss, n_tokens, seconds = child(CHILD_ENCODE, str(corpus), str(tok_path), str(root / "shard"))
        print(json.dumps({**common, "figure": "encode_peak_rss_mb", "value": round(int(rss) / 1024, 1),
                          "tokens": int(n_tokens), "seconds": round(float(seconds), 2),
                          "target_mb": 1024, "bytes_per_text_byte": round(int(rss) * 1024 / n_bytes, 1)}),
              flush=True)

        check_text = text[:int(args.check_mb * 1e6)]
        check_corpus = root / "check.jsonl"
        write_documents(check_corpus, [Document(id="check", text=check_text)])
        child(CHILD_ENCODE, str(check_corpus), str(tok_path), str(root / "check"))
        tokens, meta = open_shard(root / "check")
        tok = load_tokenizer(tok_path)
        unsplit = tok._tokenizer.encode(check_text, add_special_tokens=False).ids  # the whole text in one call
        equal = tokens[:-1].tolist() == unsplit and int(tokens[-1]) == tok.eos_id
        print(json.dumps({**common, "figure": "tokens_equal_unsplit", "value": equal, "check_mb": args.check_mb,
                          "tokens": len(unsplit)}), flush=True)

        if not args.no_plan:
            eval_corpus = root / "eval.jsonl"
            write_documents(eval_corpus, [Document(id=f"e{i}", text=make_text(2000, seed=i + 1)) for i in range(20)])
            spec = {"name": "long", "corpora": {"natural": str(corpus)}, "eval": {"web": str(eval_corpus)},
                    "tokenizer": {"vocab_size": 4096}, "recipes": [{"kind": "natural"}], "models": ["cpu-nano"],
                    "budgets": [65536], "training": {"seq_len": 64, "batch_size": 8}}
            (root / "spec.yaml").write_text(json.dumps(spec))  # JSON is YAML
            t = time.perf_counter()
            rss, code = child(CHILD_PLAN, str(root / "spec.yaml"), str(root / "study"))
            if code != "0":
                raise SystemExit(f"study plan failed with exit code {code}")
            print(json.dumps({**common, "figure": "plan_peak_rss_mb", "value": round(int(rss) / 1024, 1),
                              "seconds": round(time.perf_counter() - t, 2)}), flush=True)


if __name__ == "__main__":
    main()
