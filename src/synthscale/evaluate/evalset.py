"""Fixed held-out eval sets: the first windows of an eval shard and their byte counts.

An eval set is built once per (shard, tokenizer, seq_len, max_tokens) and then read by
every run of a study, so all runs are scored on exactly the same tokens.

Windows follow the training convention: window k is tokens [k * seq_len, k * seq_len +
seq_len + 1) of the shard, so consecutive windows share one token and every shard token
after the first is a target exactly once (no target is scored twice). The set keeps the
first min((n_tokens - 1) // seq_len, max_tokens // seq_len) windows; a tail shorter than
a window is left out. Each window restarts the context, like training.

For bits-per-byte every target token carries its UTF-8 byte length (Tok.token_byte_lengths;
EOS and other special tokens count 0 bytes, their loss still counts):
bpb = total nats / ln 2 / total target bytes.

On disk an eval set is one safetensors file (tensors ``tokens`` int32 [W, seq_len + 1]
and ``target_bytes`` int32 [W, seq_len]; metadata key ``synthscale``: JSON with format,
name, seq_len, tokenizer_hash, source), written atomically and byte-identical for the
same set.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes, read_safetensors
from ..errors import ConfigError, InputError, MissingFileError
from ..tokens import Tok, load_tokenizer, open_shard, shard_prefix

EVAL_SET_FORMAT = "synthscale.eval_set/1"
SUFFIX = ".safetensors"
METADATA_KEY = "synthscale"


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Fixed eval windows of one domain and the byte length of each target token."""

    name: str
    tokens: np.ndarray  # [n_windows, seq_len + 1] int32
    target_bytes: np.ndarray  # [n_windows, seq_len] int32
    tokenizer_hash: str
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def seq_len(self) -> int:
        """Tokens scored per window."""
        return self.tokens.shape[1] - 1

    @property
    def n_windows(self) -> int:
        """Number of windows."""
        return self.tokens.shape[0]

    @property
    def n_targets(self) -> int:
        """Number of scored (target) tokens."""
        return self.n_windows * self.seq_len

    @property
    def n_bytes(self) -> int:
        """UTF-8 bytes of all targets."""
        return int(self.target_bytes.sum(dtype=np.int64))

    @property
    def digest(self) -> str:
        """sha256 (16 hex) of the windows and byte counts: equal digests, identical sets."""
        h = hashlib.sha256(np.ascontiguousarray(self.tokens, dtype="<i4").tobytes())
        h.update(np.ascontiguousarray(self.target_bytes, dtype="<i4").tobytes())
        return h.hexdigest()[:16]


def build_eval_set(shard: str | os.PathLike, tok: Tok | str | os.PathLike, seq_len: int, max_tokens: int,
                   name: str | None = None) -> EvalSet:
    """The first windows of the eval shard (at most ``max_tokens`` targets); see module doc.

    ``tok`` (a Tok or its path) must be the tokenizer the shard was encoded with.
    ``name`` defaults to the shard's file name.
    """
    tok = load_tokenizer(tok)
    if seq_len < 1:
        raise ConfigError(f"seq_len must be >= 1, got {seq_len}")
    if max_tokens < seq_len:
        raise ConfigError(f"max_tokens ({max_tokens}) must be at least seq_len ({seq_len})")
    prefix = shard_prefix(shard)
    tokens, meta = open_shard(prefix)
    if meta["tokenizer_hash"] != tok.hash:
        raise InputError(f"shard was encoded with tokenizer {meta['tokenizer_hash'][:12]}, "
                         f"not the given one ({tok.hash[:12]})", path=str(prefix) + ".json")
    n_windows = min((len(tokens) - 1) // seq_len, max_tokens // seq_len)
    if n_windows < 1:
        raise InputError(f"shard has {len(tokens)} tokens, fewer than one eval window of {seq_len + 1}",
                         path=str(prefix) + ".bin")
    flat = np.asarray(tokens[:n_windows * seq_len + 1], dtype=np.int32)
    starts = np.arange(n_windows)[:, None] * seq_len
    windows = flat[starts + np.arange(seq_len + 1)[None, :]]
    target_bytes = tok.token_byte_lengths()[windows[:, 1:]].astype(np.int32)
    if target_bytes.sum() == 0:
        raise InputError("eval windows hold no text bytes (only special tokens)", path=str(prefix) + ".bin")
    source = {"shard": str(prefix), "shard_sha256": meta["sha256"], "shard_tokens": meta["n_tokens"],
              "max_tokens": max_tokens}
    return EvalSet(name=name or prefix.name, tokens=windows, target_bytes=target_bytes,
                   tokenizer_hash=tok.hash, source=source)


def save_eval_set(eval_set: EvalSet, path: str | os.PathLike) -> Path:
    """Write ``eval_set`` as safetensors (``.safetensors`` is appended if missing); return the path."""
    from safetensors.numpy import save

    path = _with_suffix(path)
    info = {"format": EVAL_SET_FORMAT, "name": eval_set.name, "seq_len": eval_set.seq_len,
            "tokenizer_hash": eval_set.tokenizer_hash, "source": eval_set.source}
    # One metadata key: safetensors writes its metadata map in hash order, so several
    # keys would make the file bytes differ from one save to the next.
    metadata = {METADATA_KEY: json.dumps(info, sort_keys=True)}
    tensors = {"tokens": np.ascontiguousarray(eval_set.tokens, dtype=np.int32),
               "target_bytes": np.ascontiguousarray(eval_set.target_bytes, dtype=np.int32)}
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    return path


def load_eval_set(path: str | os.PathLike) -> EvalSet:
    """Read an eval set written by save_eval_set (the ``.safetensors`` suffix may be left off)."""
    path = Path(path)
    if not path.is_file() and _with_suffix(path).is_file():
        path = _with_suffix(path)
    if not path.is_file():
        raise MissingFileError("no such eval set file", path=str(path))
    tensors, metadata = read_safetensors(path, what="eval set", framework="numpy",
                                         fix="build it again (a study's prepare step does so by itself)")
    try:
        info = json.loads(metadata[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        raise InputError("not a synthscale eval set (no readable metadata)", path=str(path)) from None
    found = info.get("format") if isinstance(info, dict) else None
    if found != EVAL_SET_FORMAT:
        raise InputError(f"not a synthscale eval set (format {found!r})", path=str(path))
    tokens, target_bytes = tensors.get("tokens"), tensors.get("target_bytes")
    if tokens is None or target_bytes is None or tokens.ndim != 2 \
            or target_bytes.shape != (tokens.shape[0], tokens.shape[1] - 1):
        raise InputError("eval set needs tensors tokens [W, T+1] and target_bytes [W, T]", path=str(path))
    if tokens.shape[1] - 1 != info.get("seq_len"):
        raise InputError(f"metadata seq_len {info.get('seq_len')} does not match tokens {tokens.shape}",
                         path=str(path))
    return EvalSet(name=str(info.get("name", path.stem)), tokens=tokens, target_bytes=target_bytes,
                   tokenizer_hash=str(info.get("tokenizer_hash", "")), source=dict(info.get("source") or {}))


def _with_suffix(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.name.endswith(SUFFIX) else path.with_name(path.name + SUFFIX)
