"""generate/backends/sampler: per-row seeded draws follow the filtered distribution and ignore batch neighbours."""

from __future__ import annotations

import torch

from synthscale.generate.backends.sampler import RowSampling, SeededSampler

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])


def draw(rows, logits, steps, input_ids=None, width=1):
    """The token each row picks at each of ``steps`` calls (fresh scores every call, same generators)."""
    sampler = SeededSampler(rows, width, [0] * len(rows))
    ids = input_ids if input_ids is not None else torch.zeros((len(rows), width), dtype=torch.long)
    picks = []
    for _ in range(steps):
        out = sampler(ids, logits.expand(len(rows), -1).clone())
        assert bool((out.isfinite().sum(-1) == 1).all())  # exactly one finite score per row
        picks.append(out.argmax(-1))
    return torch.stack(picks, 1)


def frequencies(picks, vocab):
    return torch.bincount(picks.flatten(), minlength=vocab).float() / picks.numel()


def test_draws_follow_the_softmax_of_the_tempered_logits():
    freq = frequencies(draw([RowSampling(seed=1, temperature=0.7)], LOGITS, 2000), 6)
    assert torch.allclose(freq, (LOGITS / 0.7).softmax(-1), atol=0.04)


def test_top_k_top_p_and_greedy_restrict_the_choices():
    assert set(draw([RowSampling(seed=2, top_k=2)], LOGITS, 300).unique().tolist()) == {0, 1}
    probs = LOGITS.softmax(-1)  # 0.55, 0.20, 0.12, ...: top_p 0.7 keeps the first two
    assert float(probs[:1].sum()) < 0.7 < float(probs[:2].sum())
    assert set(draw([RowSampling(seed=3, top_p=0.7)], LOGITS, 300).unique().tolist()) == {0, 1}
    assert set(draw([RowSampling(seed=4, temperature=0)], LOGITS, 20).unique().tolist()) == {0}


def test_a_row_draws_the_same_tokens_whatever_its_neighbours():
    alone = draw([RowSampling(seed=7, temperature=1.3)], LOGITS, 50)
    batch = draw([RowSampling(seed=9, top_k=3), RowSampling(seed=7, temperature=1.3),
                  RowSampling(seed=1, temperature=0)], LOGITS, 50)
    assert torch.equal(batch[1], alone[0]) and not torch.equal(batch[0], alone[0])


def test_repetition_and_presence_penalties_push_seen_tokens_down():
    seen = torch.tensor([[0, 0, 0]])  # token 0 is in the prompt (width 1) and was generated twice
    plain = frequencies(draw([RowSampling(seed=5)], LOGITS, 1000, seen, width=1), 6)[0]
    repeated = frequencies(draw([RowSampling(seed=5, repetition_penalty=2.0)], LOGITS, 1000, seen, width=1), 6)[0]
    present = frequencies(draw([RowSampling(seed=5, presence_penalty=1.5)], LOGITS, 1000, seen, width=1), 6)[0]
    assert repeated < plain - 0.15 and present < plain - 0.15
