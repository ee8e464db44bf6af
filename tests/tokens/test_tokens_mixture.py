"""tokens/mixture: exact ratios, determinism, repetition by epochs, resume, window contents."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from synthscale.errors import ConfigError, InputError
from synthscale.tokens import (BLOCK_SEQUENCES, MixtureStream, PackedSource, encode_corpus, largest_remainder,
                               load_tokenizer, train_tokenizer)
from synthscale.tokens.permutation import IndexPermutation

SEQ = 16
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho".split()


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """natural (two shards), hq and qa sources encoded with one tokenizer; qa is small."""
    root = tmp_path_factory.mktemp("mix")
    tok = load_tokenizer(train_tokenizer(texts(200, 0), 300, root / "tok.json"))
    out = {"natural": [root / "nat0", root / "nat1"], "hq": [root / "hq"], "qa": [root / "qa"]}
    encode_corpus(texts(150, 1), tok, out["natural"][0], progress=False)
    encode_corpus(texts(100, 2), tok, out["natural"][1], progress=False)
    encode_corpus(texts(120, 3), tok, out["hq"][0], progress=False)
    encode_corpus(texts(6, 4), tok, out["qa"][0], progress=False)
    return out


def stream(shards, weights, total_tokens=SEQ * 3000, seed=0) -> MixtureStream:
    return MixtureStream({k: shards[k] for k in weights}, weights, total_tokens, SEQ, seed)


@pytest.mark.parametrize("r", [0.0, 0.1, 1 / 3, 0.5, 2 / 3, 0.97, 1.0])
def test_counts_are_exact_for_every_ratio(shards, r: float) -> None:
    mix = stream(shards, {"natural": 1 - r, "hq": r}, total_tokens=SEQ * 2999 + 5)
    assert mix.n_sequences == 2999
    assert abs(mix.counts["hq"] - r * 2999) < 1 and sum(mix.counts.values()) == 2999
    src, _ = mix.assignments()
    assert np.bincount(src, minlength=2).tolist() == [mix.counts[n] for n in mix.names]
    if r == 0.0:
        assert mix.counts["hq"] == 0 and mix.epochs["hq"] == 0.0
    if r == 1.0:
        assert mix.counts["natural"] == 0


def test_counts_are_exact_with_several_synthetic_sources(shards) -> None:
    weights = {"natural": 0.5, "hq": 0.3, "qa": 0.2}
    mix = stream(shards, weights, total_tokens=SEQ * 1001)
    for name, w in weights.items():
        assert abs(mix.counts[name] - w * 1001) < 1
    assert sum(mix.counts.values()) == 1001
    assert largest_remainder([1 / 3, 1 / 3, 1 / 3], 10) == [4, 3, 3]


def test_every_block_prefix_keeps_the_ratio(shards) -> None:
    n = BLOCK_SEQUENCES * 3 + 123
    mix = stream(shards, {"natural": 2 / 3, "hq": 1 / 3}, total_tokens=SEQ * n)
    src, _ = mix.assignments()
    is_hq = src == mix.names.index("hq")
    for end in (BLOCK_SEQUENCES, 2 * BLOCK_SEQUENCES, 3 * BLOCK_SEQUENCES):
        # a uniform shuffle of the whole stream would stray by ~sqrt(end * 2/9) = 30-50 here
        assert abs(int(is_hq[:end].sum()) - end / 3) < 3
    assert int(is_hq.sum()) == mix.counts["hq"]


def test_same_seed_same_stream_other_seed_other_order(shards) -> None:
    weights = {"natural": 0.5, "hq": 0.5}
    a = np.concatenate(list(stream(shards, weights, seed=3).batches(32)))
    b = np.concatenate(list(stream(shards, weights, seed=3).batches(32)))
    c = np.concatenate(list(stream(shards, weights, seed=4).batches(32)))
    assert a.dtype == np.int64 and a.shape == (3000, SEQ + 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_sources_are_interleaved_not_in_runs(shards) -> None:
    src, _ = stream(shards, {"natural": 0.5, "hq": 0.5}).assignments()
    changes = int(np.sum(src[1:] != src[:-1]))
    assert 1000 < changes < 2000  # a shuffled 50/50 sequence changes source about every other step


@pytest.mark.parametrize("start", [0, 1, 31, 32, 1000, 2999, 3000])
def test_resume_at_any_sequence_equals_the_tail(shards, start: int) -> None:
    mix = stream(shards, {"natural": 0.6, "hq": 0.3, "qa": 0.1})
    full = np.concatenate(list(mix.batches(32)))
    tail = list(mix.batches(32, start_seq=start))
    got = np.concatenate(tail) if tail else np.zeros((0, SEQ + 1), dtype=np.int64)
    assert np.array_equal(got, full[start:])
    assert all(len(b) == 32 for b in tail[:-1])


def test_resume_across_block_boundaries(shards) -> None:
    n = BLOCK_SEQUENCES * 2 + 50
    mix = stream(shards, {"natural": 0.7, "hq": 0.3}, total_tokens=SEQ * n)
    src, win = mix.assignments()
    for start in (BLOCK_SEQUENCES - 1, BLOCK_SEQUENCES, BLOCK_SEQUENCES + 7, n - 3):
        s2, w2 = mix.assignments(start)
        assert np.array_equal(s2, src[start:]) and np.array_equal(w2, win[start:])
    assert np.array_equal(mix.sequence(n - 1), next(mix.batches(1, start_seq=n - 1))[0])


def test_a_small_source_repeats_with_a_new_permutation_each_epoch(shards) -> None:
    mix = stream(shards, {"natural": 0.5, "qa": 0.5})
    qa = mix.names.index("qa")
    n_windows = mix.windows["qa"]
    src, win = mix.assignments()
    qa_windows = win[src == qa]
    assert len(qa_windows) == mix.counts["qa"] > 3 * n_windows
    epochs = [qa_windows[i * n_windows:(i + 1) * n_windows] for i in range(3)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(n_windows))
    assert not np.array_equal(epochs[0], epochs[1])
    qa_tokens = PackedSource("qa", shards["qa"]).n_tokens
    assert mix.epochs["qa"] == pytest.approx(mix.counts["qa"] * SEQ / qa_tokens)
    assert mix.epochs["qa"] > 3


def test_each_sequence_is_one_window_of_its_source(shards) -> None:
    mix = stream(shards, {"natural": 0.5, "hq": 0.25, "qa": 0.25})
    full = np.concatenate([np.fromfile(str(p) + ".bin", dtype=np.uint16) for p in shards["natural"]])
    packed = {n: PackedSource(n, shards[n]) for n in mix.names}
    src, win = mix.assignments(0, 500)
    batch = next(mix.batches(500))
    natural = mix.names.index("natural")
    for row, (s, w) in enumerate(zip(src, win)):
        expected = packed[mix.names[s]].read(int(w) * SEQ, SEQ + 1)
        assert np.array_equal(batch[row], expected)
        if s == natural:
            assert np.array_equal(batch[row], full[w * SEQ:w * SEQ + SEQ + 1])
    boundary = np.fromfile(str(shards["natural"][0]) + ".bin", dtype=np.uint16).size
    crossing = packed["natural"].read(boundary - 3, 6)
    assert np.array_equal(crossing, full[boundary - 3:boundary + 3])


def test_last_batch_is_partial_unless_dropped(shards) -> None:
    mix = stream(shards, {"natural": 1.0, "hq": 0.0}, total_tokens=SEQ * 100)
    sizes = [len(b) for b in mix.batches(32)]
    assert sizes == [32, 32, 32, 4]
    assert [len(b) for b in mix.batches(32, drop_last=True)] == [32, 32, 32]


def test_bad_mixtures_are_rejected(shards, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="weights must name exactly"):
        MixtureStream({"natural": shards["natural"]}, {"nat": 1.0}, 1000, SEQ, 0)
    with pytest.raises(ConfigError, match="finite number"):
        MixtureStream({"natural": shards["natural"], "hq": shards["hq"]}, {"natural": 1.0, "hq": -0.1}, 1000, SEQ, 0)
    with pytest.raises(ConfigError, match="list of shard prefixes"):
        MixtureStream({"natural": str(shards["natural"][0])}, {"natural": 1.0}, 1000, SEQ, 0)
    with pytest.raises(ConfigError, match="fewer than one window"):
        MixtureStream({"qa": shards["qa"]}, {"qa": 1.0}, 200_000, 100_000, 0)
    with pytest.raises(ConfigError, match="start_seq"):
        next(stream(shards, {"natural": 1.0}).batches(4, start_seq=10**9))
    other = load_tokenizer(train_tokenizer(texts(50, 9), 280, tmp_path / "other.json"))
    encode_corpus(texts(50, 9), other, tmp_path / "foreign", progress=False)
    with pytest.raises(InputError, match="different tokenizers"):
        MixtureStream({"natural": shards["natural"], "x": [tmp_path / "foreign"]}, {"natural": 1, "x": 1}, 1000, SEQ, 0)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_index_permutation_is_a_seeded_bijection(n: int) -> None:
    perm = IndexPermutation(n, key=123)(np.arange(n))
    assert sorted(perm.tolist()) == list(range(n))
    assert np.array_equal(perm, IndexPermutation(n, key=123)(np.arange(n)))
    if n >= 7:
        assert not np.array_equal(perm, IndexPermutation(n, key=124)(np.arange(n)))
