"""Tokenizers: train a byte-level BPE, load any tokenizer.json or HF folder, hash it.

Every token stream in a study is made with ONE tokenizer, identified by ``Tok.hash``:
the sha256 of its canonical JSON (the Hugging Face serialisation with sorted keys and
no whitespace), so the same tokenizer gives the same hash however the file was
formatted. Shards and eval sets record the hash and refuse to mix tokenizers.

Determinism: the HF BPE trainer is deterministic for byte-level BPE. Its merge order is
decided by (pair count, pair ids) and the byte alphabet is sorted before ids are given,
so neither the rayon thread count nor the hash-map order changes the result (verified in
tests/tokens/test_tokens.py across processes with different RAYON_NUM_THREADS). The known
non-determinism of the trainer (huggingface/tokenizers#1794) needs a
continuing-subword prefix or end-of-word suffix, which a byte-level BPE does not use.

Document text is always encoded as text: a literal ``<|endoftext|>`` inside a document is
split like any other string (``encode_special_tokens``), never turned into the EOS id,
and no BOS or other post-processor tokens are added. Shards add the EOS themselves.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .._io import atomic_write_text, read_json
from ..corpus import Document
from ..errors import ConfigError, InputError, MissingDependencyError

# Long texts are encoded in pieces of at most this many characters (see split_text): the
# tokenizer library holds about 150 bytes per character of a text while it encodes it.
PIECE_CHARS = 1 << 17
PIECES_PER_CALL = 8  # pieces of one long text encoded together (in parallel, by the Rust library)

EOS_TOKEN = "<|endoftext|>"
# Tried in order when a loaded tokenizer does not name its end-of-text token.
EOS_CANDIDATES = (EOS_TOKEN, "<|end_of_text|>", "</s>", "<eos>", "<|end|>")
MIN_VOCAB_SIZE = 257  # the 256 byte symbols plus EOS


class Tok:
    """A loaded tokenizer: encode/decode without added specials, EOS id, hash, byte lengths."""

    def __init__(self, tokenizer: Tokenizer, eos_token: str, source: str):
        self.source = source
        self.canonical_json = _canonical_json(tokenizer.to_str())
        self.hash = hashlib.sha256(self.canonical_json.encode("utf-8")).hexdigest()
        eos_id = tokenizer.token_to_id(eos_token)
        if eos_id is None:
            raise ConfigError(f"{source}: EOS token {eos_token!r} is not in the vocabulary")
        self.eos_token = eos_token
        self.eos_id = int(eos_id)
        self._tokenizer = tokenizer
        self._tokenizer.encode_special_tokens = True  # document text never yields special ids
        # Ids may have holes (some HF tokenizers); the embedding needs max id + 1 rows.
        self.vocab_size = max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1
        spec = json.loads(self.canonical_json)
        self.split_mode, self.split_exact = split_rule(spec)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS/EOS added). A text longer than PIECE_CHARS is encoded in
        pieces (``encode_pieces``), so memory does not grow with the text."""
        if len(text) <= PIECE_CHARS:
            return self._tokenizer.encode(text, add_special_tokens=False).ids
        ids: list[int] = []
        for piece in self.encode_pieces(text):
            ids.extend(piece)
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many texts at once (parallel in the Rust library; long texts in pieces)."""
        texts = list(texts)
        if all(len(t) <= PIECE_CHARS for t in texts):
            return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]
        short = [i for i, t in enumerate(texts) if len(t) <= PIECE_CHARS]
        out: list[list[int]] = [[] for _ in texts]
        for i, e in zip(short, self._tokenizer.encode_batch([texts[i] for i in short], add_special_tokens=False)):
            out[i] = e.ids
        for i, t in enumerate(texts):
            if len(t) > PIECE_CHARS:
                out[i] = self.encode(t)
        return out

    def encode_pieces(self, text: str, piece_chars: int | None = None) -> Iterator[list[int]]:
        """The ids of ``text``, piece after piece: ``split_text`` cuts it on whitespace into pieces
        of at most ``piece_chars`` (PIECE_CHARS) characters, encoded a few at a time.

        The ids equal those of the whole text encoded at once whenever ``split_exact`` is true
        and the text has a whitespace cut in every window (see split_text); peak memory
        grows with the piece size, not with the text.
        """
        pieces = split_text(text, piece_chars or PIECE_CHARS, self.split_mode)
        while group := list(itertools.islice(pieces, PIECES_PER_CALL)):
            for encoding in self._tokenizer.encode_batch(group, add_special_tokens=False):
                yield encoding.ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; special tokens such as EOS are kept in the output."""
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as a tokenizer.json (atomic); return the path."""
        path = Path(path)
        atomic_write_text(path, self._tokenizer.to_str(pretty=True))
        return path

    def token_byte_lengths(self) -> np.ndarray:
        """UTF-8 byte length of every token id ([vocab_size] int32); special tokens count 0.

        Exact for byte-level tokenizers (GPT-2, Llama-3, ours). For other tokenizers the
        length is that of the token's text with the sentencepiece '▁' read as a space and
        '<0xHH>' byte-fallback tokens as one byte, which can overcount the one prefix space
        a sentencepiece tokenizer adds at the start of a text.
        """
        return self._byte_lengths.copy()

    @cached_property
    def _byte_lengths(self) -> np.ndarray:
        lengths = np.zeros(self.vocab_size, dtype=np.int32)
        specials = {i for i, t in self._tokenizer.get_added_tokens_decoder().items() if t.special}
        byte_level = _uses_byte_level(json.loads(self.canonical_json))
        for token, idx in self._tokenizer.get_vocab(with_added_tokens=True).items():
            if idx not in specials:
                lengths[idx] = _byte_level_length(token) if byte_level else _text_length(token)
        return lengths

    def __repr__(self) -> str:
        return f"Tok(source={self.source!r}, vocab_size={self.vocab_size}, hash={self.hash[:12]})"


def split_rule(spec: dict) -> tuple[str, bool]:
    """How a tokenizer's texts may be cut into pieces, from its serialised form: (mode, exact).

    Every mode cuts only between two non-whitespace characters, where a tokenizer that
    splits text on whitespace before its model runs splits anyway:

    - ``"before_whitespace"``: just before a space, newline or tab. Byte-level BPE with its
      built-in GPT-2 regex (ours, GPT-2, ...) and BERT-style whitespace splitting: exact.
    - ``"before_space"``: just before a space. A pre-tokenizer regex of the tokenizer's own
      (Split: Llama 3, Qwen, ...), Metaspace (sentencepiece style: a piece that starts with a
      space gets no second '▁') and byte-level with add_prefix_space: exact.
    - ``"drop_space"``: at a space, which is left out: tokenizers whose normaliser prepends
      '▁' to every text (Llama 2, Mistral v1, converted from sentencepiece) put it back as
      the piece's '▁'. Exact when no merge spans a word boundary, as in such tokenizers.
    - a tokenizer that does not split on whitespace at all (no pre-tokenizer, no such
      normaliser) sees whole texts: the tokens next to each cut may differ (exact False).
    """
    normalizer = spec.get("normalizer") or {}
    norm_parts = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
    if any(isinstance(p, dict) and p.get("type") == "Prepend" for p in norm_parts):
        return "drop_space", True
    pre = spec.get("pre_tokenizer") or {}
    pre_parts = [p for p in (pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre])
                 if isinstance(p, dict)]
    types = {p.get("type") for p in pre_parts}
    if any(p.get("type") == "ByteLevel" and p.get("add_prefix_space") for p in pre_parts) \
            or types & {"Metaspace", "Split"}:
        # Split: a regex of the tokenizer's own, e.g. Llama 3's, whose ' ?[^\s\p{L}\p{N}]+[\r\n]*' keeps
        # the newlines after punctuation with it: a cut before a newline could change a token there
        return "before_space", True
    if types & {"ByteLevel", "Whitespace", "WhitespaceSplit", "BertPreTokenizer"}:
        return "before_whitespace", True
    return "before_space", False


_WS = frozenset(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def split_text(text: str, max_chars: int = PIECE_CHARS, mode: str = "before_whitespace") -> Iterator[str]:
    """Pieces of at most ``max_chars`` characters whose concatenation is ``text``
    (``mode="drop_space"``: with the single space at each cut left out; see ``split_rule``).

    Each cut is the last one in the second half of the window: before a whitespace
    character between two non-whitespace ones (a space, newline or tab for
    ``before_whitespace``, a space for the other modes); failing that
    (a window without such whitespace, e.g. text with no spaces) the window is cut where it
    ends, and the tokens next to that cut may differ from an unsplit encoding.
    """
    n, start = len(text), 0
    while n - start > max_chars:
        end = start + max_chars
        cut = _last_cut(text, start + max_chars // 2, end, mode)
        if cut is None:
            yield text[start:end]
            start = end
            continue
        yield text[start:cut]
        start = cut + 1 if mode == "drop_space" else cut
    yield text[start:]


def _last_cut(text: str, lo: int, hi: int, mode: str) -> int | None:
    """The largest i in (lo, hi) where text[i] may start the next piece, else None."""
    spaces = (" ", "\n", "\t") if mode == "before_whitespace" else (" ",)
    best = None
    for ch in spaces:
        i = hi
        while True:
            i = text.rfind(ch, lo + 1, i)
            if i <= lo or (best is not None and i <= best):
                break
            if text[i - 1] not in _WS and i + 1 < len(text) and text[i + 1] not in _WS:
                best = i
                break
    return best


def train_tokenizer(docs: Iterable[str | Document], vocab_size: int, out_path: str | os.PathLike,
                    *, min_frequency: int = 2, n_docs: int | None = None) -> Path:
    """Train a byte-level BPE with one special ``<|endoftext|>`` token; write tokenizer.json.

    ``docs`` is streamed (texts or Documents). ``out_path`` is the tokenizer.json to write,
    or an existing folder to write ``tokenizer.json`` into. Pairs seen fewer than
    ``min_frequency`` times are never merged, so a small corpus may give fewer than
    ``vocab_size`` tokens. ``n_docs`` only sizes the trainer's progress report.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(f"vocab_size must be at least {MIN_VOCAB_SIZE} (256 bytes + EOS), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # long texts go in as pieces cut before whitespace: the byte-level pre-tokenizer splits
    # there anyway, so the word counts, and the tokenizer, are the same; memory is not
    texts = (piece for d in docs for piece in split_text(d.text if isinstance(d, Document) else d))
    tokenizer.train_from_iterator(texts, trainer, length=n_docs)
    out = Path(out_path)
    if out.is_dir():
        out = out / "tokenizer.json"
    atomic_write_text(out, tokenizer.to_str(pretty=True))
    return out


