"""Shared helpers of the train/ tests: tiny token shards and configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synthscale._io import sha256_file
from synthscale.model import ModelConfig

VOCAB, SEQ = 64, 16


def write_shard(prefix: Path, n_tokens: int, seed: int, vocab: int = VOCAB, period: int = 11) -> str:
    """A token shard (NAME.bin + NAME.json) of a noisy repeating pattern: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    cycle = rng.integers(0, vocab, size=period)
    tokens = np.resize(cycle, n_tokens)
    noise = rng.random(n_tokens) < 0.2
    tokens[noise] = rng.integers(0, vocab, size=int(noise.sum()))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    bin_path = prefix.with_name(prefix.name + ".bin")
    tokens.astype(np.uint16).tofile(bin_path)
    meta = {"format": "synthscale.token_shard/1", "dtype": "uint16", "vocab_size": vocab, "eos_id": vocab - 1,
            "tokenizer_hash": "test", "n_tokens": n_tokens, "n_docs": 1, "sha256": sha256_file(bin_path),
            "source_bytes": n_tokens, "provenance": {"sources": [], "n_docs": 1}}
    prefix.with_name(prefix.name + ".json").write_text(json.dumps(meta))
    return str(prefix)


def tiny_model(**overrides) -> ModelConfig:
    fields = dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, max_seq_len=SEQ)
    fields.update(overrides)
    return ModelConfig(**fields)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def curve(run_dir: Path) -> list[tuple]:
    """The metrics without timings: (step, tokens, loss, lr, grad_norm) per record."""
    return [(r["step"], r["tokens"], r["loss"], r["lr"], r["grad_norm"]) for r in read_metrics(run_dir)]
