"""evaluate/: fixed eval sets on disk, per-domain loss and bits-per-byte against hand computation."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthscale.errors import ConfigError, InputError, RunError
from synthscale.evaluate import EvalSet, build_eval_set, evaluate_model, load_eval_set, save_eval_set
from synthscale.tokens import Tok, encode_corpus, load_tokenizer, open_shard, train_tokenizer

SEQ = 12
WORDS = "sun moon star café über naïve 東京 — river 🙂 sea hill".split()


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))) for _ in range(n)]


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tok:
    return load_tokenizer(train_tokenizer(texts(100, 0), 290, tmp_path_factory.mktemp("tok") / "tok.json"))


@pytest.fixture(scope="module")
def shard(tok: Tok, tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("shards") / "wiki"
    encode_corpus(texts(60, 1), tok, prefix, progress=False)
    return prefix


class Uniform(nn.Module):
    """Zero logits everywhere: every token costs ln(vocab) nats."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, tokens, targets=None):
        return torch.zeros(*tokens.shape, self.vocab) + 0 * self.dummy, None


class Bigram(nn.Module):
    """A tiny seeded model whose logits depend on the current token only."""

    def __init__(self, vocab: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.table = nn.Embedding(vocab, vocab)
        self.drop = nn.Dropout(0.5)  # must be off during evaluation

    def forward(self, tokens, targets=None):
        logits = self.drop(self.table(tokens))
        loss = None if targets is None else F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss


def test_eval_set_is_the_first_windows_with_their_byte_counts(tok: Tok, shard: Path) -> None:
    tokens, meta = open_shard(shard)
    es = build_eval_set(shard, tok, SEQ, max_tokens=10 * SEQ + 5)
    assert es.n_windows == 10 and es.tokens.shape == (10, SEQ + 1) and es.seq_len == SEQ
    for k in range(es.n_windows):
        assert es.tokens[k].tolist() == tokens[k * SEQ:k * SEQ + SEQ + 1].tolist()
    assert es.tokens[0, -1] == es.tokens[1, 0]  # windows share one token; each target is scored once
    lengths = tok.token_byte_lengths()
    assert np.array_equal(es.target_bytes, lengths[es.tokens[:, 1:]])
    assert es.n_targets == 10 * SEQ and es.n_bytes == int(lengths[es.tokens[:, 1:]].sum())
    assert es.name == "wiki" and es.tokenizer_hash == tok.hash and es.source["shard_sha256"] == meta["sha256"]


def test_eval_set_is_capped_by_the_shard(tok: Tok, shard: Path) -> None:
    n_tokens = len(open_shard(shard)[0])
    es = build_eval_set(shard, tok, SEQ, max_tokens=10**9)
    assert es.n_windows == (n_tokens - 1) // SEQ


def test_save_and_load_roundtrip(tok: Tok, shard: Path, tmp_path: Path) -> None:
    es = build_eval_set(shard, tok, SEQ, 50 * SEQ, name="wikitext")
    written = save_eval_set(es, tmp_path / "eval" / "wikitext")
    assert written.name == "wikitext.safetensors"
    for path in (written, tmp_path / "eval" / "wikitext"):
        back = load_eval_set(path)
        assert back.digest == es.digest and back.name == "wikitext" and back.seq_len == SEQ
        assert np.array_equal(back.tokens, es.tokens) and np.array_equal(back.target_bytes, es.target_bytes)
        assert back.tokenizer_hash == tok.hash and back.source == es.source
    again = save_eval_set(build_eval_set(shard, tok, SEQ, 50 * SEQ, name="wikitext"), tmp_path / "again")
    assert again.read_bytes() == written.read_bytes()


def test_bad_eval_inputs_are_rejected(tok: Tok, shard: Path, tmp_path: Path) -> None:
    other = load_tokenizer(train_tokenizer(texts(30, 5), 270, tmp_path / "other.json"))
    with pytest.raises(InputError, match="not the given one"):
        build_eval_set(shard, other, SEQ, 100)
    with pytest.raises(ConfigError, match="max_tokens"):
        build_eval_set(shard, tok, SEQ, SEQ - 1)
    encode_corpus(["sun"], tok, tmp_path / "tiny", progress=False)
    with pytest.raises(InputError, match="fewer than one eval window"):
        build_eval_set(tmp_path / "tiny", tok, SEQ, 100)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(InputError, match="junk.safetensors"):
        load_eval_set(tmp_path / "junk.safetensors")
    with pytest.raises(InputError, match="no such eval set"):
        load_eval_set(tmp_path / "missing")


def test_uniform_model_gives_ln_vocab_and_its_bpb(tok: Tok, shard: Path) -> None:
    es = build_eval_set(shard, tok, SEQ, 40 * SEQ)
    result = evaluate_model(Uniform(tok.vocab_size), {"wiki": es}, batch_size=7)["wiki"]
    assert result["tokens"] == 40 * SEQ and result["bytes"] == es.n_bytes
    assert result["loss"] == pytest.approx(math.log(tok.vocab_size), rel=1e-6)
    expected_bpb = math.log(tok.vocab_size) / math.log(2) * result["tokens"] / result["bytes"]
    assert result["bpb"] == pytest.approx(expected_bpb, rel=1e-6)


def test_loss_and_bpb_match_a_hand_computation(tok: Tok, shard: Path) -> None:
    es = build_eval_set(shard, tok, SEQ, 30 * SEQ)
    model = Bigram(tok.vocab_size).train()
    total = 0.0
    with torch.no_grad():
        for window in es.tokens.tolist():
            for cur, nxt in zip(window[:-1], window[1:]):
                log_probs = torch.log_softmax(model.table.weight[cur].double(), dim=-1)
                total -= log_probs[nxt].item()
    result = evaluate_model(model, {"a": es, "b": es}, batch_size=4)
    assert result["a"] == result["b"]
    assert result["a"]["loss"] == pytest.approx(total / es.n_targets, rel=1e-6)
    assert result["a"]["bpb"] == pytest.approx(total / math.log(2) / es.n_bytes, rel=1e-6)
    assert model.training  # the mode is restored


def test_evaluation_is_deterministic_and_batch_size_free(tok: Tok, shard: Path) -> None:
    es = build_eval_set(shard, tok, SEQ, 30 * SEQ)
    model = Bigram(tok.vocab_size, seed=1)
    first = evaluate_model(model, {"d": es}, batch_size=5)
    assert evaluate_model(model, {"d": es}, batch_size=5) == first
    assert evaluate_model(model, {"d": es}, batch_size=30)["d"]["loss"] == pytest.approx(first["d"]["loss"], rel=1e-9)
    assert all(p.grad is None for p in model.parameters())


def test_models_that_drop_positions_or_vocab_are_refused(tok: Tok, shard: Path) -> None:
    es = build_eval_set(shard, tok, SEQ, 3 * SEQ)

    class LastOnly(Uniform):
        def forward(self, tokens, targets=None):
            return super().forward(tokens)[0][:, -1:, :], None

    with pytest.raises(RunError, match="every position"):
        evaluate_model(LastOnly(tok.vocab_size), {"d": es}, 2)
    with pytest.raises(RunError, match="vocabulary"):
        evaluate_model(Uniform(5), {"d": es}, 2)


def test_eval_set_from_real_text(shared_dir: Path, tmp_path: Path) -> None:
    source = shared_dir / "corpora" / "eval" / "shakespeare.jsonl.gz"
    tok = load_tokenizer(train_tokenizer(texts(50, 3), 300, tmp_path / "t.json"))
    info = encode_corpus(source, tok, tmp_path / "shakespeare", progress=False)
    es = build_eval_set(tmp_path / "shakespeare", tok, 64, 64 * 20)
    assert isinstance(es, EvalSet) and es.n_windows == 20 and info.n_docs == 110
    result = evaluate_model(Uniform(tok.vocab_size), {"shakespeare": es}, 8)["shakespeare"]
    assert result["bpb"] == pytest.approx(math.log2(tok.vocab_size) * es.n_targets / es.n_bytes, rel=1e-6)
