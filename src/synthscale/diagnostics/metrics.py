"""The metrics of corpus diagnostics, as small pure functions (numbers in, numbers out).

Definitions (docs/diagnostics.md has the worked examples the tests check):

- unigram KL, ``kl(P || Q)``: P is corpus A's empirical token distribution, Q corpus B's
  distribution with add-one (Laplace) smoothing over the shared vocabulary of size V,
  q(t) = (count_B(t) + 1) / (N_B + V), the same smoothing as the study's unigram
  baseline. KL = sum over the types t that occur in A of p(t) ln(p(t) / q(t)), in nats
  per token: the extra nats per token a unigram model of B pays on A's tokens compared
  with A's own unigram model. Finite even where B lacks a type A uses.
- unseen mass: the share of A's tokens (counted with multiplicity) whose type never
  occurs in B.
- type-token ratio: distinct token types / tokens; distinct-n: distinct token n-grams /
  n-grams (Li et al. 2016), n-grams never crossing a document boundary. All three shrink
  as a corpus grows, so they are only compared on samples of equal token counts.
- gzip ratio: UTF-8 bytes / gzip bytes of the documents joined by newlines (level 9).
  Higher means more redundant text.
- pair overlap: for a rewrite B of a document A, the clipped unigram overlap
  sum_t min(count_A(t), count_B(t)) divided by B's tokens (``overlap``: how much of the
  rewrite's text is the parent's tokens) or by A's tokens (``recall``: how much of the
  parent the rewrite keeps).
- near-copy: word-trigram Jaccard similarity (lowercased ``\\w+`` words, trigram sets)
  at least NEAR_COPY = 0.9, the definition of the generate stage's near_copy gate.
"""

from __future__ import annotations

import gzip
import math
import re
from typing import Iterable, Sequence

import numpy as np

NEAR_COPY = 0.9
_WORD = re.compile(r"\w+")


def unigram_counts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Count of every id in [0, vocab_size) (int64 [vocab_size])."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got {int(tokens.min())}..{int(tokens.max())}")
    return np.bincount(tokens, minlength=vocab_size).astype(np.int64)


def unigram_kl(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """KL(P || Q) in nats: P empirical from ``p_counts``, Q add-one smoothed from ``q_counts``.

    Both arrays have one entry per id of the shared vocabulary (V = their length).
    NaN when P has no tokens.
    """
    p_counts = np.asarray(p_counts, dtype=np.float64)
    q_counts = np.asarray(q_counts, dtype=np.float64)
    if p_counts.shape != q_counts.shape:
        raise ValueError(f"count vectors differ in length: {p_counts.shape} vs {q_counts.shape}")
    n_p = p_counts.sum()
    if n_p == 0:
        return math.nan
    vocab = len(q_counts)
    seen = p_counts > 0
    p = p_counts[seen] / n_p
    q = (q_counts[seen] + 1.0) / (q_counts.sum() + vocab)
    return float(np.sum(p * (np.log(p) - np.log(q))))


def unseen_mass(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Share of P's tokens whose type has count 0 in Q (NaN when P has no tokens)."""
    p_counts = np.asarray(p_counts, dtype=np.float64)
    n_p = p_counts.sum()
    if n_p == 0:
        return math.nan
    return float(p_counts[np.asarray(q_counts) == 0].sum() / n_p)


def ngram_keys(tokens: np.ndarray, offsets: np.ndarray, n: int, vocab_size: int) -> np.ndarray:
    """One int64 key per token n-gram of the documents (``offsets``: doc starts, then the end).

    N-grams never cross a document boundary.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    if n < 1:
        raise ValueError("n must be at least 1")
    if vocab_size ** n >= 2 ** 63:
        raise ValueError(f"{n}-grams of a vocabulary of {vocab_size} do not fit in 64 bits")
    total = len(tokens) - n + 1
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.zeros(total, dtype=np.int64)
    for j in range(n):
        keys = keys * vocab_size + tokens[j:j + total]
    # an n-gram starting at i is whole when i + n <= end of its document
    starts = np.arange(total)
    doc_end = np.asarray(offsets, dtype=np.int64)[np.searchsorted(offsets, starts, side="right")]
    return keys[starts + n <= doc_end]


def distinct_n(tokens: np.ndarray, offsets: np.ndarray, n: int, vocab_size: int) -> float:
    """Distinct n-grams / n-grams over the documents (NaN without any n-gram)."""
    keys = ngram_keys(tokens, offsets, n, vocab_size)
    return float(len(np.unique(keys)) / len(keys)) if len(keys) else math.nan


def type_token_ratio(tokens: np.ndarray) -> float:
    """Distinct token types / tokens (NaN for no tokens)."""
    tokens = np.asarray(tokens)
    return float(len(np.unique(tokens)) / len(tokens)) if len(tokens) else math.nan


def gzip_ratio(texts: Iterable[str]) -> float:
    """UTF-8 bytes / gzip bytes of the texts joined by newlines (NaN for no text)."""
    data = "\n".join(texts).encode("utf-8")
    if not data:
        return math.nan
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))


def pair_overlap(parent: Sequence[int], rewrite: Sequence[int]) -> tuple[float, float]:
    """(overlap, recall) of a rewrite against its parent: clipped unigram overlap / rewrite, / parent tokens."""
    a = np.asarray(parent, dtype=np.int64)
    b = np.asarray(rewrite, dtype=np.int64)
    if not len(a) or not len(b):
        return 0.0, 0.0
    va, ca = np.unique(a, return_counts=True)
    vb, cb = np.unique(b, return_counts=True)
    _, ia, ib = np.intersect1d(va, vb, assume_unique=True, return_indices=True)
    common = int(np.minimum(ca[ia], cb[ib]).sum())
    return common / len(b), common / len(a)


def word_trigrams(text: str) -> set[tuple[str, ...]]:
    """The set of lowercased word trigrams of a text (as the near_copy gate counts them)."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def trigram_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the word-trigram sets of two texts (0 when both have none)."""
    sa, sb = word_trigrams(a), word_trigrams(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 0.0
