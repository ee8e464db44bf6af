"""Compare two corpora through one shared tokenizer (``synthscale corpus compare A B``).

Reads both corpora with the project's readers, tokenizes them with one tokenizer (a
given one, or a byte-level BPE trained on both), and returns plain dicts of the metrics
in :mod:`synthscale.diagnostics.metrics`: unigram KL both ways, unseen token mass both
ways, type-token ratio, distinct-2/3, gzip ratio, document length ratio and, for paired
corpora, per-pair token overlap and the share of near-copies. When B's documents carry a
``round`` (collapse rounds, top-level field or ``meta["round"]``), every figure is also
given per round.
"""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..corpus import read_documents
from ..errors import ConfigError, InputError
from ..progress import progress_bar
from ..tokens import Tok, load_tokenizer, train_tokenizer
from . import metrics

COMPARE_FORMAT = "synthscale.corpus_compare/1"
DEFAULT_VOCAB_SIZE = 2048
DEFAULT_DIVERSITY_TOKENS = 100_000
DIVERSITY_SEED = 0
PAIR_MODES = ("auto", "parent", "id", "none")
SMOOTHING = ("KL(P||Q): P empirical, Q add-one (Laplace) smoothed over the shared vocabulary V, "
             "q(t) = (count(t) + 1) / (N + V); nats per token")
ENCODE_BATCH = 256


@dataclass(frozen=True)
class CorpusRef:
    """Where a corpus is and which record fields hold its text and id."""

    path: str
    text_field: str = "text"
    id_field: str = "id"


@dataclass
class CorpusSample:
    """The documents of a corpus read for diagnostics.

    Documents ``[0, n_main)`` are the corpus (its first ``max_docs``); any after them
    were read further on only because a paired corpus names them as parents.
    """

    ref: CorpusRef
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    parent_ids: list[str | None] = field(default_factory=list)
    rounds: list[str | None] = field(default_factory=list)
    n_main: int = 0
    truncated: bool = False  # the corpus has more documents than were read

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Tokenized:
    """Token ids of a list of documents: one flat array and the document offsets."""

    tokens: np.ndarray   # int32, all documents concatenated
    offsets: np.ndarray  # int64, start of each document, then the end

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, indices: Sequence[int]) -> "Tokenized":
        """The documents at ``indices``, in that order."""
        parts = [self.doc(i) for i in indices]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in parts]) if parts else []
        tokens = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)
        return Tokenized(tokens, offsets)


def read_sample(ref: CorpusRef, *, max_docs: int | None = None, also_ids: Iterable[str] = (),
                progress: bool = False) -> CorpusSample:
    """Read the first ``max_docs`` documents of a corpus (all when None).

    With ``also_ids``, reading goes on past ``max_docs`` to collect those documents too
    (the parents a paired corpus names), stopping as soon as all are found.
    """
    if max_docs is not None and max_docs < 1:
        raise ConfigError(f"max_docs must be at least 1, got {max_docs}")
    wanted = set(also_ids)
    sample = CorpusSample(ref=ref)
    with progress_bar(f"read {Path(ref.path).name}", enabled=progress, unit="docs") as advance:
        for doc in read_documents(ref.path, text_field=ref.text_field, id_field=ref.id_field):
            main = max_docs is None or sample.n_main < max_docs
            if not main:
                sample.truncated = True
                if not wanted:
                    break
                if doc.id not in wanted:
                    continue
            wanted.discard(doc.id)
            sample.ids.append(doc.id)
            sample.texts.append(doc.text)
            sample.parent_ids.append(doc.parent_id)
            rnd = doc.meta.get("round")
            sample.rounds.append(None if rnd is None else str(rnd))
            sample.n_main += main
            advance(1)
    if not sample.n_main:
        raise InputError("corpus has no documents", path=ref.path)
    return sample


