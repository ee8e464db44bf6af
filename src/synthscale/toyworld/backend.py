"""The toyworld generator: answers hq, qa and textbook requests from the world's structured facts.

It stands in for an LLM in the offline demo. Rephrasings state each fact of the source
document's ``meta["facts"]`` once, in clean phrasing, and keep some of the content its text
carries besides (source, date, reported statements, quotes, a listing's price), leaving
out boilerplate and chatter (rewrite.py); textbook chapters are written from a topic of
the world's catalogue and state a fraction ``textbook_error_rate`` of their facts
wrongly, the analogue of a generator's hallucinations. Sampling settings other than
``max_tokens`` do not apply (the output depends only on the request seed). Token usage
is counted in whitespace-separated words.

It implements generate's ``Backend`` interface and registers itself as the ``toyworld``
kind of ``make_backend`` when this module is imported (``import synthscale.toyworld``
does it): generate never imports toyworld.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SynthscaleError
from ..generate.backends import register_backend
from ..generate.backends.base import Backend, GenerationRequest, GenerationResult
from .config import TOYWORLD_VERSION
from .render import check_fact
from .rewrite import encyclopedic_rewrite, qa_rewrite
from .textbook import ChapterWriter, Topic, topic_catalogue
from .world import World


class ToyworldBackend(Backend):
    """Rephrases toyworld documents (hq, qa) and writes textbook chapters on toyworld topics."""

    name = "toyworld"
    model = "toyworld"
    revision = TOYWORLD_VERSION

    def __init__(self, world: World | None = None, textbook_error_rate: float = 0.0):
        if not 0.0 <= textbook_error_rate <= 1.0:
            raise ConfigError(f"textbook_error_rate must be in [0, 1], got {textbook_error_rate}")
        self.world = world
        self.textbook_error_rate = textbook_error_rate
        self.topics: dict[str, Topic] = {t.text: t for t in topic_catalogue(world)} if world else {}
        self.writer = ChapterWriter(world, textbook_error_rate) if world else None

    @classmethod
    def from_world_file(cls, path: str | Path, textbook_error_rate: float = 0.0) -> "ToyworldBackend":
        """A backend for the world saved in ``path`` (world.json)."""
        return cls(World.load(path), textbook_error_rate)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer each request from structured facts; unsupported requests get an error result."""
        return [self._answer(r) for r in requests]

    def _answer(self, request: GenerationRequest) -> GenerationResult:
        prompt_tokens = len(request.prompt.split())
        rng = random.Random(request.seed)
        try:
            if request.style in ("hq", "qa"):
                facts = self._facts(request)
                rewrite = encyclopedic_rewrite if request.style == "hq" else qa_rewrite
                text = rewrite(facts, rng, request.document.text if request.document is not None else None)
                meta = {"facts": facts}
            elif request.style == "textbook":
                text, meta = self._chapter(request, rng)
            else:
                return GenerationResult.failed(request, f"toyworld backend has no style '{request.style}' "
                                               "(it answers hq, qa and textbook)", prompt_tokens)
        except SynthscaleError as e:
            return GenerationResult.failed(request, str(e), prompt_tokens)
        text, finish, completion_tokens = _cut(text, request.sampling.get("max_tokens"))
        return GenerationResult(request.request_id, text, finish, prompt_tokens, completion_tokens, meta=meta)

    def _facts(self, request: GenerationRequest) -> list[dict]:
        doc = request.document
        if doc is None:
            raise SynthscaleError("a rephrasing request carries no document")
        facts = doc.meta.get("facts")
        if not isinstance(facts, list) or not facts:
            raise SynthscaleError(f"document '{doc.id}' has no meta['facts']: the toyworld backend rephrases only "
                                  "toyworld documents")
        for fact in facts:
            check_fact(fact)
        return [dict(f) for f in facts]

    def _chapter(self, request: GenerationRequest, rng: random.Random) -> tuple[str, dict]:
        if self.writer is None:
            raise SynthscaleError("textbook requests need a world: ToyworldBackend(world=...)")
        topic = self.topics.get(request.topic or "")
        if topic is None:
            raise SynthscaleError(f"topic '{request.topic}' is not in this world's topic catalogue")
        return self.writer.write(topic, rng)


def make_toyworld_backend(model: str | None = None, **options: Any) -> ToyworldBackend:
    """``make_backend("toyworld", model, **options)``: ``model`` is an optional world.json (textbook styles)."""
    if model:
        return ToyworldBackend.from_world_file(model, **options)
    return ToyworldBackend(**options)


register_backend("toyworld", make_toyworld_backend)

_WORD = re.compile(r"\S+")


def _cut(text: str, max_tokens: object) -> tuple[str, str, int]:
    """``text`` cut to ``max_tokens`` whitespace tokens, the finish reason, and the tokens kept."""
    n = len(text.split())
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or n <= max_tokens:
        return text, "stop", n
    if max_tokens <= 0:
        return "", "length", 0
    ends = [m.end() for m in _WORD.finditer(text)]
    return text[:ends[max_tokens - 1]], "length", max_tokens
