"""train/: config validation, schedule, the loop, metrics, checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthscale.errors import ConfigError, InputError, RunError
from synthscale.model import Llama, ModelConfig, param_counts
from synthscale.train import CosineSchedule, TrainConfig, load_model, read_checkpoint_metadata, train
from synthscale.train.config import have_cpp_compiler

VOCAB, SEQ = 64, 16


def model_cfg(**overrides) -> ModelConfig:
    fields = dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, max_seq_len=SEQ)
    fields.update(overrides)
    return ModelConfig(**fields)


def train_cfg(**overrides) -> TrainConfig:
    fields = dict(tokens=40 * 8 * SEQ, seq_len=SEQ, batch_size=8, lr=1e-2, warmup_steps=1, log_every=5, threads=1)
    fields.update(overrides)
    return TrainConfig(**fields)


def repetitive_batches(batch_size: int, seq_len: int = SEQ, period: int = 7, seed: int = 0):
    """Windows of a fixed random cycle of ``period`` tokens, at random offsets: easy to learn."""
    rng = np.random.default_rng(seed)
    cycle = rng.integers(0, VOCAB, size=period)
    stream = np.tile(cycle, (seq_len + 1) // period + 2)
    while True:
        starts = rng.integers(0, period, size=batch_size)
        yield np.stack([stream[s : s + seq_len + 1] for s in starts]).astype(np.int64)


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- config and schedule ---------------------------------------------------------------


def test_steps_and_tokens_trained_round_the_budget_down_to_whole_steps():
    cfg = train_cfg(tokens=1000, seq_len=16, batch_size=4, warmup_steps=None)
    assert cfg.steps == 15  # 1000 // 64
    assert cfg.tokens_trained == 15 * 64


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(batch_size=6, grad_accum=4), "grad_accum"),
        (dict(tokens=10), "tokens"),
        (dict(lr=0.0), "lr"),
        (dict(warmup_frac=1.0, warmup_steps=None), "warmup_frac"),
        (dict(warmup_steps=40), "warmup_steps"),
        (dict(dtype="float16"), "dtype"),
        (dict(beta2=1.0), "beta2"),
    ],
)
def test_bad_train_config_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=f"TrainConfig.{field}"):
        train_cfg(**overrides)


def test_train_config_round_trips_through_a_dict_and_rejects_unknown_fields():
    cfg = train_cfg()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown field"):
        TrainConfig.from_dict({**cfg.to_dict(), "momentum": 0.9})


def test_schedule_peaks_at_warmup_end_and_reaches_the_floor_at_the_last_step():
    sched = CosineSchedule(peak_lr=1e-3, min_lr=1e-4, warmup_steps=10, total_steps=100)
    assert sched(0) == pytest.approx(1e-4)
    assert sched(9) == pytest.approx(1e-3)  # last warmup step
    assert sched(10) < 1e-3
    assert sched(9 + 45) == pytest.approx(0.55e-3)  # halfway through the decay
    assert sched(99) == pytest.approx(1e-4)
    values = [sched(s) for s in range(9, 100)]
    assert values == sorted(values, reverse=True)


def test_schedule_without_warmup_starts_at_peak():
    sched = CosineSchedule(peak_lr=2.0, min_lr=0.0, warmup_steps=0, total_steps=5)
    assert [sched(s) for s in (0, 4)] == pytest.approx([2.0, 0.0])


def test_compile_auto_compiles_on_cuda_and_on_cpu_only_for_long_runs(monkeypatch):
    from synthscale.train import config as train_config

    monkeypatch.setattr(train_config, "have_cpp_compiler", lambda: True)
    flops_per_token = 7_000_000  # cpu-micro at vocab 4096
    long_tokens = int(train_config.CPU_COMPILE_MIN_SECONDS * train_config.CPU_EAGER_FLOPS_PER_THREAD
                      / flops_per_token) + 8 * SEQ
    short, long = train_cfg(tokens=40 * 8 * SEQ), train_cfg(tokens=long_tokens)
    assert not short.resolved_compile(flops_per_token)
    assert long.resolved_compile(flops_per_token)
    assert not train_cfg(tokens=long_tokens, threads=4).resolved_compile(flops_per_token)  # 4x faster eager
    assert train_cfg(device="cuda").resolved_compile(flops_per_token)
    assert train_cfg(compile=True).resolved_compile(flops_per_token)
    assert not train_cfg(tokens=long_tokens, device="cuda", compile=False).resolved_compile(flops_per_token)
    monkeypatch.setattr(train_config, "have_cpp_compiler", lambda: False)  # inductor cannot build CPU kernels
    assert not long.resolved_compile(flops_per_token)


@pytest.mark.skipif(not have_cpp_compiler(), reason="inductor needs a C++ compiler for CPU kernels")
def test_a_compiled_run_follows_the_eager_loss_curve(tmp_path):
    cfg = dict(tokens=6 * 8 * SEQ, log_every=1)
    eager = train(model_cfg(), train_cfg(**cfg, compile=False), repetitive_batches(8), tmp_path / "e", progress=False)
    compiled = train(model_cfg(), train_cfg(**cfg, compile=True), repetitive_batches(8), tmp_path / "c",
                     progress=False)
    curves = [[r["loss"] for r in read_metrics(tmp_path / d)] for d in ("e", "c")]
    assert len(curves[0]) == 6
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-4)
    assert compiled.final_loss == pytest.approx(eager.final_loss, rel=1e-4)
    assert compiled.compiled and not eager.compiled


# --- the loop --------------------------------------------------------------------------


def test_a_tiny_run_learns_a_repetitive_stream(tmp_path):
    summary = train(model_cfg(), train_cfg(log_every=1), repetitive_batches(8), tmp_path, progress=False)
    records = read_metrics(tmp_path)
    assert records[0]["loss"] == pytest.approx(math.log(VOCAB), abs=0.1)
    assert summary.final_loss < 0.5 * records[0]["loss"]
    assert summary.steps == 40 and summary.tokens_trained == 40 * 8 * SEQ


def test_metrics_have_one_record_per_log_step_and_the_summary_adds_up(tmp_path):
    cfg = train_cfg(tokens=12 * 8 * SEQ, log_every=5)
    summary = train(model_cfg(), cfg, repetitive_batches(8), tmp_path, progress=False)
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [5, 10, 12]
    assert [r["tokens"] for r in records] == [5 * 128, 10 * 128, 12 * 128]
    assert set(records[0]) == {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s"}
    assert records[-1]["lr"] == pytest.approx(cfg.lr * cfg.min_lr_ratio)
    assert summary.params_total == param_counts(model_cfg())[0]
    assert summary.train_flops == summary.flops_per_token * summary.tokens_trained
    saved = json.loads((tmp_path / "train_summary.json").read_text())
    assert saved["summary"]["final_loss"] == summary.final_loss
    assert saved["train_config"] == cfg.to_dict()


def test_same_seed_gives_bit_identical_loss_and_weights(tmp_path):
    a = train(model_cfg(), train_cfg(tokens=10 * 8 * SEQ), repetitive_batches(8), tmp_path / "a", progress=False)
    b = train(model_cfg(), train_cfg(tokens=10 * 8 * SEQ), repetitive_batches(8), tmp_path / "b", progress=False)
    c = train(
        model_cfg(), train_cfg(tokens=10 * 8 * SEQ, seed=1), repetitive_batches(8), tmp_path / "c", progress=False
    )
    assert a.final_loss == b.final_loss != c.final_loss
    wa, wb = load_file(a.checkpoint), load_file(b.checkpoint)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_two_half_batches_accumulate_to_one_full_batch(tmp_path):
    cfg = dict(tokens=6 * 8 * SEQ, grad_clip=0.5)
    full = train(model_cfg(), train_cfg(**cfg), repetitive_batches(8), tmp_path / "full", progress=False)
    accum = train(
        model_cfg(), train_cfg(grad_accum=2, **cfg), repetitive_batches(8), tmp_path / "accum", progress=False
    )
    assert accum.final_loss == pytest.approx(full.final_loss, rel=1e-5)
    wf, wa = load_file(full.checkpoint), load_file(accum.checkpoint)
    for k in wf:
        torch.testing.assert_close(wa[k], wf[k], rtol=1e-4, atol=1e-5)


def test_diverged_loss_raises_run_error_naming_the_first_bad_step(tmp_path, monkeypatch):
    class NanFromStep4(Llama):
        calls = 0

        def forward(self, tokens, targets=None, return_logits=True):
            logits, loss = super().forward(tokens, targets, return_logits)
            NanFromStep4.calls += 1
            return logits, loss * math.nan if NanFromStep4.calls >= 4 else loss

    monkeypatch.setattr("synthscale.train.build.Llama", NanFromStep4)
    with pytest.raises(RunError, match=r"diverged, loss is nan at step 4$"):  # not 5, the log step
        train(model_cfg(), train_cfg(log_every=5), repetitive_batches(8), tmp_path, progress=False)
    assert not (tmp_path / "checkpoints" / "final.safetensors").exists()


def test_eval_fn_runs_once_at_the_end_and_its_result_is_returned(tmp_path):
    calls = []

    def eval_fn(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"toy": {"loss": 1.5}}

    summary = train(model_cfg(), train_cfg(tokens=3 * 8 * SEQ), repetitive_batches(8), tmp_path, eval_fn, False)
    assert calls == [(False, False)]
    assert summary.eval == {"toy": {"loss": 1.5}}


def test_final_checkpoint_reloads_to_the_same_model(tmp_path):
    cfg = model_cfg(tie_embeddings=True)
    summary = train(cfg, train_cfg(tokens=3 * 8 * SEQ), repetitive_batches(8), tmp_path, progress=False)
    model = load_model(summary.checkpoint)
    assert model.cfg == cfg
    assert model.lm_head.weight is model.embed_tokens.weight
    assert read_checkpoint_metadata(summary.checkpoint)["step"] == "3"
    assert json.loads((tmp_path / "checkpoints" / "model_config.json").read_text()) == cfg.to_dict()
    tokens = torch.randint(0, VOCAB, (2, SEQ))
    fresh = Llama(cfg, seed=0).eval()
    with torch.no_grad():
        assert not torch.allclose(model(tokens)[0], fresh(tokens)[0])


def test_bad_data_raises_input_error_naming_the_batch(tmp_path):
    short = iter([np.zeros((8, SEQ + 1), dtype=np.int64)] * 2)
    with pytest.raises(InputError, match="ran out at step 3"):
        train(model_cfg(), train_cfg(), short, tmp_path / "short", progress=False)
    wrong_shape = iter([np.zeros((8, SEQ), dtype=np.int64)])
    with pytest.raises(InputError, match=r"batch 1: expected .*\(8, 17\)"):
        train(model_cfg(), train_cfg(), wrong_shape, tmp_path / "shape", progress=False)
    out_of_vocab = iter([np.full((8, SEQ + 1), VOCAB, dtype=np.int64)])
    with pytest.raises(InputError, match=r"token ids must be in \[0, 64\)"):
        train(model_cfg(), train_cfg(), out_of_vocab, tmp_path / "vocab", progress=False)


def test_threads_setting_is_restored_after_the_run(tmp_path):
    before = torch.get_num_threads()
    train(model_cfg(), train_cfg(tokens=2 * 8 * SEQ, threads=1), repetitive_batches(8), tmp_path, progress=False)
    assert torch.get_num_threads() == before


def test_bfloat16_autocast_trains(tmp_path):
    summary = train(model_cfg(), train_cfg(dtype="bfloat16"), repetitive_batches(8), tmp_path, progress=False)
    assert summary.final_loss < 0.5 * math.log(VOCAB)
    assert all(t.dtype == torch.float32 for t in load_file(summary.checkpoint).values())


def test_a_file_that_is_not_a_checkpoint_raises_input_error(tmp_path):
    bogus = tmp_path / "final.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="final.safetensors"):
        load_model(bogus)
