"""The training loop: one run, one schedule, optional decay branches, resumable, on 1..K processes.

``train()`` reads top to bottom: join the process group (under torchrun), seed, build
the model (fresh or from Hugging Face weights), wrap it (DDP / FSDP2), resume from the
newest checkpoint in the run folder when there is one, then take the remaining
optimizer steps. Before the step where a requested budget's decay starts, a decay
branch is forked (see ``_run_branch``). Every ``checkpoint_every`` steps the full
training state is saved (train/state.py). At the end: the final checkpoint, the
evaluation, the summary.

Host syncs: one per log step (losses and grad norm) and one per checkpoint; none
otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from synthscale._io import atomic_write_text, write_json
from synthscale.errors import ConfigError, InputError, RunError
from synthscale.model.ladder import param_counts, train_flops_per_token
from synthscale.model.llama import Llama, ModelConfig
from synthscale.train import distributed, state
from synthscale.train.checkpoint import save_weights
from synthscale.train.config import TrainConfig
from synthscale.train.data import Batches, BatchCursor
from synthscale.train.distributed import DistContext
from synthscale.train.schedule import CosineSchedule, WSDSchedule

EvalFn = Callable[[Llama], Mapping[str, Any]]
Schedule = Callable[[int], float]


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
    """One run's model, optimizer and bookkeeping; ``train()`` is its only entry."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, run_dir: Path, ctx: DistContext,
                 eval_fn: EvalFn | None):
        self.model_cfg, self.cfg, self.run_dir, self.ctx, self.eval_fn = model_cfg, cfg, run_dir, ctx, eval_fn
        seed_everything(cfg.seed)
        sharded = ctx.distributed and cfg.parallel == "fsdp"
        # FSDP: shapes only until the model is sharded, then each rank fills in its shards
        self.model = build_model(model_cfg, cfg, device=torch.device("meta") if sharded else ctx.device)
        self.model.train()
        self.compiled = cfg.resolved_compile(train_flops_per_token(model_cfg, cfg.seq_len))
        if self.compiled:
            self.model.compile_for_training()
        self.module = distributed.wrap(self.model, ctx, cfg)
        if sharded:
            self.model.to_empty(device=ctx.device)
            init_weights(self.model, cfg)
        self.optimizer = build_optimizer(self.model, cfg, fused=None if cfg.parallel == "ddp" else False)
        self.schedule = make_schedule(cfg, cfg.steps)
        # budget -> the step (steps done) where its decay branch forks off
        self.forks = {b: (b // cfg.tokens_per_step) - cfg.decay_steps_for(b // cfg.tokens_per_step)
                      for b in cfg.budgets}
        self.book: dict[str, Any] = {"tokens": 0, "data_seq": 0, "metrics": [], "window": [],
                                     "budget_evals": [], "final_loss": math.nan, "branch_steps": 0}

    def train(self, batches: Batches, progress: bool, resume: bool) -> TrainSummary:
        cfg, ctx = self.cfg, self.ctx
        start = self._resume() if resume else 0
        cursor = BatchCursor(batches, cfg.batch_size, start)
        window: list[torch.Tensor] = []  # this process's losses since the last log, on device
        metrics = MetricsLog(self.run_dir / "metrics.jsonl", self.book["metrics"], enabled=ctx.is_main)
        total_steps = cfg.steps + sum(cfg.decay_steps_for(b // cfg.tokens_per_step) for b in cfg.budgets)
        lr = self.schedule(max(start - 1, 0))
        t_start = t_window = time.perf_counter()
        with _progress_bar(progress and ctx.is_main, total_steps) as (bar, task), metrics:
            bar.update(task, completed=start + self.book["branch_steps"])
            for step in range(start, cfg.steps):
                for budget in self._branches_at(step):
                    self.book["budget_evals"].append(self._run_branch(budget, cursor, bar, task))
                batch = _next_batch(cursor, step, cfg, self.model_cfg.vocab_size, ctx)
                lr = self.schedule(step)
                is_log_step = (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps
                loss, grad_norm = train_step(self.module, self.optimizer, batch, cfg, lr, want_grad_norm=is_log_step)
                window.append(loss)
                bar.update(task, advance=1)
                if is_log_step:
                    now = time.perf_counter()
                    losses = self._log(metrics, window, step, lr, grad_norm, now - t_window)
                    bar.update(task, description=f"train loss {losses[-1]:.3f}")
                    window, t_window = [], now
                if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                    self.book["window"] += _mean_over_ranks(window, ctx)
                    window = []
                    self._checkpoint(step + 1, metrics)
        wall_s = time.perf_counter() - t_start
        return self._finish(lr, wall_s, start)

    def _resume(self) -> int:
        """Load the newest checkpoint of the run folder, if any; the number of steps already done."""
        if self.ctx.is_main:
            state.prune(self.run_dir, self.cfg.keep_checkpoints)  # drops interrupted writes
        distributed.barrier(self.ctx)
        folder = state.latest_state(self.run_dir)
        if folder is None:
            return 0
        self.book = state.load_state(folder, self.model, self.optimizer, self.model_cfg, self.cfg)
        self.resumed_from = self.book["step"]
        return self.book["step"]

    def _branches_at(self, step: int) -> list[int]:
        done = {e["budget"] for e in self.book["budget_evals"]}
        return [b for b, fork in self.forks.items() if fork == step and b not in done]

    def _run_branch(self, budget: int, cursor: BatchCursor, bar: Progress, task: Any) -> dict[str, Any]:
        """Fork a decay branch for ``budget`` here, train it to the budget, evaluate it, and drop it.

        The branch follows WSDSchedule(total_steps = its steps, decay_steps) on the same
        batches the main run will take next; model and optimizer state are snapshotted
        before and restored after, so the main run continues exactly as if no branch
        had been taken.
        """
        cfg = self.cfg
        steps = budget // cfg.tokens_per_step
        fork, schedule = self.forks[budget], make_schedule(cfg, steps)
        snapshot = _snapshot(self.model, self.optimizer)
        data = cursor.peek(steps - fork)
        losses = []
        for step in range(fork, steps):
            batch = _next_batch_from(data, step, cfg, self.model_cfg.vocab_size, self.ctx, steps)
            loss, _ = train_step(self.module, self.optimizer, batch, cfg, schedule(step), want_grad_norm=False)
            losses.append(loss)
            bar.update(task, advance=1)
        values = distributed.mean_over_ranks(torch.stack(losses), self.ctx).tolist()
        _raise_if_diverged(values, first_step=fork + 1, run_dir=self.run_dir, where=f"decay branch of {budget}")
        result = _run_eval(self.eval_fn, self.model)
        _restore(self.model, self.optimizer, snapshot)
        self.model.train()
        self.book["branch_steps"] += steps - fork
        record = {"budget": budget, "tokens": steps * cfg.tokens_per_step, "steps": steps,
                  "decay_steps": steps - fork, "fork_step": fork, "final_loss": values[-1], "eval": result}
        if self.ctx.is_main:
            write_json(self.run_dir / "budget_evals.json", self.book["budget_evals"] + [record])
        return record

    def _log(self, metrics: MetricsLog, window: list[torch.Tensor], step: int, lr: float,
             grad_norm: torch.Tensor, seconds: float) -> list[float]:
        """Write the metrics record of a log step (the host sync); raise RunError on a NaN/inf loss."""
        losses = self.book["window"] + _mean_over_ranks(window, self.ctx)
        self.book["window"] = []
        _raise_if_diverged(losses, first_step=step + 2 - len(losses), run_dir=self.run_dir)
        tokens_per_step = self.cfg.tokens_per_step
        metrics.append({
            "step": step + 1,
            "tokens": (step + 1) * tokens_per_step,
            "loss": sum(losses) / len(losses),
            "lr": lr,
            "grad_norm": _finite_or_none(_as_float(grad_norm)),
            "tokens_per_s": len(losses) * tokens_per_step / max(seconds, 1e-9),
        })
        self.book["final_loss"] = losses[-1]
        return losses

    def _checkpoint(self, steps_done: int, metrics: MetricsLog) -> None:
        self.book.update(step=steps_done, tokens=steps_done * self.cfg.tokens_per_step,
                         data_seq=steps_done * self.cfg.batch_size, metrics=list(metrics.records),
                         model_config=self.model_cfg.to_dict(), train_config=self.cfg.to_dict())
        book = {k: v for k, v in self.book.items() if k != "step"}
        state.save_state(self.run_dir, steps_done, self.model, self.optimizer, book, self.ctx,
                         self.cfg.keep_checkpoints)

    def _finish(self, lr: float, wall_s: float, start: int) -> TrainSummary:
        cfg, model_cfg, ctx = self.cfg, self.model_cfg, self.ctx
        weights = state.full_model_state(self.model)  # collective under FSDP
        path = self.run_dir / "checkpoints" / "final.safetensors"
        if ctx.is_main:
            save_weights(weights, model_cfg, path, extra={"step": cfg.steps, "tokens": cfg.tokens_trained,
                                                          "seed": cfg.seed})
        eval_result = _run_eval(self.eval_fn, self.model)
        total, nonembedding = param_counts(model_cfg)
        flops_per_token = train_flops_per_token(model_cfg, cfg.seq_len)
        final = {"budget": cfg.tokens, "tokens": cfg.tokens_trained, "steps": cfg.steps,
                 "decay_steps": cfg.decay_steps_for(cfg.steps) if cfg.schedule == "wsd" else None,
                 "fork_step": None, "final_loss": self.book["final_loss"], "eval": eval_result}
        processed = (cfg.steps - start + self.book["branch_steps"]) * cfg.tokens_per_step
        summary = TrainSummary(
            run_dir=str(self.run_dir),
            steps=cfg.steps,
            tokens_trained=cfg.tokens_trained,
            final_loss=self.book["final_loss"],
            final_lr=lr,
            params_total=total,
            params_nonembedding=nonembedding,
            flops_per_token=flops_per_token,
            train_flops=flops_per_token * cfg.tokens_trained,
            wall_s=wall_s,
            tokens_per_s=processed / max(wall_s, 1e-9),
            checkpoint=str(path),
            eval=eval_result,
            budget_evals=self.book["budget_evals"] + [final],
            tokens_processed=(cfg.steps + sum(e["decay_steps"] for e in self.book["budget_evals"]))
            * cfg.tokens_per_step,
            resumed_from_step=getattr(self, "resumed_from", None),
            world_size=ctx.world_size,
            compiled=self.compiled,
        )
        if ctx.is_main:
            if cfg.budgets:
                write_json(self.run_dir / "budget_evals.json", summary.budget_evals)
            write_json(self.run_dir / "train_summary.json",
                       {"summary": summary.to_dict(), "train_config": cfg.to_dict(), "model_config": model_cfg.to_dict()})
            state.prune(self.run_dir, keep=0)  # the run is done: its resumable states are not needed
        distributed.barrier(ctx)
        return summary


def build_model(model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device | str = "cpu") -> Llama:
    """Llama(model_cfg) on ``device`` with fresh weights (seed ``cfg.seed``) or those of ``cfg.init_from_hf``.

    On the meta device the model has shapes only (for FSDP, which shards it first):
    ``to_empty`` it, then ``init_weights(model, cfg)``.
    """
    if cfg.init_from_hf is not None:
        check_hf_shape(model_cfg, cfg)  # fail before anything is built or read
    if torch.device(device).type == "meta":
        with torch.device("meta"):
            return Llama(model_cfg, seed=cfg.seed)
    model = Llama(model_cfg, seed=cfg.seed)  # weights drawn on CPU, then moved
    if cfg.init_from_hf is not None:
        _load_hf_weights(model, cfg.init_from_hf)
    return model.to(device)


def init_weights(model: Llama, cfg: TrainConfig) -> None:
    """Put fresh weights (seed ``cfg.seed``) or those of ``cfg.init_from_hf`` into a built, maybe sharded, model."""
    model.init_weights(cfg.seed)  # also the RoPE tables, which a model built on the meta device lacks
    if cfg.init_from_hf is not None:
        _load_hf_weights(model, cfg.init_from_hf)


def _load_hf_weights(model: Llama, folder: str) -> None:
    from synthscale.model.hf import load_hf_weights

    try:
        model.load_full_weights(load_hf_weights(folder)[1])
    except ValueError as e:
        raise InputError(str(e), path=str(folder)) from None


def check_hf_shape(model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    """ConfigError unless the HF folder ``cfg.init_from_hf`` has the model shape ``model_cfg``."""
    from synthscale.model.hf import import_hf_config

    hf_cfg = import_hf_config(cfg.init_from_hf)
    if hf_cfg != model_cfg:
        diff = [k for k, v in hf_cfg.to_dict().items() if model_cfg.to_dict()[k] != v]
        raise ConfigError(f"TrainConfig.init_from_hf: {cfg.init_from_hf} has another model shape "
                          f"(differs in {', '.join(diff)}); use import_hf_config() for the run's model config")


def make_schedule(cfg: TrainConfig, total_steps: int) -> Schedule:
    """The learning-rate schedule of a run (or decay branch) of ``total_steps`` steps under ``cfg``."""
    min_lr = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "wsd":
        return WSDSchedule(peak_lr=cfg.lr, min_lr=min_lr, warmup_steps=cfg.resolved_warmup_steps,
                           total_steps=total_steps, decay_steps=cfg.decay_steps_for(total_steps))
    return CosineSchedule(peak_lr=cfg.lr, min_lr=min_lr, warmup_steps=cfg.resolved_warmup_steps,
                          total_steps=total_steps)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices except the token embedding (see TrainConfig).

    ``fused=None`` uses the fused kernel where torch has one for the device (CPU and
    CUDA in torch >= 2.4), else the foreach one; False forces foreach (FSDP2's sharded
    parameters).
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # a tied head is listed once, as the embedding
        (decay if p.ndim >= 2 and name != "embed_tokens.weight" else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    if fused is not False:
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, ValueError):  # no fused kernel for this device/dtype
            pass
    return torch.optim.AdamW(groups, foreach=True, **kwargs)


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
        for group in optimizer.param_groups:
            group["lr"] = lr
    params = [p for group in optimizer.param_groups for p in group["params"]]
    micro_batches = batch.chunk(cfg.grad_accum)
    loss_sum = torch.zeros((), device=batch.device)
    for i, micro in enumerate(micro_batches):
        defer = getattr(forward, "no_sync", None) if i + 1 < len(micro_batches) else None
        with defer() if defer else contextlib.nullcontext(), _autocast(cfg.dtype, batch.device):
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


class MetricsLog:
    """The run's metrics.jsonl: records kept in memory, the file rewritten atomically.

    Rewrites happen on the first record, then at most every ``min_interval_s`` seconds,
    and on close, so a reader never sees a half-written line and long runs do not pay
    for rewriting the file at every log step. ``records`` are those of a resumed run.
    """

    def __init__(self, path: Path, records: list[dict[str, Any]] | None = None, min_interval_s: float = 5.0,
                 enabled: bool = True):
        self.path, self.min_interval_s, self.enabled = path, min_interval_s, enabled
        self.records: list[dict[str, Any]] = list(records or [])
        self._last_write = -math.inf

    def append(self, record: dict[str, Any]) -> None:
        """Add one record; write the file if the last write is old enough."""
        self.records.append(record)
        if time.monotonic() - self._last_write >= self.min_interval_s:
            self.flush()

    def flush(self) -> None:
        """Write all records so far to the file, atomically."""
        if self.enabled:
            atomic_write_text(self.path, "".join(_json_line(r) for r in self.records))
        self._last_write = time.monotonic()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"


def _next_batch(cursor: BatchCursor, step: int, cfg: TrainConfig, vocab_size: int,
                ctx: DistContext) -> torch.Tensor:
    """This rank's part of the main run's next batch, as an int64 device tensor."""
    return _checked(cursor.next(), step, cfg, vocab_size, ctx, cfg.steps)


def _next_batch_from(data: Iterator[np.ndarray], step: int, cfg: TrainConfig, vocab_size: int,
                     ctx: DistContext, steps: int) -> torch.Tensor:
    return _checked(next(data, None), step, cfg, vocab_size, ctx, steps)


def _checked(batch: np.ndarray | None, step: int, cfg: TrainConfig, vocab_size: int, ctx: DistContext,
             steps: int) -> torch.Tensor:
    """The global batch checked for shape and token range, cut to this rank's rows, on the device."""
    if batch is None:
        raise InputError(f"the data ran out at step {step + 1} of {steps}")
    batch = np.asarray(batch)
    expected = (cfg.batch_size, cfg.seq_len + 1)
    if batch.shape != expected or not np.issubdtype(batch.dtype, np.integer):
        raise InputError(
            f"batch {step + 1}: expected an integer array of shape {expected}, got {batch.dtype} {batch.shape}"
        )
    lo, hi = int(batch.min()), int(batch.max())
    if lo < 0 or hi >= vocab_size:
        raise InputError(f"batch {step + 1}: token ids must be in [0, {vocab_size}), got [{lo}, {hi}]")
    if ctx.distributed:
        per_rank = cfg.batch_size // ctx.world_size
        batch = batch[ctx.rank * per_rank:(ctx.rank + 1) * per_rank]
    if batch.dtype != np.int64 or not batch.flags.writeable or not batch.flags.c_contiguous:
        batch = np.ascontiguousarray(batch, dtype=np.int64)
    return torch.from_numpy(batch).to(ctx.device, non_blocking=True)


def _mean_over_ranks(window: list[torch.Tensor], ctx: DistContext) -> list[float]:
    """The window's per-step losses averaged over ranks, as floats (a host sync)."""
    if not window:
        return []
    return distributed.mean_over_ranks(torch.stack(window), ctx).tolist()


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Copies of the parameters and optimizer state (local shards under FSDP), for ``_restore``."""
    with torch.no_grad():
        params = [p.detach().clone() for p in model.parameters()]
        optim = {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                 for p, s in optimizer.state.items()}
    return {"params": params, "optim": optim}


def _restore(model: nn.Module, optimizer: torch.optim.Optimizer, snapshot: dict[str, Any]) -> None:
    """Put back the parameters and optimizer state of ``_snapshot``, bit for bit."""
    with torch.no_grad():
        for p, saved in zip(model.parameters(), snapshot["params"]):
            p.copy_(saved)
        for p in list(optimizer.state):
            saved = snapshot["optim"].get(id(p))
            if saved is None:  # state created in the branch (a fresh run's first step)
                del optimizer.state[p]
                continue
            for k, v in saved.items():
                if torch.is_tensor(v):
                    optimizer.state[p][k].copy_(v)
                else:
                    optimizer.state[p][k] = v


def _as_float(t: torch.Tensor) -> float:
    full = getattr(t, "full_tensor", None)  # a DTensor under FSDP
    return float(full() if full else t)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _raise_if_diverged(losses: list[float], first_step: int, run_dir: Path, where: str = "training") -> None:
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            raise RunError(f"{run_dir}: {where} diverged, loss is {loss} at step {first_step + i}")


def _run_eval(eval_fn: EvalFn | None, model: nn.Module) -> dict[str, Any] | None:
    if eval_fn is None:
        return None
    model.eval()
    with torch.no_grad():
        result = eval_fn(model)
    model.train()
    if not isinstance(result, Mapping):
        raise RunError(f"eval_fn must return a dict, got {type(result).__name__}")
    return dict(result)


def _autocast(dtype: str, device: torch.device) -> contextlib.AbstractContextManager:
    if dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[tuple[Progress, Any]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not enabled) as bar:
        yield bar, bar.add_task("train", total=total)
