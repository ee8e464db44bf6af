"""Quality gates: decide whether a generated text is kept, and say why not.

Each gate names a reason; the runner counts outputs per reason. Gates run on the text
after the style's post-processing (which already strips assistant preambles and
postscripts; those are counted as cleaning steps, not drops):

- ``empty``: fewer than ``min_words`` words left (always dropped: nothing to keep).
- ``truncated``: the backend stopped at max_tokens (finish reason "length").
- ``near_copy``: the output shares at least ``near_copy`` of its word-trigram set with the
  input (Jaccard), i.e. the generator copied instead of rewriting.
- ``repetition``: more than ``max_repetition`` of the word 4-grams are repeats, or more
  than ``max_duplicate_lines`` of the lines are repeated lines (degenerate loops).
- ``length_ratio``: output/input length (approximate tokens) outside the style's bounds.
- ``wrong_language``: the guessed language (``language.guess_language``) is not
  ``language`` ("same" = the input's language).
- ``meta_comment``: the output talks about the task instead of (only) doing it, as small
  instruction-tuned models often do. Any style: it apologises or offers help ("I'm sorry
  for any confusion", "I'm happy to help", "as an AI", "I hope this helps"), or announces
  itself anywhere in the text ("Here's the revised passage:", "Rewrite:" on a line of its
  own). Rephrase styles also: it refers to "the passage", "the rewritten text", "a revised
  version", signs off ("let me know if"), or repeats five consecutive words of the style's
  instruction. A phrase that also occurs in the input is not counted (the input may itself
  talk about a passage). Cleaning steps run first, so a chatty first line that
  ``strip_preamble`` removes is not a reason.

``action`` says what a failing content gate does: ``drop`` (default) leaves the output out
of the corpus (it is kept in the shard's rejected file), ``flag`` keeps it and lists the
reasons in ``meta["gate_flags"]``. ``truncated`` has its own action: drop, flag or keep.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from .chunking import approx_token_counts
from .language import LANGUAGES, guess_language
from .styles import Style

REASONS = ("empty", "truncated", "near_copy", "repetition", "length_ratio", "wrong_language", "meta_comment")
_WORD = re.compile(r"\w+")
# Talk about the task, for every style: apologies, offers of help, an assistant's persona, a line
# announcing the text ("Here's a revised version:") anywhere, a bare "Rewrite:" line.
_ASSISTANT_TALK = re.compile(
    r"\b(?:my apologies|i apologi[sz]e|i(?:'m| am) (?:really |so |very )?sorry for (?:any|the) confusion"
    r"|as an ai\b|(?:an|your) ai (?:language model|assistant)|i(?:'m| am) (?:more than |very )?(?:happy|glad) to help"
    r"|i hope (?:this|that) helps)"
    r"|(?:^[ \t*#]*|(?<=[.!?]\s))(?:here(?:'s| is| are)|below (?:is|are))\b[^\n]{0,80}?"
    r"\b(?:version|rewrite|rewritten|revised|rephrased|paraphrased?|simplified|summary|passage|text)\b"
    r"[^\n]{0,60}:[ \t*]*$"
    r"|^[ \t*#]*(?:rewrite|rewritten|rephrased?|paraphrased?|revised|revision|output)[ \t*]*:[ \t*]*$",
    re.IGNORECASE | re.MULTILINE)
# Talk about the passage being rewritten (rephrase styles): "the passage", "the rewritten text", "a revised
# version", and an assistant's sign-off.
_PASSAGE_TALK = re.compile(
    r"\b(?:the|this|that|your|my|a|an)\s+(?:(?:original|given|above|following|provided|same)\s+)?passage\b"
    r"(?!\s+(?:of|through|to|from|between)\b)"  # not "the passage of the bill", "a passage to India"
    r"|\b(?:rewritten|rephrased|paraphrased|revised|simplified)\s+(?:passage|text|version|paragraph)\b"
    r"|\b(?:rewrite|rephrase|paraphrase)\s+(?:the|this)\s+(?:passage|text|paragraph)\b"
    r"|\blet me know if\b|\bfeel free to ask\b",
    re.IGNORECASE)
_ECHO_WORDS = 5  # this many consecutive words of the instruction repeated: an echo of the prompt


@dataclass(frozen=True)
class GateConfig:
    """Thresholds and actions of the quality gates (None turns a gate off)."""

    action: str = "drop"
    truncated: str = "drop"
    min_words: int = 5
    near_copy: float | None = 0.9
    max_repetition: float | None = 0.3
    max_duplicate_lines: float | None = 0.3
    length_ratio: bool = True
    language: str | None = "en"
    meta_comment: bool = True

    def __post_init__(self) -> None:
        if self.action not in ("drop", "flag"):
            raise ConfigError(f"gates.action must be 'drop' or 'flag', got {self.action!r}")
        if self.truncated not in ("drop", "flag", "keep"):
            raise ConfigError(f"gates.truncated must be 'drop', 'flag' or 'keep', got {self.truncated!r}")
        if not isinstance(self.min_words, int) or self.min_words < 1:
            raise ConfigError(f"gates.min_words must be a positive integer, got {self.min_words!r}")
        for name in ("near_copy", "max_repetition", "max_duplicate_lines"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise ConfigError(f"gates.{name} must be in (0, 1] or null, got {value!r}")
        if self.language not in (None, "same", *LANGUAGES):
            raise ConfigError(f"gates.language must be one of {', '.join(LANGUAGES)}, 'same' or null, "
                              f"got {self.language!r}")

    @classmethod
    def off(cls) -> "GateConfig":
        """Gates that keep every non-empty output (flagging nothing); for backends with no real language model."""
        return cls(action="flag", truncated="keep", near_copy=None, max_repetition=None, max_duplicate_lines=None,
                   length_ratio=False, language=None, meta_comment=False)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict."""
        return asdict(self)


