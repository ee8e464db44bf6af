"""Corpus diagnostics in the report: how each synthetic kind relates to the natural corpus.

The study's prepare step writes ``STUDY/diagnostics.json`` (synthscale.diagnostics.study,
docs/contracts.md, docs/diagnostics.md): unigram KL both ways, unseen token mass, length
ratio, diversity, redundancy and, for rewrites, per-pair overlap and near-copies, measured
with the study's tokenizer. These are also the collapse signals: with rounds, one row per
round. The report shows them in a "Corpus diagnostics" section; without the file (older
study folders) there is no such section.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .document import Block, Heading, Paragraph, Table
from .inputs import read_study_json, validated

DIAGNOSTICS_FILE = "diagnostics.json"


def real_reference() -> str:
    """One sentence giving the figures of real LLM output against real text, for scale."""
    from ..diagnostics.reference import REAL_FIGURES, REAL_REWRITES, REAL_TEXTBOOK, REFERENCE_VOCAB_SIZE

    kl = [REAL_FIGURES[n]["kl_a_b"] for n in REAL_REWRITES]
    unseen = [REAL_FIGURES[n]["unseen_a_in_b"] for n in REAL_REWRITES]
    book = REAL_FIGURES[REAL_TEXTBOOK]
    return (f"For scale, real LLM rewrites of real documents give KL(natural || rewrite) of {min(kl):.2f}-"
            f"{max(kl):.2f} nats and {100 * min(unseen):.1f}-{100 * max(unseen):.1f}% unseen mass, and a C4 sample "
            f"against LLM-written textbooks {book['kl_a_b']:.2f} nats and {100 * book['unseen_a_in_b']:.1f}% "
            f"({REFERENCE_VOCAB_SIZE}-token BPE trained on both sides; docs/diagnostics.md). The figures depend on "
            "the tokenizer: compare kinds within one study rather than across studies.")


class Profile(BaseModel):
    """One corpus on its own (any figure may be missing)."""

    model_config = ConfigDict(extra="allow")

    documents: int | None = None
    tokens: int | None = None
    mean_tokens_per_doc: float | None = None
    ttr: float | None = None
    distinct_2: float | None = None
    distinct_3: float | None = None
    gzip_ratio: float | None = None


class Pairs(BaseModel):
    model_config = ConfigDict(extra="allow")

    by: str | None = None
    pairs: int | None = None
    overlap: float | None = None
    recall: float | None = None
    near_copy_share: float | None = None


class VsNatural(BaseModel):
    model_config = ConfigDict(extra="allow")

    kl_natural_kind: float | None = None
    kl_kind_natural: float | None = None
    unseen_natural_in_kind: float | None = None
    unseen_kind_in_natural: float | None = None
    length_ratio: float | None = None
    pairs: Pairs | None = None


class KindRound(BaseModel):
    model_config = ConfigDict(extra="allow")

    corpus: Profile = Profile()
    vs_natural: VsNatural = VsNatural()


class Kind(KindRound):
    rounds: dict[str, KindRound] = {}


class Diagnostics(BaseModel):
    """``diagnostics.json``: the natural corpus and every synthetic kind against it."""

    model_config = ConfigDict(extra="allow")

    vocab_size: int | None = None
    settings: dict[str, Any] = {}
    natural: Profile = Profile()
    kinds: dict[str, Kind] = {}


def load_diagnostics(study_dir: Path) -> Diagnostics | None:
    """Read ``study_dir/diagnostics.json``; None when the study has none; a bad field raises InputError."""
    path = Path(study_dir) / DIAGNOSTICS_FILE
    raw = read_study_json(path)
    return None if raw is None else validated(Diagnostics, raw, str(path))


def diagnostics_blocks(study_dir: Path) -> list[Block]:
    """The "Corpus diagnostics" section of the report ([] without diagnostics.json)."""
    diag = load_diagnostics(study_dir)
    if diag is None:
        return []
    rows = [_row("natural", diag.natural, None)]
    for kind, entry in sorted(diag.kinds.items()):
        rows.append(_row(kind, entry.corpus, entry.vs_natural))
        for rnd, sub in sorted(entry.rounds.items(), key=lambda kv: _round_key(kv[0])):
            rows.append(_row(f"{kind}, round {rnd}", sub.corpus, sub.vs_natural))
    n_div = diag.settings.get("diversity_tokens")
    vocab = f"{diag.vocab_size:,}-token" if diag.vocab_size else "the study's"
    table = Table(("Corpus", "Docs", "Tokens/doc", "KL(nat‖kind)", "KL(kind‖nat)", "Natural mass unseen",
                   "Length ratio", "TTR", "Distinct-2", "Distinct-3", "gzip ratio", "Pair overlap",
                   "Near-copies"), tuple(rows),
                  caption=f"Each synthetic kind against the natural corpus, with the study's {vocab} tokenizer")
    return [
        Heading("Corpus diagnostics"),
        Paragraph("How each synthetic corpus relates to the natural one it stands in for. KL is the unigram "
                  "KL divergence in nats per token (the second corpus add-one smoothed); **natural mass unseen** "
                  "is the share of the natural corpus's tokens whose types never occur in the kind; **length "
                  "ratio** is the mean document length of the kind over natural's. TTR and distinct-2/3 "
                  "(distinct token types, bigrams, trigrams per token) measure diversity"
                  + (f", on {n_div:,} tokens of every corpus" if isinstance(n_div, int) else "")
                  + "; the gzip ratio (bytes per gzip byte) measures redundancy. For rewrites (documents "
                  "naming their natural parent), **pair overlap** is the mean share of a rewrite's tokens found "
                  "in its parent and **near-copies** the share of rewrites whose word trigrams are at least 90% "
                  "those of their parent. Collapse shows as falling diversity, rising redundancy and "
                  "near-copies, and growing KL from round to round."),
        table,
        Paragraph(real_reference()),
    ]


def _row(name: str, corpus: Any, vs: VsNatural | None) -> tuple[str, ...]:
    pairs = vs.pairs if vs is not None else None
    return (
        f"`{name}`",
        _int(corpus.documents),
        _f(corpus.mean_tokens_per_doc, 1),
        _f(vs.kl_natural_kind, 3) if vs else "",
        _f(vs.kl_kind_natural, 3) if vs else "",
        _pct(vs.unseen_natural_in_kind) if vs else "",
        _f(vs.length_ratio, 2) if vs else "",
        _f(corpus.ttr, 4),
        _f(corpus.distinct_2, 3),
        _f(corpus.distinct_3, 3),
        _f(corpus.gzip_ratio, 2),
        _f(pairs.overlap, 2) if pairs is not None else "",
        _pct(pairs.near_copy_share) if pairs is not None else "",
    )


def _f(x: float | None, digits: int) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.2f}%"


def _int(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def _round_key(r: str) -> tuple[int, float | str]:
    try:
        return (0, float(r))
    except ValueError:
        return (1, r)
