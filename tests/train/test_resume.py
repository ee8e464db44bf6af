"""Exact resume: checkpoints every N steps, a run killed (for real) and started again ends bit-identical."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthscale.errors import ConfigError
from synthscale.train import TrainConfig, train
from synthscale.train.checkpoint import latest_state

from tests.train.helpers import SEQ, VOCAB, curve, tiny_model, write_shard

ROOT = Path(__file__).resolve().parents[2]


def train_cfg(**overrides) -> TrainConfig:
    fields = dict(tokens=30 * 8 * SEQ, seq_len=SEQ, batch_size=8, lr=1e-2, warmup_steps=2, log_every=3,
                  threads=1, checkpoint_every=4)
    fields.update(overrides)
    return TrainConfig(**fields)


def batches_from(start_seq: int, stop_at_seq: int | None = None):
    """Restartable data: the batch starting at sequence i depends on i only."""
    i = start_seq
    while True:
        if stop_at_seq is not None and i >= stop_at_seq:
            raise KeyboardInterrupt  # stands in for an interruption in the middle of the run
        yield np.random.default_rng(i).integers(0, VOCAB, size=(8, SEQ + 1))
        i += 8


class Stream:
    """The MixtureStream interface: .batches(batch_size, start_seq)."""

    def batches(self, batch_size: int, start_seq: int = 0):
        return batches_from(start_seq)


def same_weights(a: str, b: str) -> bool:
    wa, wb = load_file(a), load_file(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("source", ["callable", "stream", "iterator"])
def test_an_interrupted_run_resumes_to_the_same_bits(tmp_path, source):
    whole = train(tiny_model(), train_cfg(), batches_from, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), train_cfg(), lambda s: batches_from(s, stop_at_seq=8 * 18), tmp_path / "cut",
              progress=False)
    assert latest_state(tmp_path / "cut").name == "step_00000016"
    data = {"callable": batches_from, "stream": Stream(), "iterator": batches_from(0)}[source]
    resumed = train(tiny_model(), train_cfg(), data, tmp_path / "cut", progress=False)
    assert resumed.resumed_from_step == 16
    assert resumed.final_loss == whole.final_loss
    assert same_weights(resumed.checkpoint, whole.checkpoint)
    assert curve(tmp_path / "cut") == curve(tmp_path / "whole")
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == [
        "final.safetensors", "model_config.json"]  # resumable states are dropped once the run is done


def test_only_the_newest_checkpoints_are_kept_and_hold_the_full_state(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), train_cfg(keep_checkpoints=2), lambda s: batches_from(s, stop_at_seq=8 * 26),
              tmp_path, progress=False)
    folders = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert folders == ["step_00000020", "step_00000024"]
    state = json.loads((tmp_path / "checkpoints" / "step_00000024" / "state.json").read_text())
    assert state["step"] == 24 and state["data_seq"] == 24 * 8 and state["tokens"] == 24 * 8 * SEQ
    assert [r["step"] for r in state["metrics"]] == [3, 6, 9, 12, 15, 18, 21, 24]
    assert set(state["rng"]) == {"numpy", "python"}
    optim = load_file(tmp_path / "checkpoints" / "step_00000024" / "optimizer.safetensors")
    assert "layers.0.mlp.up_proj.weight/exp_avg_sq" in optim


def test_resuming_with_another_config_is_refused_but_runtime_settings_may_change(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), train_cfg(), lambda s: batches_from(s, stop_at_seq=8 * 10), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="TrainConfig.lr is 0.02 but the checkpoint was trained with 0.01"):
        train(tiny_model(), train_cfg(lr=2e-2), batches_from, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="another model config"):
        train(tiny_model(ffn_dim=96), train_cfg(), batches_from, tmp_path, progress=False)
    summary = train(tiny_model(), train_cfg(log_every=3, threads=2, checkpoint_every=5), batches_from, tmp_path,
                    progress=False)
    assert summary.resumed_from_step == 8


def test_a_half_written_checkpoint_is_ignored_and_removed(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), train_cfg(), lambda s: batches_from(s, stop_at_seq=8 * 10), tmp_path, progress=False)
    partial = tmp_path / "checkpoints" / ".step_00000012.abc.tmp"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    summary = train(tiny_model(), train_cfg(), batches_from, tmp_path, progress=False)
    assert summary.resumed_from_step == 8 and not partial.exists()


# --- the real thing: a subprocess, SIGKILL, the same command again ---------------------------------

COMMAND = """
import sys
from synthscale.study.train_run import train_command
train_command(sys.argv[1], data=["a=" + sys.argv[2], "b=" + sys.argv[3]], weights=["a=0.7", "b=0.3"],
              tokens=240 * 8 * 32, model="cpu-nano", seq_len=32, batch_size=8, lr=3e-3, checkpoint_every=10,
              threads=1, device="cpu", progress=False)
"""


def run_command(run_dir: Path, shards: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", COMMAND, str(run_dir), *shards], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigkill_at_a_random_moment_then_the_same_command_ends_bit_identical(tmp_path):
    shards = [write_shard(tmp_path / "data" / "a", 60_000, seed=1),
              write_shard(tmp_path / "data" / "b", 30_000, seed=2)]
    reference = run_command(tmp_path / "whole", shards)
    assert reference.wait(timeout=120) == 0, reference.stdout.read().decode()

    killed_at = None
    for attempt in range(3):  # a kill that lands after the run finished does not count; try again
        run_dir = tmp_path / f"killed{attempt}"
        proc = run_command(run_dir, shards)
        deadline = time.monotonic() + 60
        while latest_state(run_dir) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if not (run_dir / "train_summary.json").exists():
            killed_at = latest_state(run_dir)
            break
    assert killed_at is not None, "the run always finished before the kill"
    again = run_command(run_dir, shards)
    assert again.wait(timeout=120) == 0, again.stdout.read().decode()

    whole = json.loads((tmp_path / "whole" / "train_summary.json").read_text())["summary"]
    resumed = json.loads((run_dir / "train_summary.json").read_text())["summary"]
    assert resumed["resumed_from_step"] == int(killed_at.name.split("_")[1]) > 0
    assert resumed["final_loss"] == whole["final_loss"]
    assert same_weights(resumed["checkpoint"], whole["checkpoint"])
    assert curve(run_dir) == curve(tmp_path / "whole")