@dataclass
class Verdict:
    """The gates' answer for one output: ``keep``, the failing ``reasons`` and the measurements."""

    keep: bool
    reasons: list[str] = field(default_factory=list)
    measures: dict[str, Any] = field(default_factory=dict)


def check_output(text: str, finish_reason: str, style: Style, source_text: str | None,
                 config: GateConfig) -> Verdict:
    """Run every gate on ``text`` (already cleaned); ``source_text`` is the rephrased document or seed extract."""
    words = _WORD.findall(text.lower())
    if len(words) < config.min_words:
        return Verdict(keep=False, reasons=["empty"], measures={"words": len(words)})
    reasons: list[str] = []
    measures: dict[str, Any] = {"words": len(words)}
    truncated = finish_reason == "length" and config.truncated != "keep"
    if truncated:
        reasons.append("truncated")
    source_words = _WORD.findall(source_text.lower()) if source_text else []
    if config.near_copy is not None and len(source_words) >= 3:
        overlap = _jaccard(_shingles(words, 3), _shingles(source_words, 3))
        measures["copy_overlap"] = round(overlap, 4)
        if overlap >= config.near_copy:
            reasons.append("near_copy")
    repeated, duplicate_lines = _repeated_ngram_share(words, 4), _duplicate_line_share(text)
    measures.update(repeated_4grams=round(repeated, 4), duplicate_lines=round(duplicate_lines, 4))
    if (config.max_repetition is not None and repeated > config.max_repetition) or \
            (config.max_duplicate_lines is not None and duplicate_lines > config.max_duplicate_lines):
        reasons.append("repetition")
    if config.length_ratio and style.length_ratio is not None and style.kind == "rephrase" and source_text:
        out_n, in_n = approx_token_counts([text, source_text])
        ratio = out_n / max(in_n, 1)
        measures["length_ratio"] = round(ratio, 4)
        low, high = style.length_ratio
        if not low <= ratio <= high:
            reasons.append("length_ratio")
    if config.language is not None:
        expected = guess_language(source_text or "") if config.language == "same" else config.language
        found = guess_language(text)
        measures["language"] = found
        if expected not in (None, "unknown") and found is not None and found != expected:
            reasons.append("wrong_language")
    if config.meta_comment:
        comment = meta_comment(text, style, source_text)
        if comment:
            measures["meta_comment"] = comment
            reasons.append("meta_comment")
    content_fail = [r for r in reasons if r != "truncated"]
    keep = not (content_fail and config.action == "drop") and not (truncated and config.truncated == "drop")
    return Verdict(keep=keep, reasons=reasons, measures=measures)


def meta_comment(text: str, style: Style, source_text: str | None = None) -> str | None:
    """The first phrase of ``text`` that talks about the task (see the module docstring), or None.

    Phrases that also occur in ``source_text`` (case-insensitive) do not count.
    """
    source = (source_text or "").lower()
    rephrase = style.kind == "rephrase"
    for pattern in [_ASSISTANT_TALK] + ([_PASSAGE_TALK] if rephrase else []):
        for match in pattern.finditer(text):
            phrase = match.group(0).strip(" \t*#")
            if phrase.lower() not in source:
                return phrase[:80]
    # a textbook may well "introduce the key ideas in a sensible order" as its instruction says
    return _instruction_echo(text, style, source) if rephrase else None


def _instruction_echo(text: str, style: Style, source: str) -> str | None:
    """The first run of _ECHO_WORDS words the output shares with the style's instruction (not in the source)."""
    instruction = style.template.replace("{audience}", style.audience or "").lower()
    said = {g for piece in re.split(r"\{[a-z_]+\}", instruction)  # no n-gram across a slot
            for g in _ngrams(_WORD.findall(piece), _ECHO_WORDS)}
    if not said:
        return None
    source_grams = {tuple(g) for g in _ngrams(_WORD.findall(source), _ECHO_WORDS)}
    for gram in _ngrams(_WORD.findall(text.lower()), _ECHO_WORDS):
        if gram in said and gram not in source_grams:
            return " ".join(gram)
    return None


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def _shingles(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _repeated_ngram_share(words: list[str], n: int) -> float:
    """Share of the word n-grams that repeat an earlier one (0 for texts under 2n words)."""
    if len(words) < 2 * n:
        return 0.0
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def _duplicate_line_share(text: str) -> float:
    """Share of the non-empty lines that repeat an earlier line (0 with fewer than 3 lines)."""
    lines = [line.strip().lower() for line in text.splitlines() if line.strip()]
    if len(lines) < 3:
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)
