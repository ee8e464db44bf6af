"""tokens/: tokenizer training determinism, loading, hashing, byte lengths, token shards."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from synthscale.corpus import Document, read_documents, write_documents
from synthscale.errors import ConfigError, InputError
from synthscale.tokens import (EOS_TOKEN, Tok, encode_corpus, load_tokenizer, open_shard, read_shard_info,
                               shard_dtype, train_tokenizer)

ROOT = Path(__file__).resolve().parents[2]
WORDS = ("the river city market stone light north garden winter paper story music bridge "
         "café naïve Zürich 東京 données — “quoted” 🙂 tab\tnew\nline").split(" ")


def make_texts(n: int, seed: int = 0) -> list[str]:
    """Deterministic pseudo-sentences with ASCII, accented, CJK and emoji words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tok:
    path = train_tokenizer(make_texts(300), 320, tmp_path_factory.mktemp("tok") / "tokenizer.json")
    return load_tokenizer(path)


_TRAIN_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[3])
from tests.tokens.test_tokens import make_texts
from synthscale.tokens import train_tokenizer
train_tokenizer(make_texts(400, seed=5), int(sys.argv[2]), sys.argv[1])
"""


def test_training_is_byte_identical_across_processes_and_thread_counts(tmp_path: Path) -> None:
    outputs = []
    for i, threads in enumerate(("1", "2", "2")):
        out = tmp_path / f"tok{i}.json"
        env = {**os.environ, "RAYON_NUM_THREADS": threads, "PYTHONHASHSEED": str(i),
               "PYTHONPATH": str(ROOT / "src")}
        subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, str(out), "500", str(ROOT)], env=env, check=True)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    in_process = train_tokenizer(make_texts(400, seed=5), 500, tmp_path / "here.json")
    assert in_process.read_bytes() == outputs[0]


def test_tokenizer_has_one_eos_and_the_asked_vocab(tok: Tok) -> None:
    assert tok.vocab_size == 320
    assert tok.eos_token == EOS_TOKEN and tok.eos_id == 0
    assert len(tok.hash) == 64


def test_train_rejects_a_vocab_too_small_for_the_bytes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(["a b c"], 100, tmp_path / "t.json")


def test_train_accepts_documents_and_a_folder(tmp_path: Path) -> None:
    docs = [Document(id=str(i), text=t) for i, t in enumerate(make_texts(50))]
    out = train_tokenizer(docs, 300, tmp_path)
    assert out == tmp_path / "tokenizer.json" and load_tokenizer(tmp_path).vocab_size <= 300


@pytest.mark.parametrize("text", ["Hello world.", "  leading and trailing  ", "café naïve Zürich 東京 🙂",
                                  "tabs\tand\nnewlines\n\n", "", "a literal <|endoftext|> marker"])
def test_encode_decode_roundtrip(tok: Tok, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.eos_id not in ids  # document text never yields the EOS id


def test_byte_lengths_add_up_to_the_utf8_bytes(tok: Tok) -> None:
    lengths = tok.token_byte_lengths()
    assert lengths.shape == (tok.vocab_size,) and lengths[tok.eos_id] == 0
    for text in make_texts(20, seed=9):
        assert lengths[tok.encode(text)].sum() == len(text.encode("utf-8"))


def test_hash_is_of_the_canonical_json(tok: Tok, tmp_path: Path) -> None:
    compact = tmp_path / "compact.json"
    compact.write_text(Tokenizer.from_file(tok.source).to_str(pretty=False), encoding="utf-8")
    assert load_tokenizer(compact).hash == tok.hash
    other = load_tokenizer(train_tokenizer(make_texts(300), 300, tmp_path / "other.json"))
    assert other.hash != tok.hash


def test_load_hf_folder_with_tokenizer_json_uses_its_configured_eos(tok: Tok, tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    tok.save(folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": EOS_TOKEN}}))
    loaded = load_tokenizer(folder)
    assert loaded.hash == tok.hash and loaded.eos_id == tok.eos_id


def test_load_hf_folder_without_tokenizer_json_goes_through_transformers(tok: Tok, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    folder = tmp_path / "gpt2style"
    folder.mkdir()
    Tokenizer.from_file(tok.source).model.save(str(folder))  # vocab.json + merges.txt
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "eos_token": EOS_TOKEN, "bos_token": EOS_TOKEN,
         "unk_token": EOS_TOKEN, "add_prefix_space": False}))
    loaded = load_tokenizer(folder)
    text = "the river city market — café"
    assert loaded.encode(text) == tok.encode(text)
    assert loaded.eos_id == tok.eos_id


def test_load_reports_unusable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such tokenizer"):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not a tokenizer.json"):
        load_tokenizer(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        load_tokenizer(tmp_path / "empty")


def test_shard_holds_each_document_followed_by_eos(tok: Tok, tmp_path: Path) -> None:
    texts = make_texts(40, seed=3) + ["", "last <|endoftext|> one"]
    corpus = tmp_path / "c.jsonl"
    write_documents(corpus, [Document(id=str(i), text=t) for i, t in enumerate(texts)])
    info = encode_corpus(corpus, tok, tmp_path / "shards" / "nat", progress=False)
    tokens, meta = open_shard(tmp_path / "shards" / "nat", verify=True)
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16 and meta["dtype"] == "uint16"
    expected = [i for t in texts for i in tok.encode(t) + [tok.eos_id]]
    assert tokens.tolist() == expected
    assert meta["n_tokens"] == info.n_tokens == len(expected)
    assert meta["n_docs"] == len(texts) == int((tokens == tok.eos_id).sum())
    assert meta["source_bytes"] == sum(len(t.encode("utf-8")) for t in texts)
    assert meta["tokenizer_hash"] == tok.hash and meta["vocab_size"] == tok.vocab_size
    assert meta["provenance"] == {"sources": [str(corpus)], "n_docs": len(texts)}
    assert tok.token_byte_lengths()[tokens].sum() == meta["source_bytes"]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["nat.bin", "nat.json"]


def test_encoding_is_deterministic_and_chunking_does_not_matter(tok: Tok, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    texts = make_texts(100, seed=4)
    a = encode_corpus(texts, tok, tmp_path / "a", progress=False)
    monkeypatch.setattr("synthscale.tokens.shards.CHUNK_DOCS", 7)
    b = encode_corpus(iter(texts), tok, tmp_path / "b", progress=True)
    assert a.sha256 == b.sha256 and a.n_tokens == b.n_tokens
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_large_vocabularies_use_uint32(tmp_path: Path) -> None:
    assert shard_dtype(65535) == np.uint16 and shard_dtype(65536) == np.uint32
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({f"filler{i}": len(vocab) + i for i in range(70_000)})
    vocab[EOS_TOKEN] = len(vocab)
    big = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    big.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    big.add_special_tokens([EOS_TOKEN])
    big_tok = Tok(big, EOS_TOKEN, "big")
    info = encode_corpus(["hi there"], big_tok, tmp_path / "big", progress=False)
    tokens, meta = open_shard(tmp_path / "big")
    assert meta["dtype"] == "uint32" and tokens.dtype == np.uint32
    assert int(tokens[-1]) == big_tok.eos_id > 65535 and info.n_tokens == len(big_tok.encode("hi there")) + 1


def test_failed_encoding_leaves_the_old_shard_intact(tok: Tok, tmp_path: Path) -> None:
    encode_corpus(["first version"], tok, tmp_path / "s", progress=False)

    def broken():
        yield "fine"
        raise RuntimeError("reader died")

    with pytest.raises(RuntimeError):
        encode_corpus(broken(), tok, tmp_path / "s", progress=False)
    tokens, _ = open_shard(tmp_path / "s", verify=True)
    assert tok.decode(tokens[:-1]) == "first version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.bin", "s.json"]


def test_open_shard_rejects_incomplete_or_corrupt_shards(tok: Tok, tmp_path: Path) -> None:
    encode_corpus(make_texts(5), tok, tmp_path / "s", progress=False)
    with pytest.raises(InputError, match="did not finish"):
        open_shard(tmp_path / "nothing")
    data = (tmp_path / "s.bin").read_bytes()
    (tmp_path / "s.bin").write_bytes(data[::-1])
    open_shard(tmp_path / "s")  # same size: only verify notices
    with pytest.raises(InputError, match="sha256"):
        open_shard(tmp_path / "s.bin", verify=True)
    (tmp_path / "s.bin").write_bytes(data[:-2])
    with pytest.raises(InputError, match="s.bin: token file has"):
        open_shard(tmp_path / "s")
    meta = json.loads((tmp_path / "s.json").read_text())
    meta["n_tokens"] = "many"
    (tmp_path / "s.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="s.json: field 'n_tokens'"):
        read_shard_info(tmp_path / "s")


def test_encode_real_web_text(shared_dir: Path, tmp_path: Path) -> None:
    source = shared_dir / "corpora" / "natural" / "c4_olmo_fixtures.jsonl.gz"
    tok = load_tokenizer(train_tokenizer(read_documents(source), 1000, tmp_path / "t.json"))
    info = encode_corpus(source, tok, tmp_path / "c4", progress=False)
    tokens, _ = open_shard(tmp_path / "c4", verify=True)
    assert info.n_docs == 40 and int((tokens == tok.eos_id).sum()) == 40
    assert tok.token_byte_lengths()[tokens].sum() == info.source_bytes


def test_byte_lengths_of_a_sentencepiece_style_tokenizer() -> None:
    from tokenizers import decoders

    vocab = {"<unk>": 0, "</s>": 1, "▁hello": 2, "wörld": 3, "<0xE2>": 4, "▁": 5}
    sp = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    sp.pre_tokenizer = pre_tokenizers.Metaspace()
    sp.decoder = decoders.Metaspace()
    sp.add_special_tokens(["</s>", "<unk>"])
    lengths = Tok(sp, "</s>", "sp").token_byte_lengths()
    assert lengths.tolist() == [0, 0, 6, 6, 1, 1]
