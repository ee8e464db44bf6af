"""Reference losses that place a model's loss: the uniform and the unigram baseline.

Both are scored on exactly the targets of a fixed eval set (EvalSet: every target token
of its windows, EOS included), so they compare one to one with ``evaluate_model``:

- uniform: every id of the vocabulary equally likely, ln(V) nats per token, V the
  tokenizer's vocabulary size (the width of the models' output layer). A model above it
  is worse than a uniform guess.
- unigram: every token drawn independently from the token frequencies of the natural
  training corpus (its token shard, EOS included), add-one (Laplace) smoothed so that a
  token never seen in training keeps a finite loss:
  p(t) = (count(t) + 1) / (N + V), N = tokens in the shard. Its loss is the cross-entropy
  -mean over targets of ln p(target). A model above it has learned little beyond token
  frequencies.

Bits per byte as for the models: total nats / ln 2 / total UTF-8 bytes of the targets
(EOS counts 0 bytes). Shards are counted chunk by chunk from the memmap, never loaded
whole.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from ..tokens import open_shard
from .evalset import EvalSet, load_eval_set

BASELINES_FORMAT = "synthscale.baselines/1"
COUNT_CHUNK = 1 << 22  # tokens per np.bincount call (a 32 MiB int64 temporary at most)
SMOOTHING = "add-one (Laplace): p(t) = (count(t) + 1) / (N + V), N = tokens counted, V = vocabulary size"


def token_counts(tokens: np.ndarray, vocab_size: int, chunk: int = COUNT_CHUNK) -> np.ndarray:
    """How often each id in [0, vocab_size) occurs in ``tokens`` (int64 [vocab_size]), chunk by chunk."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(tokens), chunk):
        part = np.asarray(tokens[start:start + chunk])
        if part.size and int(part.max()) >= vocab_size:
            raise InputError(f"token id {int(part.max())} is outside the vocabulary of {vocab_size}")
        counts += np.bincount(part, minlength=vocab_size)
    return counts


def shard_token_counts(shard: str | os.PathLike, vocab_size: int | None = None) -> np.ndarray:
    """Token counts of a token shard (its memmap, read in chunks); V from its metadata when not given."""
    tokens, meta = open_shard(shard)
    vocab = int(vocab_size if vocab_size is not None else meta["vocab_size"])
    try:
        return token_counts(tokens, vocab)
    except InputError as e:
        raise InputError(str(e), path=str(shard)) from None


def eval_baselines(eval_set: EvalSet, counts: np.ndarray) -> dict[str, Any]:
    """Uniform and add-one unigram baselines of one eval set, in nats/token and bits per byte.

    ``counts`` are the unigram counts (length = vocabulary size V). Returns ``tokens`` and
    ``bytes`` (the eval set's targets and their UTF-8 bytes), ``bytes_per_token``,
    ``uniform_loss``, ``uniform_bpb``, ``unigram_loss``, ``unigram_bpb``.
    """
    vocab = len(counts)
    targets = np.asarray(eval_set.tokens[:, 1:])
    if targets.size and int(targets.max()) >= vocab:
        raise InputError(f"eval set '{eval_set.name}' has token id {int(targets.max())}, outside the "
                         f"vocabulary of {vocab} of the unigram counts")
    n_tokens, n_bytes = eval_set.n_targets, eval_set.n_bytes
    log_p = np.log(counts.astype(np.float64) + 1.0) - math.log(float(counts.sum()) + vocab)
    unigram_nats = -float(log_p[targets].sum(dtype=np.float64))
    uniform_nats = math.log(vocab) * n_tokens
    return {
        "tokens": n_tokens, "bytes": n_bytes, "bytes_per_token": n_bytes / n_tokens,
        "uniform_loss": uniform_nats / n_tokens, "uniform_bpb": uniform_nats / math.log(2) / n_bytes,
        "unigram_loss": unigram_nats / n_tokens, "unigram_bpb": unigram_nats / math.log(2) / n_bytes,
    }


def study_baselines(natural_shard: str | os.PathLike, eval_sets: Mapping[str, str | os.PathLike | EvalSet],
                    vocab_size: int, tokenizer_hash: str = "") -> dict[str, Any]:
    """The content of ``STUDY/baselines.json``: each eval domain's baselines (see docs/contracts.md)."""
    counts = shard_token_counts(natural_shard, vocab_size)
    domains = {}
    for domain, eval_set in sorted(eval_sets.items()):
        es = eval_set if isinstance(eval_set, EvalSet) else load_eval_set(eval_set)
        domains[domain] = eval_baselines(es, counts)
    return {
        "format": BASELINES_FORMAT,
        "vocab_size": vocab_size,
        "tokenizer_hash": tokenizer_hash,
        "unigram_source": Path(natural_shard).name,
        "unigram_tokens": int(counts.sum()),
        "smoothing": SMOOTHING,
        "domains": domains,
    }