def load_tokenizer(path: str | os.PathLike | Tok, *, eos_token: str | None = None) -> Tok:
    """Load a tokenizer.json file or a Hugging Face tokenizer folder.

    A folder is read through its tokenizer.json when it has one, else through
    ``transformers.AutoTokenizer`` (which must give a fast tokenizer). The EOS token is
    ``eos_token`` when given, else the one the folder's config names, else the first of
    EOS_CANDIDATES in the vocabulary.
    """
    if isinstance(path, Tok):
        return path
    p = Path(path)
    if p.is_file():
        return _from_tokenizer_json(p, eos_token)
    if p.is_dir():
        if (p / "tokenizer.json").is_file():
            return _from_tokenizer_json(p / "tokenizer.json", eos_token or _configured_eos(p))
        return _from_transformers(p, eos_token)
    raise InputError("no such tokenizer file or folder", path=str(p))


def _from_tokenizer_json(path: Path, eos_token: str | None) -> Tok:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust library raises a plain Exception
        raise InputError(f"not a tokenizer.json: {_first_line(e)}", path=str(path)) from None
    return Tok(tokenizer, eos_token or _guess_eos(tokenizer, path), str(path))


def _from_transformers(folder: Path, eos_token: str | None) -> Tok:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependencyError("transformers", "hf") from None
    try:
        hf = AutoTokenizer.from_pretrained(str(folder))
    except Exception as e:  # transformers raises many types for an unusable folder
        raise InputError(f"no tokenizer.json and transformers cannot load it: {_first_line(e)}",
                         path=str(folder)) from None
    if not getattr(hf, "is_fast", False):
        raise InputError("transformers loads only a slow tokenizer here; a fast (tokenizers) one is needed",
                         path=str(folder))
    eos = eos_token or hf.eos_token or _guess_eos(hf.backend_tokenizer, folder)
    return Tok(hf.backend_tokenizer, eos, str(folder))


