"""The run's training curve: metrics.jsonl records, and the checks on the losses that go into them."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from synthscale._io import atomic_write_text
from synthscale.errors import RunError
from synthscale.train import distributed
from synthscale.train.distributed import DistContext


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
            atomic_write_text(self.path, "".join(json_line(r) for r in self.records))
        self._last_write = time.monotonic()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def json_line(record: dict[str, Any]) -> str:
    """One compact JSON line (with its newline) of a metrics record."""
    return json.dumps(record, separators=(",", ":")) + "\n"


def step_record(steps_done: int, tokens_per_step: int, losses: list[float], lr: float, grad_norm: torch.Tensor,
                seconds: float) -> dict[str, Any]:
    """The metrics record of a log step: mean loss over ``losses`` (the steps since the last record), rate."""
    return {
        "step": steps_done,
        "tokens": steps_done * tokens_per_step,
        "loss": sum(losses) / len(losses),
        "lr": lr,
        "grad_norm": finite_or_none(as_float(grad_norm)),
        "tokens_per_s": len(losses) * tokens_per_step / max(seconds, 1e-9),
    }


def mean_losses(window: list[torch.Tensor], ctx: DistContext) -> list[float]:
    """The window's per-step losses (device tensors) averaged over ranks, as floats (a host sync)."""
    if not window:
        return []
    return distributed.mean_over_ranks(torch.stack(window), ctx).tolist()


def raise_if_diverged(losses: list[float], first_step: int, run_dir: Path, where: str = "training") -> None:
    """RunError naming the first step (``first_step`` is that of ``losses[0]``) whose loss is NaN/inf."""
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            raise RunError(f"{run_dir}: {where} diverged, loss is {loss} at step {first_step + i}")


def as_float(t: torch.Tensor) -> float:
    """A 0-d tensor (or DTensor under FSDP) as a python float."""
    full = getattr(t, "full_tensor", None)  # a DTensor under FSDP
    return float(full() if full else t)


def finite_or_none(x: float) -> float | None:
    """``x``, or None when it is NaN or infinite (JSON has no NaN)."""
    return x if math.isfinite(x) else None
