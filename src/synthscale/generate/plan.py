"""Inputs to requests, and answers to documents: the deterministic plan of a generation run.

Every input item becomes one or more GenerationRequests, in input order:

- a rephrase style turns each Document into one request per chunk (``chunk_tokens``;
  None: the whole document), id ``STYLE/CHUNK_ID``;
- a generate style turns a topic (str) into one request, id ``STYLE/INDEX`` (7 digits),
  and a Document into one request seeded by its first chunk (the web extract),
  id ``STYLE/DOC_ID``.

With ``samples`` > 1 each item gives that many requests, ids suffixed ``~K`` (and
``meta["sample"]`` = K). A
request's seed is ``request_seed(run_seed, request_id)``: it does not depend on batching,
resuming, workers or which other requests exist. ``output_document`` turns an answer into a
synthetic Document with the provenance fields of DESIGN.md.

Workers: ``part=(k, K)`` keeps only the items of part k of K, chosen by ``part_of`` (a
stable hash of the item's key: the document id, or the topic's 7-digit index), so K parts
are disjoint, together hold every item, and all chunks and samples of an item share a part.
Indices (and so topic request ids) stay those of the whole input.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

from ..corpus import Document
from ..errors import ConfigError
from .backends.base import GenerationRequest, GenerationResult
from .chunking import TokenCounter, approx_token_counts, chunk_document
from .styles import Style

CHUNK_META = ("chunk_parent", "chunk_index", "chunk_count", "chunk_join")


def request_seed(seed: int, request_id: str) -> int:
    """The seed of one request: a stable 31-bit hash of the run seed and the request id."""
    digest = hashlib.sha256(f"{seed}:{request_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def part_of(key: str, parts: int) -> int:
    """The part (0..parts-1) an item with ``key`` belongs to: sha256-based, the same in every process."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % parts


def item_key(item: Document | str, index: int) -> str:
    """The key that places an input item in a part: a document's id, a topic's 7-digit index."""
    return item.id if isinstance(item, Document) else f"{index:07d}"


def plan_requests(items: Iterable[Document | str], style: Style, sampling: dict[str, Any], seed: int, *,
                  chunk_tokens: int | None = None, count_tokens: TokenCounter = approx_token_counts,
                  samples: int = 1, part: tuple[int, int] | None = None) -> Iterator[GenerationRequest]:
    """The requests for ``items`` in order (see the module docstring). ``meta["item"]`` is the item's index;
    ``part=(k, K)`` keeps only the items of part k of K."""
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    if part is not None and not (isinstance(part[1], int) and part[1] >= 1 and 0 <= part[0] < part[1]):
        raise ConfigError(f"part must be (k, K) with 0 <= k < K, got {part!r}")
    for index, item in enumerate(items):
        if part is not None and part[1] > 1 and part_of(item_key(item, index), part[1]) != part[0]:
            continue
        for base_id, fields in _item_requests(item, index, style, chunk_tokens, count_tokens):
            for k in range(samples):
                request_id = f"{base_id}~{k}" if samples > 1 else base_id
                yield GenerationRequest(request_id=request_id, prompt=fields["prompt"], style=style.name,
                                        seed=request_seed(seed, request_id), sampling=dict(sampling),
                                        document=fields.get("document"), topic=fields.get("topic"),
                                        meta={**fields["meta"], "item": index,
                                              **({"sample": k} if samples > 1 else {})})


def _item_requests(item: Document | str, index: int, style: Style, chunk_tokens: int | None,
                   count_tokens: TokenCounter) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(item, str):
        if style.kind == "rephrase":
            raise ConfigError(f"style '{style.name}' rephrases documents, got a topic (str) at item {index}")
        yield f"{style.name}/{index:07d}", {"prompt": style.render(topic=item), "topic": item,
                                             "meta": {"seeded_by": "topic"}}
        return
    if not isinstance(item, Document):
        raise ConfigError(f"items must be Documents or topics (str), got {type(item).__name__} at item {index}")
    chunks = chunk_document(item, chunk_tokens, count_tokens) if chunk_tokens else [item]
    if style.kind == "generate":
        if style.extract_template is None:
            raise ConfigError(f"style '{style.name}' generates from topics (str), got a document at item {index}; "
                              "it has no extract_template for seeding from documents")
        extract = chunks[0]
        yield f"{style.name}/{item.id}", {"prompt": style.render(document=extract), "document": extract,
                                          "meta": {"seeded_by": "extract"}}
        return
    for chunk in chunks:
        meta: dict[str, Any] = {"seeded_by": "document"}
        if chunk_tokens:
            meta.update({k: chunk.meta[k] for k in CHUNK_META})
        yield f"{style.name}/{chunk.id}", {"prompt": style.render(document=chunk), "document": chunk, "meta": meta}


def output_document(request: GenerationRequest, result: GenerationResult, text: str, style: Style,
                    generator: str, extra_meta: dict[str, Any] | None = None) -> Document:
    """The synthetic Document for one answer: ``id`` = request id, ``domain`` = style, full provenance.

    ``parent_id`` is the rephrased document or chunk (or the extract's document); meta
    holds finish_reason, token usage, the topic, the request's meta (chunk position,
    seeding), ``extra_meta`` and the backend's result meta.
    """
    meta: dict[str, Any] = {"finish_reason": result.finish_reason, "prompt_tokens": result.prompt_tokens,
                            "completion_tokens": result.completion_tokens}
    if request.topic is not None:
        meta["topic"] = request.topic
    meta.update({k: v for k, v in request.meta.items() if k != "item"})
    meta.update(extra_meta or {})
    meta.update(result.meta)
    parent = request.document
    parent_id = parent.id if parent is not None else None
    if request.meta.get("seeded_by") == "extract" and parent is not None:
        parent_id = parent.meta.get("chunk_parent", parent.id)
    seeded_by = request.meta.get("seeded_by", "topic" if request.topic is not None else "document")
    return Document(
        id=request.request_id, text=text, domain=style.name, source=parent.source if parent else None, meta=meta,
        parent_id=parent_id, style=style.name, generator=generator,
        prompt_hash=style.prompt_hash_for(seeded_by), sampling=dict(request.sampling), seed=request.seed)