def _configured_eos(folder: Path) -> str | None:
    """The eos_token named by an HF folder's tokenizer_config.json or special_tokens_map.json."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        f = folder / name
        if not f.is_file():
            continue
        config = read_json(f, what="tokenizer config", fix="repair or remove it, or pass the EOS token")
        if not isinstance(config, dict):
            raise InputError("a tokenizer config must be a JSON object", path=str(f))
        value = config.get("eos_token")
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str) and value:
            return value
    return None


def _guess_eos(tokenizer: Tokenizer, where: Path) -> str:
    for candidate in EOS_CANDIDATES:
        if tokenizer.token_to_id(candidate) is not None:
            return candidate
    raise InputError(f"no end-of-text token found (tried {', '.join(EOS_CANDIDATES)}); pass eos_token=",
                     path=str(where))


def _canonical_json(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _uses_byte_level(spec: dict) -> bool:
    decoder = spec.get("decoder") or {}
    parts = decoder.get("decoders", []) if decoder.get("type") == "Sequence" else [decoder]
    return any(isinstance(d, dict) and d.get("type") == "ByteLevel" for d in parts)


def _gpt2_byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode: printable stand-in character -> byte."""
    byte_values = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    code_points = byte_values[:]  # printable bytes stand for themselves
    shifted = 0
    for b in range(256):
        if b not in byte_values:  # the others get code points 256, 257, ... in byte order
            byte_values.append(b)
            code_points.append(256 + shifted)
            shifted += 1
    return {chr(c): b for b, c in zip(byte_values, code_points)}


_BYTE_DECODER = _gpt2_byte_decoder()


def _byte_level_length(token: str) -> int:
    if all(ch in _BYTE_DECODER for ch in token):
        return len(token)
    return len(token.encode("utf-8"))  # a non-special added token stored as plain text


def _text_length(token: str) -> int:
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return 1
    return len(token.replace("▁", " ").encode("utf-8"))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
