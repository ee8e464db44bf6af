"""Long documents in bounded memory: texts are encoded in pieces cut on whitespace, the tokens equal
those of the whole text where the tokenizer allows it, and peak memory does not grow with the text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from synthscale.corpus import Document, write_documents
from synthscale.tokens import encode_corpus, load_tokenizer, open_shard, train_tokenizer
from synthscale.tokens.tokenizer import PIECE_CHARS, Tok, split_rule, split_text

from tests.conftest import ROOT

WORDS = ("Brumholt lies on the Olm and trades in leather , salt ; timber : 1912 3.5 42nd it's don't "
         "naïve Zürich 東京 — (e.g.) x=y+1 \"quoted\"").split()


def long_text(n_words: int, seed: int = 0) -> str:
    """Words joined by single spaces, with newlines, tabs, runs of spaces and blank lines mixed in."""
    rng = np.random.default_rng(seed)
    seps = [" "] * 40 + ["\n", "\t", "  ", "\n\n", " \n", "   "]
    out = []
    for w, s in zip(rng.integers(0, len(WORDS), n_words), rng.integers(0, len(seps), n_words)):
        out.append(WORDS[w])
        out.append(seps[s])
    return "".join(out)


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> Tok:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    return load_tokenizer(train_tokenizer([long_text(20_000, seed=1)], 600, path))


def _raw(tok: Tok, text: str) -> list[int]:
    return tok._tokenizer.encode(text, add_special_tokens=False).ids  # the whole text in one call


def test_pieces_rejoin_exactly_and_respect_the_size(ours: Tok) -> None:
    text = long_text(30_000)
    for mode in ("before_whitespace", "before_space"):
        pieces = list(split_text(text, 997, mode))
        assert "".join(pieces) == text and max(map(len, pieces)) <= 997 and len(pieces) > 100
        assert all(p[0] in " \n\t" for p in pieces[1:])  # every cut is before whitespace
    pieces = list(split_text(text, 997, "drop_space"))
    assert " ".join(pieces) == text and all(not p.startswith(" ") for p in pieces[1:])
    no_space = "x" * 2500
    assert list(split_text(no_space, 1000)) == ["x" * 1000, "x" * 1000, "x" * 500]  # hard cuts
    assert list(split_text("short", 1000)) == ["short"]


def test_our_byte_level_tokenizer_gives_the_unsplit_tokens(ours: Tok) -> None:
    assert (ours.split_mode, ours.split_exact) == ("before_whitespace", True)
    text = long_text(40_000, seed=2)
    unsplit = _raw(ours, text)
    pieces = list(ours.encode_pieces(text, piece_chars=1500))
    assert len(pieces) > 100 and [i for p in pieces for i in p] == unsplit


def test_a_long_document_in_a_shard_has_the_unsplit_tokens(ours: Tok, tmp_path: Path) -> None:
    text = long_text(PIECE_CHARS // 2, seed=3)  # longer than PIECE_CHARS characters: encoded in pieces
    assert len(text) > 2 * PIECE_CHARS
    write_documents(tmp_path / "c.jsonl", [Document(id="a", text="a short one"), Document(id="b", text=text),
                                           Document(id="c", text="and another")])
    info = encode_corpus(tmp_path / "c.jsonl", ours, tmp_path / "shard", progress=False)
    tokens, _ = open_shard(tmp_path / "shard", verify=True)
    eos = [ours.eos_id]
    want = _raw(ours, "a short one") + eos + _raw(ours, text) + eos + _raw(ours, "and another") + eos
    assert tokens.tolist() == want and info.n_docs == 3
    assert info.source_bytes == sum(len(t.encode()) for t in ("a short one", text, "and another"))
    assert ours.encode(text) == _raw(ours, text) and ours.encode_batch(["x y", text])[1] == _raw(ours, text)


def test_training_on_pieces_gives_the_same_tokenizer(tmp_path: Path) -> None:
    text = long_text(PIECE_CHARS // 3, seed=4)
    ours_path = train_tokenizer([text], 500, tmp_path / "ours.json")  # cut into pieces inside
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([text], trainer)  # the whole text at once
    assert json.loads(ours_path.read_text()) == json.loads(tokenizer.to_str())


def _sentencepiece_like(corpus: str, prepend_normalizer: bool) -> Tok:
    """A tokenizer shaped like those converted from sentencepiece: Metaspace (T5, newer Mistral) or, as
    Llama 2 is converted, no pre-tokenizer and a normaliser that prepends '▁' and turns spaces into '▁'."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "</s>"], show_progress=False)
    tok.train_from_iterator([corpus], trainer)  # merges never span a word boundary, as in sentencepiece
    if prepend_normalizer:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return Tok(tok, "</s>", "test")


