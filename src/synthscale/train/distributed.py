"""Several processes, one model: torchrun with DDP or FSDP2, on CUDA (nccl) or CPU (gloo).

The model maths stays in model/llama.py; this module only decides where each process
runs, wraps the model (DDP, or FSDP2 ``fully_shard``), fills sharded (DTensor)
parameters from full tensors, and cuts each rank's slice of the global batch. Under torchrun
(``WORLD_SIZE`` > 1 in the environment) ``train()`` calls ``setup()``, which starts
the process group unless the caller already did. Rank r trains on rows
[r * B / W, (r + 1) * B / W) of every global batch of B sequences; DDP averages the
gradients over ranks, so a step is the step one process takes on the whole batch.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from synthscale.errors import ConfigError
from synthscale.model.llama import Llama
from synthscale.train.config import TrainConfig

T = TypeVar("T")  # a tensor or an array: anything sliced by rows


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: rank, world size, device, and whether it started the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """More than one process trains this model."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0


def setup(cfg: TrainConfig) -> DistContext:
    """This process's DistContext; starts the process group under torchrun (gloo on CPU, nccl on CUDA)."""
    device = _resolve_device(cfg.resolved_device())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 and not dist.is_initialized():
        return DistContext(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    ctx = DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                      device=device, owns_group=owns_group)
    if cfg.batch_size % (ctx.world_size * cfg.grad_accum):
        raise ConfigError(f"TrainConfig.batch_size: {cfg.batch_size} sequences do not split evenly over "
                          f"{ctx.world_size} processes x grad_accum={cfg.grad_accum}")
    return ctx


def teardown(ctx: DistContext) -> None:
    """End the process group if ``setup`` started it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DistContext, cfg: TrainConfig) -> nn.Module:
    """The module that trains: the model itself, DDP around it, or the model fully_shard-ed in place (FSDP2).

    FSDP2 shards every transformer block and then the root (embedding, final norm, head),
    so one block's parameters are gathered at a time.
    """
    if not ctx.distributed:
        return model
    if cfg.parallel == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if cfg.dtype == "bfloat16" else None,
                                  reduce_dtype=torch.float32)
        for block in model.layers:
            fully_shard(block, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def copy_full_(param: torch.Tensor, full: torch.Tensor) -> None:
    """Copy the full tensor ``full`` into ``param``, or into this rank's shard when ``param`` is a DTensor.

    Every rank passes the same full tensor, so the shard is cut locally (no communication).
    """
    if dist.is_available():
        from torch.distributed.tensor import DTensor, distribute_tensor

        if isinstance(param, DTensor):
            shard = distribute_tensor(full.to(param.device), param.device_mesh, param.placements, src_data_rank=None)
            param.to_local().copy_(shard.to_local())
            return
    param.copy_(full)


@torch.no_grad()
def init_sharded_weights(model: Llama, seed: int) -> None:
    """``model.init_weights(seed)`` for a model whose parameters may be FSDP2 DTensors: each rank fills its shards.

    The full tensors are drawn one at a time (``Llama.fresh_weights``), so a sharded
    model gets this rank's part of exactly the weights of ``Llama(cfg, seed)``.
    """
    model.init_rope()
    params = dict(model.named_parameters())
    for name, full in model.fresh_weights(seed):
        copy_full_(params[name], full)


@torch.no_grad()
def load_full_weights(model: Llama, weights: dict[str, torch.Tensor]) -> None:
    """Load full (unsharded) tensors by parameter name, into this rank's shards when sharded.

    ``load_state_dict`` for models whose parameters may be FSDP2 DTensors; the keys must
    be the parameter names (ValueError naming the difference otherwise).
    """
    params = dict(model.named_parameters())
    if model.cfg.tie_embeddings:  # the head is the embedding; a state dict may list it twice
        weights = {k: v for k, v in weights.items() if k != "lm_head.weight"}
    if set(weights) != set(params):
        missing, unexpected = sorted(set(params) - set(weights)), sorted(set(weights) - set(params))
        raise ValueError(f"weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, p in params.items():
        copy_full_(p, weights[name])


def local_rows(batch: T, ctx: DistContext) -> T:
    """This rank's contiguous slice of the global batch's rows (a tensor or an array)."""
    if not ctx.distributed:
        return batch
    per_rank = batch.shape[0] // ctx.world_size
    return batch[ctx.rank * per_rank:(ctx.rank + 1) * per_rank]


def mean_over_ranks(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The element-wise mean of ``t`` over ranks (``t`` itself with one process)."""
    if not ctx.distributed:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / ctx.world_size


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op with one process)."""
    if ctx.distributed:
        dist.barrier()


def torchrun_command(nproc: int, module: str, args: Sequence[str]) -> list[str]:
    """The command that runs ``python -m module args`` as ``nproc`` torchrun processes on this node."""
    torchrun = shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", "--nnodes=1", f"--nproc_per_node={nproc}", "-m", module, *args]


def _resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"TrainConfig.device: {name!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"TrainConfig.device: {name!r} requested but CUDA is not available")
    return device