def tokenize(texts: Sequence[str], tok: Tok, *, progress: bool = False, label: str = "tokenize") -> Tokenized:
    """Encode every text (no EOS added) into one flat int32 array with document offsets."""
    parts: list[np.ndarray] = []
    with progress_bar(label, len(texts), enabled=progress, unit="docs") as advance:
        for start in range(0, len(texts), ENCODE_BATCH):
            batch = texts[start:start + ENCODE_BATCH]
            for text in batch:  # numpy per piece: a long document never becomes one Python list
                pieces = [np.asarray(ids, dtype=np.int32) for ids in tok.encode_pieces(text)]
                parts.append(np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32))
            advance(len(batch))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    if parts:
        offsets[1:] = np.cumsum([len(p) for p in parts])
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return Tokenized(tokens, offsets)


def shared_tokenizer(samples: Sequence[CorpusSample], tokenizer: str | Path | Tok | None,
                     vocab_size: int = DEFAULT_VOCAB_SIZE, save_to: str | Path | None = None,
                     progress: bool = False) -> tuple[Tok, str]:
    """The given tokenizer, or a byte-level BPE of ``vocab_size`` trained on all the samples' texts.

    Returns the tokenizer and a description of where it came from.
    """
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        return tok, str(getattr(tok, "source", tokenizer))
    texts = [t for s in samples for t in s.texts[:s.n_main]]
    with tempfile.TemporaryDirectory(prefix="synthscale-compare-") as tmp:
        path = Path(save_to) if save_to is not None else Path(tmp) / "tokenizer.json"
        if progress:
            import sys
            print(f"training a {vocab_size}-token BPE on {len(texts):,} documents of both corpora",
                  file=sys.stderr, flush=True)
        train_tokenizer(texts, vocab_size, path, n_docs=len(texts))
        tok = load_tokenizer(path)
    where = f"byte-level BPE, vocab {vocab_size}, trained on both corpora"
    return tok, where + (f" (saved to {save_to})" if save_to is not None else "")


# ---------------------------------------------------------------- profiles and comparisons


def diversity_sample(tokenized: Tokenized, n_tokens: int, seed: int = DIVERSITY_SEED) -> Tokenized:
    """The first ``n_tokens`` tokens of the documents taken in a seeded random order (last one cut)."""
    order = np.random.default_rng(seed).permutation(tokenized.n_docs)
    lengths = tokenized.lengths()[order]
    cum = np.cumsum(lengths)
    k = int(np.searchsorted(cum, n_tokens, side="left")) + 1
    chosen = tokenized.subset(order[:k].tolist())
    if chosen.offsets[-1] > n_tokens:
        chosen.tokens = chosen.tokens[:n_tokens]
        chosen.offsets = np.minimum(chosen.offsets, n_tokens)
    return chosen


def diversity(tokenized: Tokenized, n_tokens: int, vocab_size: int) -> dict[str, Any]:
    """Type-token ratio and distinct-2/3 on a sample of exactly ``n_tokens`` tokens (see metrics)."""
    sample = diversity_sample(tokenized, n_tokens)
    return {"diversity_tokens": int(len(sample.tokens)),
            "ttr": metrics.type_token_ratio(sample.tokens),
            "distinct_2": metrics.distinct_n(sample.tokens, sample.offsets, 2, vocab_size),
            "distinct_3": metrics.distinct_n(sample.tokens, sample.offsets, 3, vocab_size)}


def profile(texts: Sequence[str], tokenized: Tokenized, vocab_size: int, diversity_tokens: int) -> dict[str, Any]:
    """One corpus on its own: size, mean length, redundancy (gzip) and diversity."""
    n_tokens = int(len(tokenized.tokens))
    return {
        "documents": tokenized.n_docs,
        "tokens": n_tokens,
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
        "mean_tokens_per_doc": n_tokens / tokenized.n_docs if tokenized.n_docs else math.nan,
        "gzip_ratio": metrics.gzip_ratio(texts),
        **diversity(tokenized, min(diversity_tokens, n_tokens), vocab_size),
    }


