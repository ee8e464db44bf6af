"""The executor interface: run ``execute_run`` on a list of run folders, report each outcome.

An executor gets ``RunTask``s (a run folder plus the resources its model size asks for)
and calls ``on_outcome(status)`` in the driver process as each run ends, with the run's
final ``status.json`` content (state done or failed) or a ``busy`` outcome (a live
worker elsewhere holds the run; the driver waits for it). A worker that dies without
recording anything (killed, out of memory, node lost) is turned into a failed status by
the executor, through ``run_folder.record_lost_worker``.
"""

from __future__ import annotations

import abc
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..spec_executor import ExecutorSettings

OutcomeFn = Callable[[dict[str, Any]], None]
TickFn = Callable[[], None]


@dataclass(frozen=True)
class Resources:
    """What one run asks a scheduler for."""

    gpus: int
    cpus: int
    mem_gb: float
    time_min: int


@dataclass(frozen=True)
class RunTask:
    """One run folder to execute, with the resources of its model size."""

    run_dir: Path
    resources: Resources

    @property
    def run_id(self) -> str:
        """The run's id (its folder name)."""
        return self.run_dir.name


class Executor(abc.ABC):
    """Runs ``execute_run`` on run folders; subclasses decide where the processes live."""

    kind: ClassVar[str]

    def __init__(self, *, heartbeat_s: float, stale_after_s: float):
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s

    @abc.abstractmethod
    def run(self, tasks: Sequence[RunTask], on_outcome: OutcomeFn, on_tick: TickFn | None = None) -> None:
        """Execute every task; call ``on_outcome(status)`` here as each ends, ``on_tick()`` now and then."""

    def describe(self) -> str:
        """One line for logs: the executor and its parallelism."""
        return self.kind

    def claim_settings(self) -> dict[str, float]:
        """The claim timing every worker of this executor uses."""
        return {"heartbeat_s": self.heartbeat_s, "stale_after_s": self.stale_after_s}


def resources_for(run_settings: dict[str, Any], tokens: int, settings: ExecutorSettings) -> Resources:
    """The resources of a run: the first rule that fits its model size, and a time from its FLOPs."""
    rule = resource_rule(run_settings, settings)
    t = settings.time
    flops = float(run_settings["train_flops_per_token"]) * tokens
    rate = flops_per_second(rule, settings)
    minutes = t.overhead_min + t.safety * flops / rate / 60
    return Resources(gpus=rule.gpus, cpus=rule.cpus, mem_gb=rule.mem_gb,
                     time_min=int(min(t.max_min, max(t.min_min, math.ceil(minutes)))))


def resource_rule(run_settings: dict[str, Any], settings: ExecutorSettings) -> Any:
    """The first resource rule whose max_params fits the run's model (else the last rule)."""
    params = run_settings["params_nonembedding"]
    rules = settings.resources
    return next((r for r in rules if r.max_params is None or params <= r.max_params), rules[-1])


def flops_per_second(rule: Any, settings: ExecutorSettings) -> float:
    """The sustained training FLOP/s a run with ``rule``'s resources is assumed to reach (executor.time)."""
    t = settings.time
    return rule.gpus * t.gpu_tflops * 1e12 if rule.gpus else rule.cpus * t.cpu_gflops * 1e9


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def signal_reason(exitcode: int | None) -> tuple[str, str]:
    """(reason, message) for a worker process that ended with ``exitcode`` before reporting."""
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the kernel's out-of-memory killer sends SIGKILL too)" if name == "SIGKILL" else ""
        return "killed", f"worker process killed by {name}{hint}"
    return "killed", f"worker process exited with code {exitcode} before reporting an outcome"
