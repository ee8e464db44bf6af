"""Warmup-stable-decay with decay branches: several budgets read off one run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthscale.errors import ConfigError
from synthscale.train import TrainConfig, WSDSchedule, train

from tests.train.helpers import SEQ, VOCAB, tiny_model

PROBE = torch.from_numpy(np.random.default_rng(99).integers(0, VOCAB, size=(4, SEQ + 1)))


def probe_loss(model) -> dict:
    """A deterministic eval_fn: the loss on a fixed batch, and the weights' checksum."""
    _, loss = model(PROBE[:, :-1], PROBE[:, 1:])
    return {"loss": loss.item(), "checksum": sum(p.double().sum().item() for p in model.parameters())}


def batches_from(start_seq: int):
    i = start_seq
    while True:
        rng = np.random.default_rng(i)
        cycle = rng.integers(0, VOCAB, size=5)
        yield np.stack([np.resize(np.roll(cycle, k), SEQ + 1) for k in range(8)])
        i += 8


def wsd_cfg(**overrides) -> TrainConfig:
    fields = dict(tokens=40 * 8 * SEQ, seq_len=SEQ, batch_size=8, lr=1e-2, warmup_steps=3, log_every=5, threads=1,
                  schedule="wsd", decay_frac=0.2)
    fields.update(overrides)
    return TrainConfig(**fields)


def test_wsd_schedule_warms_up_holds_then_decays_linearly_to_the_floor():
    sched = WSDSchedule(peak_lr=1.0, min_lr=0.1, warmup_steps=2, total_steps=10, decay_steps=3)
    assert [round(sched(s), 6) for s in range(10)] == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.4, 0.1]
    longer = WSDSchedule(peak_lr=1.0, min_lr=0.1, warmup_steps=2, total_steps=20, decay_steps=6)
    assert [sched(s) for s in range(7)] == [longer(s) for s in range(7)]  # a branch forks off a longer run


def test_a_decay_branch_equals_an_independent_wsd_run_of_its_budget(tmp_path):
    budgets = (10 * 8 * SEQ, 20 * 8 * SEQ)
    main = train(tiny_model(), wsd_cfg(budgets=budgets), batches_from, tmp_path / "main", probe_loss, False)
    alone = train(tiny_model(), wsd_cfg(tokens=budgets[1]), batches_from, tmp_path / "alone", probe_loss, False)
    first, second, last = main.budget_evals
    assert [e["budget"] for e in main.budget_evals] == [*budgets, 40 * 8 * SEQ]
    assert (second["steps"], second["decay_steps"], second["fork_step"]) == (20, 4, 16)
    assert second["eval"] == alone.eval and second["final_loss"] == alone.final_loss
    assert (first["steps"], first["decay_steps"]) == (10, 2)
    assert last["eval"] == main.eval and last["fork_step"] is None
    assert main.tokens_processed == (40 + 2 + 4) * 8 * SEQ and main.tokens_trained == 40 * 8 * SEQ
    assert json.loads((tmp_path / "main" / "budget_evals.json").read_text()) == main.budget_evals


def test_branches_leave_the_main_run_unchanged(tmp_path):
    with_branches = train(tiny_model(), wsd_cfg(budgets=(15 * 8 * SEQ,)), batches_from, tmp_path / "b", None, False)
    without = train(tiny_model(), wsd_cfg(), batches_from, tmp_path / "n", None, False)
    assert with_branches.final_loss == without.final_loss
    wa, wb = load_file(with_branches.checkpoint), load_file(without.checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_plain_iterator_feeds_branches_from_a_read_ahead_buffer(tmp_path):
    cfg = wsd_cfg(budgets=(15 * 8 * SEQ,))
    restartable = train(tiny_model(), cfg, batches_from, tmp_path / "r", probe_loss, False)
    iterator = train(tiny_model(), cfg, batches_from(0), tmp_path / "i", probe_loss, False)
    assert iterator.budget_evals == restartable.budget_evals


def test_a_resumed_run_keeps_the_branches_it_already_took(tmp_path):
    cfg = wsd_cfg(budgets=(10 * 8 * SEQ, 30 * 8 * SEQ), checkpoint_every=7)
    whole = train(tiny_model(), cfg, batches_from, tmp_path / "whole", probe_loss, False)

    def stop_at_step_25(start_seq):
        for i, batch in enumerate(batches_from(start_seq)):
            if start_seq // 8 + i == 25:
                raise KeyboardInterrupt
            yield batch

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), cfg, stop_at_step_25, tmp_path / "cut", probe_loss, False)
    calls = []
    resumed = train(tiny_model(), cfg, batches_from, tmp_path / "cut", lambda m: calls.append(1) or probe_loss(m),
                    False)
    assert resumed.resumed_from_step == 21 and len(calls) == 2  # the 30-budget branch and the end, not the 10
    assert resumed.budget_evals == whole.budget_evals


@pytest.mark.parametrize("overrides, message", [
    (dict(schedule="cosine", budgets=(1280,)), "need schedule='wsd'"),
    (dict(budgets=(40 * 8 * SEQ,)), "increasing budgets below"),
    (dict(budgets=(2560, 1280)), "increasing budgets below"),
    (dict(budgets=(3 * 8 * SEQ,)), "would start before the 3 warmup steps end"),
    (dict(decay_frac=0.0), "TrainConfig.decay_frac"),
])
def test_bad_budgets_are_refused_naming_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        wsd_cfg(**overrides)
