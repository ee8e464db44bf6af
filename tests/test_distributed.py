"""torchrun for real: 2 CPU processes (gloo), DDP and FSDP2, give the loss curve of one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synthscale.errors import ConfigError
from synthscale.train import TrainConfig
from synthscale.train.commands import train_command
from synthscale.train.distributed import DistContext, local_rows, torchrun_command

from .train_helpers import curve, write_shard

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    shard = write_shard(root / "data" / "a", 40_000, seed=1)

    def run(name: str, nproc: int, parallel: str = "ddp", **overrides) -> dict:
        kw = dict(data=["a=" + shard], tokens=16 * 8 * 32, model="cpu-nano", seq_len=32, batch_size=8, lr=3e-3,
                  threads=1, device="cpu", progress=False, checkpoint_every=6)
        kw.update(overrides)
        return train_command(str(root / name), nproc=nproc, parallel=parallel, **kw)

    run.root = root
    run.reference = run("one", nproc=1)  # shared by both tests: parallel is a runtime setting
    return run


@pytest.mark.parametrize("parallel, grad_accum", [("ddp", 2), ("fsdp", 1)])
def test_two_processes_give_the_loss_curve_of_one_with_the_same_global_batch(runs, parallel, grad_accum):
    one = runs.reference
    two = runs(parallel, nproc=2, parallel=parallel, grad_accum=grad_accum)  # DDP: 2 ranks x 2 micro-batches
    assert two["world_size"] == 2 and one["world_size"] == 1
    a, b = curve(runs.root / "one"), curve(runs.root / parallel)
    assert [r[:2] for r in a] == [r[:2] for r in b]  # same steps and tokens
    for (_, _, loss1, lr1, gn1), (_, _, loss2, lr2, gn2) in zip(a, b):
        assert loss2 == pytest.approx(loss1, rel=1e-5) and lr2 == lr1 and gn2 == pytest.approx(gn1, rel=1e-4)
    assert b[-1][2] < a[0][2] - 0.5  # it learned
    wa, wb = load_file(one["checkpoint"]), load_file(two["checkpoint"])
    assert wa.keys() == wb.keys()  # FSDP's final checkpoint is gathered to full tensors
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5)
    request = json.loads((runs.root / parallel / "train_request.json").read_text())
    assert request["train_config"]["parallel"] == parallel


def test_fsdp_ranks_continue_from_hf_weights_like_one_process(runs):
    """Under FSDP the model is built on the meta device and each rank loads only its shards of the HF weights."""
    from synthscale.model.hf import _hf_tensors, _save_safetensors, hf_config
    from synthscale.model.llama import ModelConfig
    from synthscale.train import read_checkpoint_metadata

    checkpoint = runs.reference["checkpoint"]
    cfg = ModelConfig.from_dict(json.loads(read_checkpoint_metadata(checkpoint)["model_config"]))
    folder = runs.root / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(hf_config(cfg)))
    _save_safetensors(_hf_tensors(Path(checkpoint), cfg), folder / "model.safetensors")
    kw = dict(init_from_hf=str(folder), tokens=6 * 8 * 32, checkpoint_every=0)
    one = runs("hf_one", nproc=1, **kw)
    two = runs("hf_fsdp", nproc=2, parallel="fsdp", **kw)
    assert two["world_size"] == 2
    a, b = curve(runs.root / "hf_one"), curve(runs.root / "hf_fsdp")
    assert len(a) == len(b) > 0
    for (_, _, loss1, _, gn1), (_, _, loss2, _, gn2) in zip(a, b):
        assert loss2 == pytest.approx(loss1, rel=1e-5) and gn2 == pytest.approx(gn1, rel=1e-4)
    fresh = curve(runs.root / "one")
    assert a[0][2] < fresh[0][2] - 0.5  # it started from the trained weights, not from scratch
    assert one["final_loss"] == pytest.approx(two["final_loss"], rel=1e-5)


def test_each_rank_takes_its_contiguous_slice_of_the_global_batch():
    batch = torch.arange(8 * 3).reshape(8, 3)
    parts = [local_rows(batch, DistContext(rank=r, world_size=4)) for r in range(4)]
    assert torch.equal(torch.cat(parts), batch) and all(p.shape == (2, 3) for p in parts)


def test_torchrun_command_is_standalone_with_one_process_per_rank():
    cmd = torchrun_command(4, "synthscale.train.commands", ["RUN"])
    assert "--standalone" in cmd and "--nproc_per_node=4" in cmd and cmd[-3:] == ["-m", "synthscale.train.commands",
                                                                                  "RUN"]


def test_a_batch_that_does_not_split_over_ranks_is_refused(monkeypatch):
    from synthscale.train import distributed

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 0)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 3)
    with pytest.raises(ConfigError, match="do not split evenly over 3 processes"):
        distributed.setup(TrainConfig(tokens=8 * 16 * 4, seq_len=16, batch_size=8, lr=1e-3))
