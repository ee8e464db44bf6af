"""The local executor: a pool of worker processes on this machine, several runs at once.

Workers are started with the ``spawn`` method (a fresh interpreter each, no state
inherited from the driver) and live for the whole study, each running one run at a
time. Each gets ``cores // workers`` torch threads, or one GPU (``CUDA_VISIBLE_DEVICES``
set per worker) when GPUs are visible. Driver and workers talk over a pipe in JSON.

A worker that dies mid-run (SIGKILL, the OOM killer, a segfault) is noticed through its
process sentinel: its run is marked failed with the signal and the run's log tail, a
fresh worker replaces it, and the other runs go on. If the driver itself is killed,
each worker finishes the run it holds, finds the pipe closed, and exits.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from ...devices import visible_gpus
from ..execute import execute_run
from ..run_folder import record_lost_worker
from .base import Executor, OutcomeFn, RunTask, TickFn, cpu_cores, signal_reason

POLL_S = 0.5


class LocalExecutor(Executor):
    """Runs the tasks in ``workers`` spawned processes on this machine."""

    kind = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None, *, heartbeat_s: float,
                 stale_after_s: float, gpus: list[str] | None = None):
        super().__init__(heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)
        self.gpus = visible_gpus() if gpus is None else gpus
        self.workers = workers or (len(self.gpus) if self.gpus else cpu_cores())
        self.threads = threads

    def describe(self) -> str:
        """One line: workers, threads and GPUs."""
        where = f"GPUs {','.join(self.gpus)}" if self.gpus else f"{self.threads_per_run} threads each"
        return f"local: {self.workers} workers ({where})"

    @property
    def threads_per_run(self) -> int:
        """Torch threads of each worker: the given count, else the cores shared out over the pool."""
        return self.threads or max(1, cpu_cores() // self.workers)

    def run(self, tasks: Sequence[RunTask], on_outcome: OutcomeFn, on_tick: TickFn | None = None) -> None:
        """Run every task in the pool; see the module docstring."""
        if not tasks:
            return
        slots = [_Slot(i, self.gpus[i % len(self.gpus)] if self.gpus else None, self.threads_per_run,
                       self.claim_settings()) for i in range(min(self.workers, len(tasks)))]
        queue = deque(tasks)
        try:
            while queue or any(s.task for s in slots):
                for slot in slots:
                    if slot.task is None and queue:
                        slot.start(queue.popleft())
                busy = [s for s in slots if s.task is not None]
                wait([w for s in busy for w in (s.conn, s.process.sentinel)], timeout=POLL_S)
                for slot in busy:
                    outcome = slot.collect(self.stale_after_s)
                    if outcome is not None:
                        on_outcome(outcome)
                if on_tick:
                    on_tick()
        finally:
            for slot in slots:
                slot.stop()


class _Slot:
    """One worker process and the task it is running (if any)."""

    def __init__(self, index: int, gpu: str | None, threads: int, claim_settings: dict[str, float]):
        self.index, self.gpu, self.threads, self.claim_settings = index, gpu, threads, claim_settings
        self.process: Any = None
        self.conn: Connection | None = None
        self.task: RunTask | None = None

    def start(self, task: RunTask) -> None:
        """Give ``task`` to this slot's worker, starting a worker first if there is none."""
        message = json.dumps({"run_dir": str(task.run_dir)}).encode()
        if self.process is None or not self.process.is_alive():
            self._spawn()
        try:
            self.conn.send_bytes(message)
        except OSError:  # the idle worker died since we looked: start a fresh one
            self.stop()
            self._spawn()
            self.conn.send_bytes(message)
        self.task = task

    def collect(self, stale_after_s: float) -> dict[str, Any] | None:
        """The task's outcome if it ended (reported, or the worker died), else None."""
        try:
            if self.conn.poll():
                outcome = json.loads(self.conn.recv_bytes())
                self.task = None
                return outcome
        except (EOFError, OSError):
            pass  # the worker died while reporting
        if self.process.is_alive():
            return None
        self.process.join()
        reason, message = signal_reason(self.process.exitcode)
        run_dir, self.task, self.process = self.task.run_dir, None, None
        status = record_lost_worker(run_dir, reason, message, stale_after_s=stale_after_s)
        return {**status, "run_id": run_dir.name}

    def stop(self) -> None:
        """Close the pipe (the worker exits after its current run) and reap the process."""
        if self.process is None:
            return
        self.conn.close()
        self.process.join(timeout=5 if self.task is None else 0.1)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        self.process = None

    def _spawn(self) -> None:
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, env, self.threads, self.claim_settings),
                                   name=f"synthscale-worker-{self.index}", daemon=False)
        self.process.start()
        child.close()
        self.conn = parent


def _worker_main(conn: Connection, env: dict[str, str], threads: int, claim_settings: dict[str, float]) -> None:
    """A worker: run each run folder received on ``conn`` until the pipe closes."""
    os.environ.update(env)  # before torch is imported (thread pools, CUDA devices)
    while True:
        try:
            message = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        status = execute_run(message["run_dir"], threads=threads, **claim_settings)
        try:
            conn.send_bytes(json.dumps(status, default=str).encode())
        except (BrokenPipeError, OSError):
            return