def divergence(a: Tokenized, b: Tokenized, vocab_size: int) -> dict[str, float]:
    """Unigram KL both ways, unseen mass both ways and the mean document length ratio b/a."""
    ca = metrics.unigram_counts(a.tokens, vocab_size)
    cb = metrics.unigram_counts(b.tokens, vocab_size)
    mean_a = len(a.tokens) / a.n_docs if a.n_docs else math.nan
    mean_b = len(b.tokens) / b.n_docs if b.n_docs else math.nan
    return {"kl_a_b": metrics.unigram_kl(ca, cb), "kl_b_a": metrics.unigram_kl(cb, ca),
            "unseen_a_in_b": metrics.unseen_mass(ca, cb), "unseen_b_in_a": metrics.unseen_mass(cb, ca),
            "length_ratio": mean_b / mean_a if mean_a else math.nan}


def pair_indices(a: CorpusSample, b: CorpusSample, b_indices: Sequence[int],
                 mode: str) -> tuple[str, list[tuple[int, int]], int]:
    """(mode used, [(a index, b index)], B documents whose partner is missing) for ``mode``."""
    if mode not in PAIR_MODES:
        raise ConfigError(f"pair_by must be one of {', '.join(PAIR_MODES)}, got '{mode}'")
    where = {doc_id: i for i, doc_id in enumerate(a.ids)}
    if mode == "auto":
        if any(b.parent_ids[j] is not None for j in b_indices):
            mode = "parent"
        elif b_indices and sum(b.ids[j] in where for j in b_indices) >= 0.5 * len(b_indices):
            mode = "id"
        else:
            return "none", [], 0
    if mode == "none":
        return "none", [], 0
    keys = [b.parent_ids[j] if mode == "parent" else b.ids[j] for j in b_indices]
    pairs = [(where[k], j) for k, j in zip(keys, b_indices) if k is not None and k in where]
    return mode, pairs, len(b_indices) - len(pairs)


def paired(a: CorpusSample, ta: Tokenized, b: CorpusSample, tb: Tokenized, pairs: list[tuple[int, int]],
           mode: str, missing: int) -> dict[str, Any] | None:
    """Mean per-pair overlap/recall, length ratio, trigram Jaccard and the near-copy share."""
    if mode == "none":
        return None
    overlap, recall, lengths, jaccard = [], [], [], []
    for i, j in pairs:
        o, r = metrics.pair_overlap(ta.doc(i), tb.doc(j))
        overlap.append(o)
        recall.append(r)
        la = len(ta.doc(i))
        lengths.append(len(tb.doc(j)) / la if la else math.nan)
        jaccard.append(metrics.trigram_jaccard(a.texts[i], b.texts[j]))

    def mean(xs: list[float]) -> float:
        vals = [x for x in xs if not math.isnan(x)]
        return float(np.mean(vals)) if vals else math.nan

    return {"by": mode, "pairs": len(pairs), "missing": missing, "overlap": mean(overlap), "recall": mean(recall),
            "length_ratio": mean(lengths), "trigram_jaccard": mean(jaccard),
            "near_copy_share": float(np.mean([x >= metrics.NEAR_COPY for x in jaccard])) if jaccard else math.nan}


