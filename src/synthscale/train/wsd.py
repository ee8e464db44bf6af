"""WSD decay branches: several token budgets read off one warmup-stable-decay run.

A WSD run of ``steps`` steps shares every step before its own decay with any longer WSD
run of the same peak and warmup. So for each extra budget b (TrainConfig.budgets) the
loop forks a branch at step ``fork = steps(b) - decay_steps(b)``: it snapshots model and
optimizer, trains the branch's decay on the batches the main run takes next, evaluates
it, and restores the snapshot bit for bit, so the main run continues as if no branch
had been taken. Each branch gives one ``budget_evals`` record.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthscale.model.llama import Llama
from synthscale.train.config import TrainConfig
from synthscale.train.data import BatchCursor, device_batch
from synthscale.train.distributed import DistContext
from synthscale.train.metrics import mean_losses, raise_if_diverged
from synthscale.train.schedule import make_schedule
from synthscale.train.step import EvalFn, run_eval, train_step


def fork_steps(cfg: TrainConfig) -> dict[int, int]:
    """budget -> the step (steps done by the main run) where its decay branch forks off."""
    return {b: (b // cfg.tokens_per_step) - cfg.decay_steps_for(b // cfg.tokens_per_step) for b in cfg.budgets}


def branch_steps_total(cfg: TrainConfig) -> int:
    """Optimizer steps all decay branches of the run take together."""
    return sum(cfg.decay_steps_for(b // cfg.tokens_per_step) for b in cfg.budgets)


def branches_at(forks: dict[int, int], step: int, budget_evals: list[dict[str, Any]]) -> list[int]:
    """The budgets whose branch forks at ``step`` and has not been run yet (a resumed run has some done)."""
    done = {e["budget"] for e in budget_evals}
    return [b for b, fork in forks.items() if fork == step and b not in done]


def run_branch(budget: int, fork: int, cursor: BatchCursor, model: Llama, module: nn.Module,
               optimizer: torch.optim.Optimizer, cfg: TrainConfig, ctx: DistContext, eval_fn: EvalFn | None,
               run_dir: Path, on_step: Callable[[], None]) -> dict[str, Any]:
    """Fork a decay branch for ``budget`` at step ``fork``, train it to the budget, evaluate it, and drop it.

    The branch follows make_schedule(cfg, its steps) (a WSDSchedule whose decay starts at
    ``fork``) on the same batches the main run will take next; model and optimizer state
    are snapshotted before and restored after. ``on_step`` is called after each branch
    step (progress). Returns the branch's budget_evals record: {"budget", "tokens",
    "steps", "decay_steps", "fork_step", "final_loss", "eval"}.
    """
    steps = budget // cfg.tokens_per_step
    schedule = make_schedule(cfg, steps)
    saved = snapshot(model, optimizer)
    data = cursor.peek(steps - fork)
    losses = []
    for step in range(fork, steps):
        batch = device_batch(next(data, None), step, steps, cfg, model.cfg.vocab_size, ctx)
        loss, _ = train_step(module, optimizer, batch, cfg, schedule(step), want_grad_norm=False)
        losses.append(loss)
        on_step()
    values = mean_losses(losses, ctx)
    raise_if_diverged(values, first_step=fork + 1, run_dir=run_dir, where=f"decay branch of {budget}")
    result = run_eval(eval_fn, model)
    restore(model, optimizer, saved)
    model.train()
    return {"budget": budget, "tokens": steps * cfg.tokens_per_step, "steps": steps,
            "decay_steps": steps - fork, "fork_step": fork, "final_loss": values[-1], "eval": result}


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Copies of the parameters and optimizer state (local shards under FSDP), for ``restore``."""
    with torch.no_grad():
        params = [p.detach().clone() for p in model.parameters()]
        optim = {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                 for p, s in optimizer.state.items()}
    return {"params": params, "optim": optim}


def restore(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Put back the parameters and optimizer state of ``snapshot``, bit for bit."""
    with torch.no_grad():
        for p, value in zip(model.parameters(), saved["params"]):
            p.copy_(value)
        for p in list(optimizer.state):
            state = saved["optim"].get(id(p))
            if state is None:  # state created in the branch (a fresh run's first step)
                del optimizer.state[p]
                continue
            for k, v in state.items():
                if torch.is_tensor(v):
                    optimizer.state[p][k].copy_(v)
                else:
                    optimizer.state[p][k] = v
