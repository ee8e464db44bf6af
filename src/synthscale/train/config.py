"""TrainConfig: one training run's budget, optimizer and runtime settings, validated.

It is the one declaration of training settings: a study spec's ``training:`` section is a
TrainConfig without the per-run fields (``tokens``, ``seed``, ``budgets``: they come from the
spec's budgets and seeds), ``for_run`` fills those and the ladder's defaults, and every run
folder's ``config.json`` holds the resolved TrainConfig whole (``settings.train``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from dataclasses import dataclass
from typing import Any, Callable

import torch

from synthscale._io import dataclass_from_dict
from synthscale.errors import ConfigError
from synthscale.model import ladder

DTYPES = ("float32", "bfloat16")
SCHEDULES = ("cosine", "wsd")
PARALLEL = ("ddp", "fsdp")

# compile="auto" on CPU: compile when a run would take this long eager, at this rate per
# thread (eager cpu-micro..cpu-small steps reach 35-50 GFLOP/s on one core of the
# development VM; compiling costs ~20 s cold, 2-5 s from the inductor cache).
CPU_COMPILE_MIN_SECONDS = 120.0
CPU_EAGER_FLOPS_PER_THREAD = 40e9

# Fields that may change between a checkpoint and the run resuming from it: they change
# speed or bookkeeping, not the numbers the run computes.
RUNTIME_FIELDS = frozenset({"threads", "device", "compile", "log_every", "checkpoint_every", "keep_checkpoints",
                            "parallel"})


# set by a study for each run (from its budgets and seeds), never in a spec's training section
PER_RUN_FIELDS = ("tokens", "seed", "budgets")
DEVICES_HELP = 'a torch device string ("cpu", "cuda", "cuda:1") or "auto"'


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one run. Every budget is its own run with its own schedule.

    ``tokens``, ``batch_size`` and ``lr`` may be None in a template (a spec's training
    section): ``for_run`` sets the budget and takes batch and learning rate from the
    ladder rules for the model's size. ``train()`` needs them set (``is_resolved``).

    The run takes ``steps = tokens // (batch_size * seq_len)`` optimizer steps and so
    trains on ``tokens_trained = steps * batch_size * seq_len`` tokens (at most ``tokens``).

    - ``batch_size``: sequences per optimizer step; each step consumes one array of shape
      [batch_size, seq_len + 1] from the data and splits it into ``grad_accum`` equal
      micro-batches (so grad_accum changes memory, not the maths).
    - Schedule: linear warmup to ``lr`` over the warmup steps (``warmup_steps`` if set,
      else ``floor(warmup_frac * steps)``: the one warmup rule, 5% of the run by default,
      for ``synthscale train`` and studies alike), then cosine down to
      ``min_lr_ratio * lr`` at the last step.
    - Weight decay (decoupled, AdamW) applies to the projection matrices and an untied
      ``lm_head``; not to the RMSNorm scales nor to the token embedding (nor to a head
      tied to it), so rare tokens' embeddings are not pulled to zero.
    - ``grad_clip``: max global grad norm; 0 disables clipping.
    - ``threads``: torch intra-op threads for the run; 0 leaves torch's default.
    - ``log_every``: a metrics record (and the only host sync) every that many steps
      and at the last step.
    - ``dtype``: "float32", or "bfloat16" for bf16 autocast (weights stay float32).
    - ``compile``: torch.compile the blocks, final norm and fused loss (see
      ``Llama.compile_for_training``): True, False, or "auto" (the default: on for CUDA;
      on CPU only for runs long enough to earn the compile back, see
      ``resolved_compile`` and docs/training.md).
    - ``device``: a torch device string ("cpu", "cuda", "cuda:1"), or "auto" (CUDA when
      visible, else CPU; resolved where the run executes, see ``resolved_device``).
    - ``schedule``: "cosine" (above) or "wsd" (warmup-stable-decay: linear warmup, constant
      ``lr``, then a linear decay to ``min_lr_ratio * lr`` over the last
      ``round(decay_frac * steps)`` steps).
    - ``budgets``: with "wsd", extra token budgets (each less than ``tokens``) read off
      the same run: at each, a decay branch of ``round(decay_frac * its steps)`` steps is
      forked from the stable phase, trained, evaluated and dropped while the main run
      goes on (see train/wsd.py).
    - ``checkpoint_every``: save a resumable checkpoint (model, optimizer, schedule step,
      data position, RNG states, metrics) every that many steps; 0 = none. ``train()``
      resumes from the newest one in the run folder. ``keep_checkpoints`` newest are kept.
    - ``parallel``: under torchrun with several processes, "ddp" (replicated model) or
      "fsdp" (FSDP2 ``fully_shard``, for rungs that do not fit one device). Each rank
      trains on its slice of the global batch, so the maths is that of one process.
    - ``init_from_hf``: a Hugging Face Llama folder whose weights start the run (its
      config must equal the run's model config); None = fresh weights from ``seed``.
    """

    tokens: int | None = None
    seq_len: int = 128
    batch_size: int | None = None
    lr: float | None = None
    grad_accum: int = 1
    min_lr_ratio: float = 0.1
    warmup_frac: float = 0.05
    warmup_steps: int | None = None
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 0
    log_every: int = 10
    dtype: str = "float32"
    compile: bool | str = "auto"
    device: str = "auto"
    schedule: str = "cosine"
    decay_frac: float = 0.2
    budgets: tuple[int, ...] = ()
    checkpoint_every: int = 0
    keep_checkpoints: int = 1
    parallel: str = "ddp"
    init_from_hf: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.budgets, list):  # from JSON
            object.__setattr__(self, "budgets", tuple(self.budgets))
        check = self._check
        for name in ("seq_len", "grad_accum", "log_every"):
            check(name, lambda v: _is_int(v) and v >= 1, "a positive integer")
        for name in ("tokens", "batch_size"):
            check(name, lambda v: v is None or (_is_int(v) and v >= 1), "a positive integer")
        for name in ("seed", "threads"):
            check(name, lambda v: _is_int(v) and v >= 0, "an integer >= 0")
        check("lr", lambda v: v is None or (_is_num(v) and v > 0), "a positive number")
        check("eps", lambda v: _is_num(v) and v > 0, "a positive number")
        check("min_lr_ratio", lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]")
        check("warmup_frac", lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)")
        check("warmup_steps", lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0 or null")
        check("weight_decay", lambda v: _is_num(v) and v >= 0, "a number >= 0")
        check("grad_clip", lambda v: _is_num(v) and v >= 0, "a number >= 0 (0 disables)")
        for name in ("beta1", "beta2"):
            check(name, lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)")
        check("dtype", lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}")
        check("compile", lambda v: isinstance(v, bool) or v == "auto", "true, false or 'auto'")
        check("device", lambda v: isinstance(v, str) and v != "", DEVICES_HELP)
        check("schedule", lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}")
        check("decay_frac", lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1]")
        check("budgets", lambda v: isinstance(v, tuple) and all(_is_int(b) and b >= 1 for b in v),
              "a list of positive integers")
        check("checkpoint_every", lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0 = no checkpoints)")
        check("keep_checkpoints", lambda v: _is_int(v) and v >= 1, "a positive integer")
        check("parallel", lambda v: v in PARALLEL, f"one of {', '.join(PARALLEL)}")
        check("init_from_hf", lambda v: v is None or (isinstance(v, str) and v != ""), "a folder path or null")
        if self.batch_size is not None and self.batch_size % self.grad_accum:
            raise ConfigError(
                f"TrainConfig.grad_accum: batch_size={self.batch_size} is not divisible by grad_accum={self.grad_accum}"
            )
        if not self.is_resolved:
            return
        if self.tokens < self.batch_size * self.seq_len:
            raise ConfigError(
                f"TrainConfig.tokens: {self.tokens} is less than one step of "
                f"batch_size * seq_len = {self.batch_size * self.seq_len} tokens"
            )
        if self.warmup_steps is not None and self.warmup_steps >= self.steps:
            raise ConfigError(
                f"TrainConfig.warmup_steps: {self.warmup_steps} must be less than the run's {self.steps} steps"
            )
        self._check_budgets()

    def _check_budgets(self) -> None:
        if not self.budgets:
            return
        if self.schedule != "wsd":
            raise ConfigError("TrainConfig.budgets: decay branches need schedule='wsd'")
        if list(self.budgets) != sorted(set(self.budgets)) or self.budgets[-1] >= self.tokens:
            raise ConfigError(f"TrainConfig.budgets: expected increasing budgets below tokens={self.tokens}, "
                              f"got {list(self.budgets)}")
        for budget in self.budgets:
            steps = budget // self.tokens_per_step
            if steps - self.decay_steps_for(steps) < self.resolved_warmup_steps:
                raise ConfigError(f"TrainConfig.budgets: the decay branch of budget {budget} ({steps} steps) would "
                                  f"start before the {self.resolved_warmup_steps} warmup steps end")

    @property
    def is_resolved(self) -> bool:
        """Whether the run's budget, batch size and learning rate are set (what ``train()`` needs)."""
        return self.tokens is not None and self.batch_size is not None and self.lr is not None

    def for_run(self, n_nonembedding: int, *, tokens: int, seed: int, budgets: tuple[int, ...] = ()) -> "TrainConfig":
        """This template resolved for one run: its budget, seed and wsd budgets set, batch size and
        learning rate from the ladder rules for ``n_nonembedding`` parameters where not given."""
        batch = self.batch_size_for(n_nonembedding, tokens)
        lr = self.lr or ladder.default_lr(n_nonembedding, batch_tokens=batch * self.seq_len)
        return dataclasses.replace(self, tokens=tokens, seed=seed, budgets=tuple(budgets), batch_size=batch, lr=lr)

    def batch_size_for(self, n_nonembedding: int, tokens: int) -> int:
        """Sequences per step of a run of ``tokens``: ``batch_size``, else the ladder rule."""
        return self.batch_size or ladder.default_batch_size(n_nonembedding, self.seq_len, tokens=tokens)

    def resolved_device(self) -> str:
        """``device``, with "auto" read as CUDA when visible, else CPU."""
        if self.device != "auto":
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def _need_resolved(self) -> None:
        if not self.is_resolved:
            missing = [k for k in ("tokens", "batch_size", "lr") if getattr(self, k) is None]
            raise ConfigError(f"TrainConfig.{missing[0]}: not set (a template; resolve it with for_run)")

    def _check(self, field: str, ok: Callable[[Any], bool], expected: str) -> None:
        value = getattr(self, field)
        if not ok(value):
            raise ConfigError(f"TrainConfig.{field}: expected {expected}, got {value!r}")

    @property
    def steps(self) -> int:
        """Optimizer steps of the run: tokens // (batch_size * seq_len)."""
        self._need_resolved()
        return self.tokens // (self.batch_size * self.seq_len)

    @property
    def tokens_per_step(self) -> int:
        """Tokens consumed by one optimizer step: batch_size * seq_len."""
        self._need_resolved()
        return self.batch_size * self.seq_len

    @property
    def tokens_trained(self) -> int:
        """Tokens the run actually trains on: steps * batch_size * seq_len."""
        return self.steps * self.tokens_per_step

    @property
    def resolved_warmup_steps(self) -> int:
        """Warmup steps: warmup_steps if set, else floor(warmup_frac * steps)."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return int(self.warmup_frac * self.steps)

    def decay_steps_for(self, steps: int) -> int:
        """WSD decay steps of a run (or branch) of ``steps`` steps: round(decay_frac * steps), at least 1."""
        return max(1, round(self.decay_frac * steps))

    def resolved_compile(self, flops_per_token: int) -> bool:
        """Whether to torch.compile this run: ``compile``, where "auto" means "where it pays".

        On CUDA always. On CPU when the run is long enough to earn back the compile
        (~20 s cold on 2 cores, a few seconds from the on-disk inductor cache) from the
        up to ~15% faster steps it gives (docs/training.md): when the run would take at least
        CPU_COMPILE_MIN_SECONDS eager, estimated at CPU_EAGER_FLOPS_PER_THREAD, and a C++
        compiler for inductor is on the PATH.
        """
        if self.compile != "auto":
            return bool(self.compile)
        device = self.resolved_device()
        if device.startswith("cuda"):
            return True
        if not device.startswith("cpu") or not have_cpp_compiler():
            return False
        threads = self.threads or torch.get_num_threads()
        eager_s = flops_per_token * self.steps * self.tokens_per_step / (CPU_EAGER_FLOPS_PER_THREAD * threads)
        return eager_s >= CPU_COMPILE_MIN_SECONDS

    def resume_fields(self) -> dict[str, Any]:
        """The fields a resumed run must share with its checkpoint (all but RUNTIME_FIELDS)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (JSON-ready)."""
        d = dataclasses.asdict(self)
        d["budgets"] = list(self.budgets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict; unknown or missing fields raise ConfigError."""
        return dataclass_from_dict(cls, d)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@functools.cache
def have_cpp_compiler() -> bool:
    """Whether inductor can build CPU kernels here: a C++ compiler ($CXX, c++, g++ or clang++) on the PATH."""
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c)