def compare_tokenized(a: CorpusSample, ta: Tokenized, b: CorpusSample, tb: Tokenized, vocab_size: int, *,
                      pair_by: str = "auto", diversity_tokens: int = DEFAULT_DIVERSITY_TOKENS) -> dict[str, Any]:
    """Every comparison figure of B against A (both already read and tokenized with one tokenizer).

    ``ta``/``tb`` hold every document of the samples; only the first ``n_main`` of each
    enter the corpus-level figures. Returns ``a`` and ``b`` profiles, the divergences,
    ``pairs`` (None when unpaired) and, when B has rounds, ``rounds`` (round -> the same
    figures for B's documents of that round).
    """
    a_main = ta.subset(range(a.n_main))
    b_idx = list(range(b.n_main))
    out = _against(a, ta, a_main, b, tb, b_idx, vocab_size, pair_by, diversity_tokens)
    by_round: dict[str, list[int]] = defaultdict(list)
    for j in b_idx:
        if b.rounds[j] is not None:
            by_round[b.rounds[j]].append(j)
    if by_round:
        out["rounds"] = {r: _against(a, ta, a_main, b, tb, idx, vocab_size, pair_by, diversity_tokens)
                         for r, idx in sorted(by_round.items(), key=lambda kv: _round_key(kv[0]))}
    return out


def _against(a: CorpusSample, ta: Tokenized, a_main: Tokenized, b: CorpusSample, tb: Tokenized,
             b_idx: list[int], vocab_size: int, pair_by: str, diversity_tokens: int) -> dict[str, Any]:
    b_main = tb.subset(b_idx)
    n_div = min(diversity_tokens, len(a_main.tokens), len(b_main.tokens))
    out: dict[str, Any] = {
        "a": profile(a.texts[:a.n_main], a_main, vocab_size, n_div),
        "b": profile([b.texts[j] for j in b_idx], b_main, vocab_size, n_div),
        **divergence(a_main, b_main, vocab_size),
    }
    mode, pairs, missing = pair_indices(a, b, b_idx, pair_by)
    out["pairs"] = paired(a, ta, b, tb, pairs, mode, missing)
    return out


def _round_key(r: str) -> tuple[int, float | str]:
    try:
        return (0, float(r))
    except ValueError:
        return (1, r)


