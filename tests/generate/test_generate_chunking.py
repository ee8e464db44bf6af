"""generate/chunking: sentence splitting, chunks of at most K tokens, parent ids, reassembly."""

from __future__ import annotations

import re

import pytest

from synthscale.corpus import Document
from synthscale.errors import ConfigError
from synthscale.generate import approx_token_counts, chunk_document, reassemble, split_sentences
from synthscale.generate.chunking import chunk_spans
from synthscale.tokens import load_tokenizer, train_tokenizer

PARAGRAPHS = [
    "Dr. Tessa Varn founded Brumholt in 1801. The town lies on the river Olm, e.g. near the ford! "
    "Was it the first town there? Nobody knows.",
    "Trade grew quickly. Leather, salt and timber left by boat; grain came back. " * 6,
    "A sentence without an end but with many words " + "that goes on and on " * 40,
]
TEXT = "\n\n".join(PARAGRAPHS)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_sentences_tile_the_text_and_respect_abbreviations():
    spans = split_sentences(PARAGRAPHS[0])
    sentences = [PARAGRAPHS[0][s:e].strip() for s, e in spans]
    assert sentences == ["Dr. Tessa Varn founded Brumholt in 1801.",
                         "The town lies on the river Olm, e.g. near the ford!",
                         "Was it the first town there?", "Nobody knows."]
    all_spans = split_sentences(TEXT)
    assert all_spans[0][0] == 0 and all_spans[-1][1] == len(TEXT)
    assert all(a[1] == b[0] for a, b in zip(all_spans, all_spans[1:]))  # no gaps, no overlaps


@pytest.mark.parametrize("k", [12, 40, 300])
def test_chunks_stay_within_k_tokens_end_on_sentences_and_cover_the_text(k):
    doc = Document(id="p1", text=TEXT, source="web", meta={"url": "u"})
    chunks = chunk_document(doc, k)
    assert all(approx_token_counts([c.text])[0] <= k for c in chunks)
    assert squash(" ".join(c.text for c in chunks)) == squash(TEXT)
    assert [c.meta["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert {c.meta["chunk_parent"] for c in chunks} == {"p1"}
    assert {c.meta["chunk_count"] for c in chunks} == {len(chunks)}
    assert all(c.meta["url"] == "u" and c.source == "web" for c in chunks)
    if len(chunks) > 1:
        assert [c.id for c in chunks] == [f"p1#{i}" for i in range(len(chunks))]
        # every chunk boundary falls on a sentence end unless a sentence alone is over k tokens
        sentences = split_sentences(TEXT)
        for _, end in chunk_spans(TEXT, k):
            inside = [(s, e) for s, e in sentences if s < end < e]
            assert not inside or approx_token_counts([TEXT[inside[0][0]:inside[0][1]]])[0] > k
    else:
        assert chunks[0].id == "p1"


def test_chunk_sizes_use_the_given_tokenizer(tmp_path):
    tok = load_tokenizer(train_tokenizer(PARAGRAPHS * 3, 300, tmp_path / "tok.json"))
    count = lambda texts: [len(ids) for ids in tok.encode_batch(list(texts))]  # noqa: E731
    chunks = chunk_document(Document(id="p", text=TEXT), 50, count)
    assert all(len(tok.encode(c.text)) <= 50 for c in chunks)
    assert max(len(tok.encode(c.text)) for c in chunks) > 40  # packed, not one sentence each
    with pytest.raises(ConfigError, match="at least 1 token"):
        chunk_spans(TEXT, 0)


def test_reassembly_joins_chunks_in_order_with_the_original_gaps():
    doc = Document(id="p1", text=TEXT)
    chunks = chunk_document(doc, 40)
    assert len(chunks) >= 4
    rephrased = [Document(id=f"hq/{c.id}", text=c.text.upper(), style="hq", generator="g@1", prompt_hash="h",
                          seed=i, parent_id=c.id, meta={**{k: v for k, v in c.meta.items() if k.startswith("chunk_")},
                                                        "prompt_tokens": 10, "completion_tokens": 5})
                 for i, c in enumerate(chunks)]
    other = Document(id="plain", text="untouched")
    merged = list(reassemble([rephrased[2], other, *rephrased[:2], *rephrased[3:]]))
    assert [d.id for d in merged] == ["plain", "hq/p1"]
    whole = merged[1]
    assert squash(whole.text) == squash(TEXT.upper()) and whole.parent_id == "p1"
    assert "\n\n" in whole.text  # paragraph breaks between chunks come back
    assert whole.meta["complete"] and whole.meta["chunks_missing"] == []
    assert whole.meta["prompt_tokens"] == 10 * len(chunks) and whole.meta["chunk_seeds"] == list(range(len(chunks)))
    assert whole.style == "hq" and whole.generator == "g@1"


def test_reassembly_reports_or_drops_parents_with_missing_chunks():
    chunks = chunk_document(Document(id="p1", text=TEXT), 40)
    outputs = [Document(id=f"qa/{c.id}", text=c.text, style="qa", meta=dict(c.meta))
               for c in chunks if c.meta["chunk_index"] != 1]
    (partial,) = reassemble(outputs)
    assert partial.meta["chunks_missing"] == [1] and not partial.meta["complete"]
    assert list(reassemble(outputs, keep_incomplete=False)) == []
