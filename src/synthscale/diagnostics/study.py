"""Diagnostics of a study's corpora: every synthetic kind against the natural corpus.

The study's prepare step writes the result as ``STUDY/diagnostics.json`` (docs/contracts.md)
with the study's own tokenizer; the report shows it in its "Corpus diagnostics" section.
When a kind's documents carry a collapse ``round``, every figure is also given per round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..tokens import Tok, load_tokenizer
from .compare import (DEFAULT_DIVERSITY_TOKENS, SMOOTHING, CorpusRef, compare_tokenized, json_ready, profile,
                      read_sample, tokenize)
from .metrics import NEAR_COPY

DIAGNOSTICS_FORMAT = "synthscale.diagnostics/1"
# Bump when a figure's definition changes: it is part of the study file's key, so studies recompute it.
DIAGNOSTICS_VERSION = "1"
STUDY_MAX_DOCS = 20_000
_VS_NATURAL = {"kl_a_b": "kl_natural_kind", "kl_b_a": "kl_kind_natural", "unseen_a_in_b": "unseen_natural_in_kind",
               "unseen_b_in_a": "unseen_kind_in_natural", "length_ratio": "length_ratio", "pairs": "pairs"}


def study_diagnostics(natural: CorpusRef, synthetic: Mapping[str, CorpusRef], tokenizer: str | Path | Tok, *,
                      max_docs: int | None = STUDY_MAX_DOCS, diversity_tokens: int = DEFAULT_DIVERSITY_TOKENS,
                      progress: bool = False) -> dict[str, Any]:
    """Every synthetic kind compared with the natural corpus through ``tokenizer``.

    Reads the first ``max_docs`` documents of each corpus (and, for rewrites, the natural
    documents their ``parent_id`` names). Type-token ratio and distinct-n are measured on
    the same number of tokens for every corpus (``diversity_tokens``, or the smallest
    corpus). Returns ``{"format", "tokenizer_hash", "vocab_size", "smoothing", "settings",
    "natural": profile, "kinds": {KIND: {"corpus": profile, "vs_natural": figures,
    "rounds": {ROUND: {"corpus", "vs_natural"}}?}}}``; the figures are those of
    ``compare_corpora`` with A = natural and B = the kind (docs/diagnostics.md).
    """
    tok = load_tokenizer(tokenizer)
    samples = {kind: read_sample(ref, max_docs=max_docs, progress=progress) for kind, ref in sorted(synthetic.items())}
    parents = {p for s in samples.values() for p in s.parent_ids[:s.n_main] if p is not None}
    nat = read_sample(natural, max_docs=max_docs, also_ids=parents, progress=progress)
    t_nat = tokenize(nat.texts, tok, progress=progress, label="tokenize natural")
    tokenized = {kind: tokenize(s.texts, tok, progress=progress, label=f"tokenize {kind}")
                 for kind, s in samples.items()}
    n_div = min([diversity_tokens, int(t_nat.offsets[nat.n_main])]
                + [int(t.offsets[samples[k].n_main]) for k, t in tokenized.items()])
    out: dict[str, Any] = {
        "format": DIAGNOSTICS_FORMAT, "version": DIAGNOSTICS_VERSION, "tokenizer_hash": tok.hash,
        "vocab_size": tok.vocab_size, "smoothing": SMOOTHING,
        "settings": {"max_docs": max_docs, "diversity_tokens": n_div, "near_copy": NEAR_COPY},
        "natural": None, "kinds": {},
    }
    for kind, sample in samples.items():
        result = compare_tokenized(nat, t_nat, sample, tokenized[kind], tok.vocab_size, pair_by="auto",
                                   diversity_tokens=n_div)
        out["natural"] = {"source": natural.path, "truncated": nat.truncated, **result["a"]}
        entry = {"corpus": {"source": synthetic[kind].path, "truncated": sample.truncated, **result["b"]},
                 **_vs_natural(result)}
        if "rounds" in result:
            entry["rounds"] = {r: {"corpus": sub["b"], **_vs_natural(sub)} for r, sub in result["rounds"].items()}
        out["kinds"][kind] = entry
    if out["natural"] is None:  # no synthetic kind: the natural corpus on its own
        out["natural"] = {"source": natural.path, "truncated": nat.truncated,
                          **profile(nat.texts[:nat.n_main], t_nat.subset(range(nat.n_main)), tok.vocab_size, n_div)}
    return json_ready(out)


def _vs_natural(result: dict[str, Any]) -> dict[str, Any]:
    return {"vs_natural": {new: result[old] for old, new in _VS_NATURAL.items()}}