def compare_corpora(a: str | CorpusRef, b: str | CorpusRef, *, tokenizer: str | Path | Tok | None = None,
                    vocab_size: int = DEFAULT_VOCAB_SIZE, pair_by: str = "auto", max_docs: int | None = None,
                    diversity_tokens: int = DEFAULT_DIVERSITY_TOKENS, save_tokenizer: str | Path | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """Compare corpus B against corpus A (the reference, e.g. natural text) with one shared tokenizer.

    ``a``/``b``: paths (or hf:// addresses), or CorpusRef with text and id fields.
    ``tokenizer``: a tokenizer.json / HF folder / Tok; when None a byte-level BPE of
    ``vocab_size`` is trained on the texts of both (saved to ``save_tokenizer`` if given).
    ``pair_by``: auto (B's ``parent_id`` when present, else B ids equal to A ids), parent,
    id or none. ``max_docs``: read at most this many documents of each corpus (B's
    parents beyond it are still found for the pairs). Returns the JSON-ready result.
    """
    a_ref = a if isinstance(a, CorpusRef) else CorpusRef(str(a))
    b_ref = b if isinstance(b, CorpusRef) else CorpusRef(str(b))
    if diversity_tokens < 1:
        raise ConfigError(f"diversity_tokens must be at least 1, got {diversity_tokens}")
    b_sample = read_sample(b_ref, max_docs=max_docs, progress=progress)
    parents = [p for p in b_sample.parent_ids[:b_sample.n_main] if p is not None] if pair_by in ("auto", "parent") \
        else (b_sample.ids[:b_sample.n_main] if pair_by == "id" else [])
    a_sample = read_sample(a_ref, max_docs=max_docs, also_ids=parents, progress=progress)
    tok, tok_where = shared_tokenizer([a_sample, b_sample], tokenizer, vocab_size, save_tokenizer, progress)
    ta = tokenize(a_sample.texts, tok, progress=progress, label="tokenize A")
    tb = tokenize(b_sample.texts, tok, progress=progress, label="tokenize B")
    result = compare_tokenized(a_sample, ta, b_sample, tb, tok.vocab_size, pair_by=pair_by,
                               diversity_tokens=diversity_tokens)
    for side, ref, sample in (("a", a_ref, a_sample), ("b", b_ref, b_sample)):
        result[side] = {"source": ref.path, "text_field": ref.text_field, "id_field": ref.id_field,
                        "truncated": sample.truncated, **result[side]}
    return json_ready({"format": COMPARE_FORMAT,
                       "tokenizer": {"source": tok_where, "vocab_size": tok.vocab_size, "hash": tok.hash},
                       "smoothing": SMOOTHING, "settings": {"max_docs": max_docs, "diversity_tokens": diversity_tokens,
                                                            "pair_by": pair_by, "near_copy": metrics.NEAR_COPY},
                       **result})


def json_ready(obj: Any) -> Any:
    """``obj`` with every NaN (a figure that does not exist, e.g. no pairs) as None, numpy scalars as Python."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


# ---------------------------------------------------------------- text output


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def format_comparison(result: dict[str, Any]) -> str:
    """The result of compare_corpora as a short report for a terminal."""
    a, b = result["a"], result["b"]
    lines = [f"A: {a['source']} (field '{a['text_field']}')", f"B: {b['source']} (field '{b['text_field']}')",
             f"tokenizer: {result['tokenizer']['source']} ({result['tokenizer']['vocab_size']} ids)", ""]
    lines += _figure_lines(result)
    for rnd, sub in (result.get("rounds") or {}).items():
        lines += ["", f"round {rnd} of B:"] + ["  " + line for line in _figure_lines(sub)]
    lines += ["", f"Smoothing: {result['smoothing']}.",
              f"Diversity on {a['diversity_tokens']:,} tokens of each corpus (documents in a seeded random order); "
              "see docs/diagnostics.md for every definition."]
    return "\n".join(lines)


def _figure_lines(r: dict[str, Any]) -> list[str]:
    a, b = r["a"], r["b"]
    rows = [("documents", f"{a['documents']:,}", f"{b['documents']:,}"),
            ("tokens", f"{a['tokens']:,}", f"{b['tokens']:,}"),
            ("tokens per document", _num(a["mean_tokens_per_doc"], 1), _num(b["mean_tokens_per_doc"], 1)),
            ("type-token ratio", _num(a["ttr"], 4), _num(b["ttr"], 4)),
            ("distinct-2", _num(a["distinct_2"]), _num(b["distinct_2"])),
            ("distinct-3", _num(a["distinct_3"]), _num(b["distinct_3"])),
            ("gzip ratio (bytes/gzip bytes)", _num(a["gzip_ratio"], 2), _num(b["gzip_ratio"], 2))]
    out = [f"{'':32}{'A':>14}{'B':>14}"] + [f"{name:32}{x:>14}{y:>14}" for name, x, y in rows]
    out += [f"KL(A || B) = {_num(r['kl_a_b'])} nats/token    KL(B || A) = {_num(r['kl_b_a'])} nats/token",
            f"A's token mass whose types never occur in B: {_pct(r['unseen_a_in_b'])}    "
            f"B's never in A: {_pct(r['unseen_b_in_a'])}",
            f"document length ratio (mean tokens B / A): {_num(r['length_ratio'])}"]
    p = r.get("pairs")
    if p:
        out += [f"pairs (B's {'parent_id' if p['by'] == 'parent' else 'id'} names an A document): {p['pairs']:,}"
                f" ({p['missing']:,} B documents without one)",
                f"  token overlap: {_num(p['overlap'])} of B's tokens are in its parent; "
                f"{_num(p['recall'])} of the parent's are kept",
                f"  length ratio {_num(p['length_ratio'])}, word-trigram Jaccard {_num(p['trigram_jaccard'])}, "
                f"near-copies (Jaccard >= {metrics.NEAR_COPY:g}): {_pct(p['near_copy_share'])}"]
    else:
        out.append("pairs: none (B names no A document; --pair-by to choose)")
    return out
