"""One optimizer step, and one evaluation, of the model being trained."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from synthscale.errors import RunError
from synthscale.model.llama import Llama
from synthscale.train.config import TrainConfig
from synthscale.train.optimizer import set_lr

EvalFn = Callable[[Llama], Mapping[str, Any]]


def train_step(
    forward: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    cfg: TrainConfig,
    lr: float | None = None,
    want_grad_norm: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on ``batch`` [B, T+1] at learning rate ``lr``, in ``cfg.grad_accum`` micro-batches.

    ``forward`` is the model, or its DDP wrapper (gradients are then averaged over
    ranks once per step, at the last micro-batch). Returns (mean loss over the batch,
    global grad norm before clipping) as device tensors; the grad norm is computed only
    when clipping or ``want_grad_norm``.
    """
    if lr is not None:
        set_lr(optimizer, lr)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    micro_batches = batch.chunk(cfg.grad_accum)
    loss_sum = torch.zeros((), device=batch.device)
    for i, micro in enumerate(micro_batches):
        defer = getattr(forward, "no_sync", None) if i + 1 < len(micro_batches) else None
        with defer() if defer else contextlib.nullcontext(), autocast(cfg.dtype, batch.device):
            _, loss = forward(micro[:, :-1], micro[:, 1:], return_logits=False)
            (loss / cfg.grad_accum).backward()
        loss_sum += loss.detach()
    if cfg.grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    elif want_grad_norm:
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    else:
        grad_norm = torch.full((), math.nan, device=batch.device)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum / cfg.grad_accum, grad_norm


def run_eval(eval_fn: EvalFn | None, model: nn.Module) -> dict[str, Any] | None:
    """``eval_fn(model)`` in eval mode without gradients (then back to train mode); None without an eval_fn."""
    if eval_fn is None:
        return None
    model.eval()
    with torch.no_grad():
        result = eval_fn(model)
    model.train()
    if not isinstance(result, Mapping):
        raise RunError(f"eval_fn must return a dict, got {type(result).__name__}")
    return dict(result)


def autocast(dtype: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for dtype "bfloat16"; a no-op context otherwise."""
    if dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
