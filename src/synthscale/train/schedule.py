"""Learning-rate schedules: a function from optimizer step (0-based) to learning rate."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from synthscale.errors import ConfigError
from synthscale.train.config import TrainConfig

Schedule = Callable[[int], float]


def make_schedule(cfg: TrainConfig, total_steps: int) -> Schedule:
    """The learning-rate schedule of a run (or decay branch) of ``total_steps`` steps under ``cfg``."""
    min_lr = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "wsd":
        return WSDSchedule(peak_lr=cfg.lr, min_lr=min_lr, warmup_steps=cfg.resolved_warmup_steps,
                           total_steps=total_steps, decay_steps=cfg.decay_steps_for(total_steps))
    return CosineSchedule(peak_lr=cfg.lr, min_lr=min_lr, warmup_steps=cfg.resolved_warmup_steps,
                          total_steps=total_steps)


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warmup, then cosine decay, over exactly ``total_steps`` steps.

    Step s (0-based) uses:
    - s < warmup_steps: ``peak_lr * (s + 1) / warmup_steps`` (the last warmup step is at peak);
    - after: ``min_lr + (peak_lr - min_lr) * (1 + cos(pi * p)) / 2`` with
      ``p = (s - w) / (total_steps - 1 - w)`` and ``w = max(warmup_steps - 1, 0)``, so the
      step after warmup continues from peak and the last step ``total_steps - 1`` is at min_lr.
    """

    peak_lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ConfigError(f"schedule: total_steps must be >= 1, got {self.total_steps}")
        if not 0 <= self.warmup_steps < self.total_steps:
            raise ConfigError(
                f"schedule: warmup_steps must be in [0, {self.total_steps}), got {self.warmup_steps}"
            )
        if not 0 <= self.min_lr <= self.peak_lr:
            raise ConfigError(f"schedule: need 0 <= min_lr <= peak_lr, got {self.min_lr} and {self.peak_lr}")

    def __call__(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        decay_start = max(self.warmup_steps - 1, 0)
        decay_steps = self.total_steps - 1 - decay_start
        progress = min(1.0, (step - decay_start) / decay_steps) if decay_steps > 0 else 1.0
        return self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class WSDSchedule:
    """Warmup-stable-decay over exactly ``total_steps`` steps.

    Step s (0-based) uses:
    - s < warmup_steps: ``peak_lr * (s + 1) / warmup_steps`` (as CosineSchedule);
    - then ``peak_lr`` until the decay starts at ``total_steps - decay_steps``;
    - decay step i (1..decay_steps): ``peak_lr - (peak_lr - min_lr) * i / decay_steps``,
      linear, so the last step ``total_steps - 1`` is at min_lr.

    Runs with the same peak, warmup and a longer ``total_steps`` share every step before
    this one's decay: that is what lets a decay branch fork off a longer run.
    """

    peak_lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int
    decay_steps: int

    def __post_init__(self) -> None:
        if not 1 <= self.decay_steps <= self.total_steps:
            raise ConfigError(f"schedule: decay_steps must be in [1, {self.total_steps}], got {self.decay_steps}")
        if not 0 <= self.warmup_steps <= self.decay_start:
            raise ConfigError(f"schedule: warmup_steps must be in [0, {self.decay_start}] (the decay start), "
                              f"got {self.warmup_steps}")
        if not 0 <= self.min_lr <= self.peak_lr:
            raise ConfigError(f"schedule: need 0 <= min_lr <= peak_lr, got {self.min_lr} and {self.peak_lr}")

    @property
    def decay_start(self) -> int:
        """The first step of the decay (total_steps - decay_steps)."""
        return self.total_steps - self.decay_steps

    def __call__(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        if step < self.decay_start:
            return self.peak_lr
        done = min(step - self.decay_start + 1, self.decay_steps)
        return self.peak_lr - (self.peak_lr - self.min_lr) * done / self.decay_steps
