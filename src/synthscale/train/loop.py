"""The training loop: one run, one schedule, optional decay branches, resumable, on 1..K processes.

``train()`` reads top to bottom: join the process group (under torchrun), seed, build
the model (fresh or from Hugging Face weights) and wrap it (DDP / FSDP2), build the
optimizer and schedule, resume from the newest checkpoint in the run folder when there
is one, then take the remaining optimizer steps. Before the step where a requested
budget's decay starts, a decay branch is forked (train/wsd.py). Every
``checkpoint_every`` steps the full training state is saved (train/checkpoint.py). At
the end: the final checkpoint, the evaluation, the summary.

The parts live beside it: build.py (model), optimizer.py, schedule.py, step.py (one
optimizer step), data.py (batches), metrics.py (metrics.jsonl), wsd.py (decay
branches), state.py (RunState) and checkpoint.py (resumable state), distributed.py.

Host syncs: one per log step (losses and grad norm) and one per checkpoint; none
otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthscale._io import write_json
from synthscale.errors import ConfigError
from synthscale.model.checkpoint import save_weights
from synthscale.model.ladder import param_counts, train_flops_per_token
from synthscale.model.llama import ModelConfig
from synthscale.progress import progress_bar
from synthscale.train import checkpoint, distributed, wsd
from synthscale.train.build import build_training_model, seed_everything
from synthscale.train.config import TrainConfig
from synthscale.train.data import BatchCursor, Batches, device_batch
from synthscale.train.distributed import DistContext
from synthscale.train.metrics import MetricsLog, mean_losses, raise_if_diverged, step_record
from synthscale.train.optimizer import build_optimizer
from synthscale.train.schedule import make_schedule
from synthscale.train.state import RunState
from synthscale.train.step import EvalFn, run_eval, train_step


@dataclass(frozen=True)
class TrainSummary:
    """What a finished run reports. ``tokens_trained`` = steps * batch_size * seq_len (<= the budget)."""

    run_dir: str
    steps: int
    tokens_trained: int
    final_loss: float  # training loss of the last step
    final_lr: float
    params_total: int
    params_nonembedding: int
    flops_per_token: int  # ladder.train_flops_per_token
    train_flops: int  # flops_per_token * tokens_trained
    wall_s: float  # the step loop only (no model build, save or eval), this process's part of it
    tokens_per_s: float  # tokens processed (main run and branches) / wall_s
    checkpoint: str
    eval: dict[str, Any] | None = None
    # One entry per budget read off the run, smallest first, the run's own budget last:
    # {"budget", "tokens", "steps", "decay_steps", "fork_step", "final_loss", "eval"}.
    budget_evals: list[dict[str, Any]] | None = None
    tokens_processed: int = 0  # main run plus decay branches: what the run cost
    resumed_from_step: int | None = None
    world_size: int = 1
    compiled: bool = False  # whether the run used torch.compile (TrainConfig.resolved_compile)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    batches: Batches,
    run_dir: str | os.PathLike,
    eval_fn: EvalFn | None = None,
    progress: bool = True,
    resume: bool = True,
) -> TrainSummary:
    """Train Llama(model_cfg) on ``batches`` for ``train_cfg.steps`` optimizer steps.

    ``batches`` gives one global batch [batch_size, seq_len + 1] per step (inputs =
    [:, :-1], targets = [:, 1:]): an object with ``.batches(batch_size, start_seq)``
    (MixtureStream), a callable ``batches_from(start_seq)``, or a plain iterable (see
    train/data.py). With ``resume`` the run continues from the newest checkpoint in
    ``run_dir/checkpoints/`` when there is one, and ends bit-identical (on CPU) to a run
    that was never interrupted. Under torchrun every rank calls this with the same
    arguments; rank 0 writes the files.

    Writes ``run_dir/metrics.jsonl``, ``run_dir/checkpoints/final.safetensors`` (+
    ``model_config.json``), ``run_dir/train_summary.json`` and, with budgets,
    ``run_dir/budget_evals.json``. ``eval_fn(model)`` runs at the end and on every decay
    branch (eval mode, no grad; on every rank). A NaN/inf loss raises RunError naming the
    step; too few or malformed batches raise InputError.
    """
    if train_cfg.seq_len > model_cfg.max_seq_len:
        raise ConfigError(
            f"TrainConfig.seq_len: {train_cfg.seq_len} exceeds the model's max_seq_len={model_cfg.max_seq_len}"
        )
    run_dir = Path(run_dir)
    ctx = distributed.setup(train_cfg)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _torch_threads(train_cfg.threads):
            return _Run(model_cfg, train_cfg, run_dir, ctx, eval_fn).train(batches, progress, resume)
    finally:
        distributed.teardown(ctx)


class _Run:
    """One run's model, optimizer and RunState; ``train()`` is its only entry."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, run_dir: Path, ctx: DistContext,
                 eval_fn: EvalFn | None):
        self.model_cfg, self.cfg, self.run_dir, self.ctx, self.eval_fn = model_cfg, cfg, run_dir, ctx, eval_fn
        seed_everything(cfg.seed)
        self.model, self.module, self.compiled = build_training_model(model_cfg, cfg, ctx)
        self.optimizer = build_optimizer(self.model, cfg, fused=None if cfg.parallel == "ddp" else False)
        self.schedule = make_schedule(cfg, cfg.steps)
        self.forks = wsd.fork_steps(cfg)  # budget -> the step where its decay branch forks off
        self.state = RunState()
        self.resumed_from: int | None = None

    def train(self, batches: Batches, progress: bool, resume: bool) -> TrainSummary:
        """Take the run's remaining steps (and decay branches), then finish it."""
        cfg, ctx = self.cfg, self.ctx
        start = self._resume() if resume else 0
        cursor = BatchCursor(batches, cfg.batch_size, start)
        window: list[torch.Tensor] = []  # this process's losses since the last log, on device
        metrics = MetricsLog(self.run_dir / "metrics.jsonl", self.state.metrics, enabled=ctx.is_main)
        total_steps = cfg.steps + wsd.branch_steps_total(cfg)
        lr = self.schedule(max(start - 1, 0))
        t_start = t_window = time.perf_counter()
        with progress_bar("train", total_steps, enabled=progress and ctx.is_main, unit="steps",
                          completed=start + self.state.branch_steps, transient=False, remaining=True) as advance, \
                metrics:
            for step in range(start, cfg.steps):
                for budget in wsd.branches_at(self.forks, step, self.state.budget_evals):
                    self._run_branch(budget, cursor, on_step=advance)
                batch = device_batch(cursor.next(), step, cfg.steps, cfg, self.model_cfg.vocab_size, ctx)
                lr = self.schedule(step)
                is_log_step = (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps
                loss, grad_norm = train_step(self.module, self.optimizer, batch, cfg, lr, want_grad_norm=is_log_step)
                window.append(loss)
                advance(1)
                if is_log_step:
                    now = time.perf_counter()
                    losses = self._log(metrics, window, step, lr, grad_norm, now - t_window)
                    advance(0, description=f"train loss {losses[-1]:.3f}")
                    window, t_window = [], now
                if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                    self.state.window += mean_losses(window, ctx)
                    window = []
                    self._checkpoint(step + 1, metrics)
        wall_s = time.perf_counter() - t_start
        return self._finish(lr, wall_s, start)

    def _resume(self) -> int:
        """Load the newest checkpoint of the run folder, if any; the number of steps already done."""
        if self.ctx.is_main:
            checkpoint.prune(self.run_dir, self.cfg.keep_checkpoints)  # drops interrupted writes
        distributed.barrier(self.ctx)
        folder = checkpoint.latest_state(self.run_dir)
        if folder is None:
            return 0
        self.state = checkpoint.load_state(folder, self.model, self.optimizer, self.model_cfg, self.cfg)
        self.resumed_from = self.state.step
        return self.state.step

    def _run_branch(self, budget: int, cursor: BatchCursor, on_step: Callable[[], None]) -> None:
        """Run the decay branch of ``budget`` (train/wsd.py) and record its result."""
        record = wsd.run_branch(budget, self.forks[budget], cursor, self.model, self.module, self.optimizer,
                                self.cfg, self.ctx, self.eval_fn, self.run_dir, on_step)
        self.state.branch_steps += record["decay_steps"]
        if self.ctx.is_main:
            write_json(self.run_dir / "budget_evals.json", self.state.budget_evals + [record])
        self.state.budget_evals.append(record)

    def _log(self, metrics: MetricsLog, window: list[torch.Tensor], step: int, lr: float,
             grad_norm: torch.Tensor, seconds: float) -> list[float]:
        """Write the metrics record of a log step (the host sync); raise RunError on a NaN/inf loss."""
        losses = self.state.window + mean_losses(window, self.ctx)
        self.state.window = []
        raise_if_diverged(losses, first_step=step + 2 - len(losses), run_dir=self.run_dir)
        metrics.append(step_record(step + 1, self.cfg.tokens_per_step, losses, lr, grad_norm, seconds))
        self.state.final_loss = losses[-1]
        return losses

    def _checkpoint(self, steps_done: int, metrics: MetricsLog) -> None:
        """Save the resumable state after ``steps_done`` steps (collective)."""
        state, cfg = self.state, self.cfg
        state.step, state.tokens = steps_done, steps_done * cfg.tokens_per_step
        state.data_seq = steps_done * cfg.batch_size
        state.metrics = list(metrics.records)
        state.model_config, state.train_config = self.model_cfg.to_dict(), cfg.to_dict()
        checkpoint.save_state(self.run_dir, self.model, self.optimizer, state, self.ctx, cfg.keep_checkpoints)

    def _finish(self, lr: float, wall_s: float, start: int) -> TrainSummary:
        """Save the final weights, evaluate, write the summary files; drop the resumable states."""
        cfg, model_cfg, ctx, state = self.cfg, self.model_cfg, self.ctx, self.state
        weights = checkpoint.full_model_state(self.model)  # collective under FSDP
        path = self.run_dir / "checkpoints" / "final.safetensors"
        if ctx.is_main:
            save_weights(weights, model_cfg, path, extra={"step": cfg.steps, "tokens": cfg.tokens_trained,
                                                          "seed": cfg.seed})
        eval_result = run_eval(self.eval_fn, self.model)
        total, nonembedding = param_counts(model_cfg)
        flops_per_token = train_flops_per_token(model_cfg, cfg.seq_len)
        final = {"budget": cfg.tokens, "tokens": cfg.tokens_trained, "steps": cfg.steps,
                 "decay_steps": cfg.decay_steps_for(cfg.steps) if cfg.schedule == "wsd" else None,
                 "fork_step": None, "final_loss": state.final_loss, "eval": eval_result}
        processed = (cfg.steps - start + state.branch_steps) * cfg.tokens_per_step
        summary = TrainSummary(
            run_dir=str(self.run_dir),
            steps=cfg.steps,
            tokens_trained=cfg.tokens_trained,
            final_loss=state.final_loss,
            final_lr=lr,
            params_total=total,
            params_nonembedding=nonembedding,
            flops_per_token=flops_per_token,
            train_flops=flops_per_token * cfg.tokens_trained,
            wall_s=wall_s,
            tokens_per_s=processed / max(wall_s, 1e-9),
            checkpoint=str(path),
            eval=eval_result,
            budget_evals=state.budget_evals + [final],
            tokens_processed=(cfg.steps + sum(e["decay_steps"] for e in state.budget_evals)) * cfg.tokens_per_step,
            resumed_from_step=self.resumed_from,
            world_size=ctx.world_size,
            compiled=self.compiled,
        )
        if ctx.is_main:
            if cfg.budgets:
                write_json(self.run_dir / "budget_evals.json", summary.budget_evals)
            write_json(self.run_dir / "train_summary.json",
                       {"summary": summary.to_dict(), "train_config": cfg.to_dict(),
                        "model_config": model_cfg.to_dict()})
            checkpoint.prune(self.run_dir, keep=0)  # the run is done: its resumable states are not needed
        distributed.barrier(ctx)
        return summary


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Set torch's intra-op thread count for the block (0 = leave as is), then restore it."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