@pytest.mark.parametrize("prepend", [False, True], ids=["metaspace", "llama2-style"])
def test_sentencepiece_style_tokenizers_give_the_unsplit_tokens(prepend: bool) -> None:
    text = " ".join(long_text(30_000, seed=5).split())  # single spaces: sentencepiece style input
    tok = _sentencepiece_like(text[:60_000], prepend)
    assert (tok.split_mode, tok.split_exact) == (("drop_space" if prepend else "before_space"), True)
    pieces = list(tok.encode_pieces(text, piece_chars=1000))
    assert len(pieces) > 50 and [i for p in pieces for i in p] == _raw(tok, text)


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def test_a_llama3_style_regex_tokenizer_gives_the_unsplit_tokens() -> None:
    """Llama 3's regex keeps newlines after punctuation with it ('.\n'): cuts go before spaces only."""
    from tokenizers import Regex

    text = long_text(40_000, seed=7).replace(" ;", ".\n")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|end_of_text|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text[:80_000]], trainer)
    wrapped = Tok(tok, "<|end_of_text|>", "test")
    assert (wrapped.split_mode, wrapped.split_exact) == ("before_space", True)
    pieces = list(wrapped.encode_pieces(text, piece_chars=1200))
    assert len(pieces) > 100 and [i for p in pieces for i in p] == _raw(wrapped, text)
    # what a cut before a newline would have done here: not the same tokens
    cut = text.index(".\n", 1000) + 1
    assert _raw(wrapped, text[:cut]) + _raw(wrapped, text[cut:]) != _raw(wrapped, text)


def test_a_tokenizer_that_does_not_split_on_whitespace_is_flagged() -> None:
    assert split_rule({"pre_tokenizer": None, "normalizer": None}) == ("before_space", False)
    assert split_rule({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True}})[0] == "before_space"


MEMORY_CHILD = """
import resource, sys
from synthscale.corpus import read_documents
from synthscale.tokens import encode_corpus
if sys.argv[3] == "read":
    docs = list(read_documents(sys.argv[1]))
else:
    encode_corpus(sys.argv[1], sys.argv[2], sys.argv[4], progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_peak_memory_does_not_grow_with_the_document(ours: Tok, tmp_path: Path) -> None:
    """Encoding a 6 MB one-line document costs little more than reading it (before: ~150 bytes per byte,
    about 900 MB more here)."""
    text = long_text(1_300_000, seed=6)
    assert len(text) > 6_000_000
    write_documents(tmp_path / "long.jsonl", [Document(id="long", text=text)])
    ours.save(tmp_path / "tok.json")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def peak_mb(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tmp_path / "long.jsonl"),
                              str(tmp_path / "tok.json"), mode, str(tmp_path / "shard")],
                             capture_output=True, text=True, env=env, check=True, timeout=300)
        return int(out.stdout.split()[-1])

    reading, encoding = peak_mb("read"), peak_mb("encode")
    assert encoding - reading < 250, (reading, encoding)
    tokens, meta = open_shard(tmp_path / "shard")
    assert meta["n_docs"] == 1 and int(tokens[-1]) == ours.eos_id and len(tokens) > 1_000_000
