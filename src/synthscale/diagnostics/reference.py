"""Reference figures of real corpora, measured with this stage, and the toyworld calibration bounds.

Measured by benchmarks/toyworld_calibration.py with ``compare_corpora`` (A = the natural
side, B = the LLM-written side, a byte-level BPE of 2048 tokens trained on both) on the
real samples in ../shared/corpora (docs/diagnostics.md, docs/toyworld.md):

- LLM rewrites of real documents: wiki_news_chatgpt (500 Wikipedia and news articles)
  original vs its ChatGPT rephrasing (``rephrase_base``) and vs a ChatGPT article written
  from the title (``generated_base``); common_pile_wrap_fewshot (16 passages) original vs
  its WRAP-style rewrite;
- web text against LLM textbooks: the first 1000 C4 documents vs the library-of-phi
  textbooks (747 sections).

Recorded here so that the report can give a scale and tests can check toyworld without the
shared folder. KL in nats per token; unseen = share of A's token mass whose types never
occur in B.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

REFERENCE_VOCAB_SIZE = 2048
REAL_REWRITES = ("wiki_news_chatgpt:rephrase_base", "wiki_news_chatgpt:generated_base",
                 "common_pile_wrap_fewshot:rephrase")
REAL_TEXTBOOK = "c4_en_1k:library_of_phi"
REAL_FIGURES: dict[str, dict[str, float]] = {
    "wiki_news_chatgpt:rephrase_base": {"kl_a_b": 0.0281, "unseen_a_in_b": 0.00094},
    "wiki_news_chatgpt:generated_base": {"kl_a_b": 0.0638, "unseen_a_in_b": 0.00110},
    "common_pile_wrap_fewshot:rephrase": {"kl_a_b": 0.2435, "unseen_a_in_b": 0.05382},
    "c4_en_1k:library_of_phi": {"kl_a_b": 0.4397, "unseen_a_in_b": 0.00113},
}
# name -> (A, B), each (path under the shared corpora folder, text field, id field)
REAL_PAIRS: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "wiki_news_chatgpt:rephrase_base": (("paired/wiki_news_chatgpt.jsonl.gz", "original", "id"),
                                        ("paired/wiki_news_chatgpt.jsonl.gz", "rephrase_base", "id")),
    "wiki_news_chatgpt:generated_base": (("paired/wiki_news_chatgpt.jsonl.gz", "original", "id"),
                                         ("paired/wiki_news_chatgpt.jsonl.gz", "generated_base", "id")),
    "common_pile_wrap_fewshot:rephrase": (("paired/common_pile_wrap_fewshot.jsonl.gz", "original", "source_path"),
                                          ("paired/common_pile_wrap_fewshot.jsonl.gz", "rephrase", "source_path")),
    "c4_en_1k:library_of_phi": (("natural/c4_en_1k.jsonl.gz", "text", "id"),
                                ("synthetic/textbooks_library_of_phi.jsonl.gz", "text", "id")),
}
REWRITE_TOLERANCE = 1.5  # toyworld rewrites: inside the real range, or at most 1.5x its top
TEXTBOOK_FACTOR = 3.0    # toyworld textbook: within a factor 3 (either way) of C4 vs real textbooks
CALIBRATED_FIGURES = ("kl_a_b", "unseen_a_in_b")


def calibration_bounds(
        real: Mapping[str, Mapping[str, float]] = REAL_FIGURES) -> dict[str, dict[str, tuple[float, float]]]:
    """(low, high) per toyworld kind (hq, qa, textbook) and figure (kl_a_b, unseen_a_in_b).

    hq and qa: from the lowest real rewrite to 1.5x the highest; textbook: a factor 3 either
    side of C4 vs the library-of-phi textbooks.
    """
    rewrites = [real[name] for name in REAL_REWRITES]
    book = real[REAL_TEXTBOOK]
    bounds = {kind: {f: (min(r[f] for r in rewrites), REWRITE_TOLERANCE * max(r[f] for r in rewrites))
                     for f in CALIBRATED_FIGURES} for kind in ("hq", "qa")}
    bounds["textbook"] = {f: (book[f] / TEXTBOOK_FACTOR, book[f] * TEXTBOOK_FACTOR) for f in CALIBRATED_FIGURES}
    return bounds


def measure_real_pairs(corpora_root: str | Path, vocab_size: int = REFERENCE_VOCAB_SIZE,
                       names: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """``compare_corpora`` of each real pair (all, or ``names``) under ``corpora_root`` (../shared/corpora)."""
    from .compare import CorpusRef, compare_corpora

    root = Path(corpora_root)
    out = {}
    for name in names or tuple(REAL_PAIRS):
        a, b = (CorpusRef(str(root / path), text, ident) for path, text, ident in REAL_PAIRS[name])
        out[name] = compare_corpora(a, b, vocab_size=vocab_size)
    return out
