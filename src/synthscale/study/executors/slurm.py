"""The Slurm executor: submitit job arrays, one per resource class, throttled.

Runs are grouped by the resources their model size asks for (GPUs, CPUs, memory, time;
see ``executor.resources`` and ``executor.time`` in the spec) and each group is submitted
as one job array with ``slurm_array_parallelism`` as its concurrency throttle. Every
array task calls ``RunJob(run_dir)``, which is ``execute_run``; a run that needs several
GPUs is launched with torchrun inside its job.

Preemption and time-outs: Slurm sends a warning signal ``signal_delay_s`` before the
kill; submitit calls ``RunJob.checkpoint``, which requeues the same run (at most
``max_requeues`` times). The trainer has no mid-run resume, so a requeued run starts
again from step 0; its claim passes to the new job (same Slurm job id).

``cluster: local`` runs the same jobs with submitit's LocalExecutor on this machine (the
code path Slurm uses: pickled submission, job environment, signal handling, requeue);
the throttle is then applied by the driver, since local jobs start at once.

The driver watches the result files of the jobs and ``squeue``; a job that leaves the
queue without a result (cancelled, out of memory, node failure) has its run marked
failed with the Slurm state when accounting (sacct) knows it, and the job's log tail.
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError, MissingDependencyError
from ..execute import execute_run
from ..run_folder import record_lost_worker
from ..spec_executor import SlurmSettings
from .base import Executor, OutcomeFn, Resources, RunTask, TickFn

POLL_S = 2.0
QUEUE_CHECK_S = 10.0
SLURM_REASONS = {"OUT_OF_MEMORY": "out_of_memory", "TIMEOUT": "timeout", "NODE_FAIL": "node_fail",
                 "CANCELLED": "cancelled", "PREEMPTED": "preempted", "BOOT_FAIL": "node_fail"}


class RunJob:
    """What one Slurm job runs: ``execute_run`` on one run folder; requeued on preemption/time-out."""

    def __init__(self, threads: int, nproc: int, heartbeat_s: float, stale_after_s: float):
        self.threads, self.nproc = threads, nproc
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s

    def __call__(self, run_dir: str) -> dict[str, Any]:
        return execute_run(run_dir, threads=self.threads, nproc=self.nproc,
                           heartbeat_s=self.heartbeat_s, stale_after_s=self.stale_after_s)

    def checkpoint(self, run_dir: str) -> Any:
        """Called by submitit on the warning signal: resubmit the same run (it restarts from scratch)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(RunJob(self.threads, self.nproc, self.heartbeat_s, self.stale_after_s), run_dir)


class SlurmExecutor(Executor):
    """Submits the runs as submitit job arrays (Slurm, or submitit's local executor)."""

    kind = "slurm"

    def __init__(self, settings: SlurmSettings, folder: str | Path, job_name: str, *, heartbeat_s: float,
                 stale_after_s: float):
        super().__init__(heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)
        self.settings = settings
        self.folder = Path(settings.folder or folder)
        self.job_name = job_name

    def describe(self) -> str:
        """One line: cluster, partition, throttle."""
        s = self.settings
        where = f"partition {s.partition}" if s.partition else "default partition"
        return f"slurm ({s.cluster}, {where}, at most {s.array_parallelism} runs of an array at once)"

    def run(self, tasks: Sequence[RunTask], on_outcome: OutcomeFn, on_tick: TickFn | None = None) -> None:
        """Submit the tasks and wait until each job has ended; see the module docstring."""
        submitit = _import_submitit()
        groups: dict[Resources, list[RunTask]] = defaultdict(list)
        for task in tasks:
            groups[task.resources].append(task)
        executors = {res: self._executor(submitit, res, len(group)) for res, group in groups.items()}
        active: dict[Any, RunTask] = {}
        waiting: deque[RunTask] = deque()
        if self.settings.cluster == "slurm":
            for res, group in groups.items():
                jobs = executors[res].map_array(self._job(res), [str(t.run_dir) for t in group])
                active.update(zip(jobs, group, strict=True))
        else:
            waiting.extend(tasks)
        queue = _SlurmQueue(self.settings.cluster == "slurm")
        while active or waiting:
            while waiting and len(active) < self.settings.array_parallelism:
                task = waiting.popleft()
                active[executors[task.resources].submit(self._job(task.resources), str(task.run_dir))] = task
            for job, task in list(active.items()):
                outcome = self._outcome_if_ended(job, task, queue)
                if outcome is not None:
                    del active[job]
                    on_outcome(outcome)
            if on_tick:
                on_tick()
            time.sleep(POLL_S if active else 0)

    def _job(self, res: Resources) -> RunJob:
        return RunJob(threads=res.cpus, nproc=max(1, res.gpus), heartbeat_s=self.heartbeat_s,
                      stale_after_s=self.stale_after_s)

    def _executor(self, submitit: Any, res: Resources, n_runs: int) -> Any:
        s = self.settings
        try:
            executor = submitit.AutoExecutor(folder=self.folder, cluster=s.cluster,
                                             slurm_max_num_timeout=s.max_requeues,
                                             **({"slurm_python": s.python} if s.python else {}))
        except RuntimeError as e:  # no srun/sbatch on this machine
            raise ConfigError(f"executor.slurm: {str(e).splitlines()[0]} (set executor.slurm.cluster: local "
                              "to run the jobs on this machine)") from None
        params: dict[str, Any] = {
            "name": self.job_name, "timeout_min": res.time_min, "mem_gb": res.mem_gb,
            "cpus_per_task": res.cpus, "nodes": 1, "tasks_per_node": 1,
            "gpus_per_node": res.gpus or None,
            "slurm_partition": s.partition, "slurm_account": s.account, "slurm_qos": s.qos,
            "slurm_constraint": s.constraint, "slurm_signal_delay_s": s.signal_delay_s,
            "slurm_array_parallelism": min(s.array_parallelism, n_runs),
            "slurm_setup": list(s.setup) or None,
            "slurm_additional_parameters": dict(s.sbatch) or None,
            "local_setup": list(s.setup) or None,
        }
        try:
            executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        except (ValueError, NameError) as e:
            raise ConfigError(f"executor.slurm: {str(e).splitlines()[0]}") from None
        return executor

    def _outcome_if_ended(self, job: Any, task: RunTask, queue: _SlurmQueue) -> dict[str, Any] | None:
        """The run's outcome once its job has ended, else None."""
        if job.paths.result_pickle.exists():
            try:
                return {**job.result(), "run_id": task.run_id}
            except Exception as e:  # the job raised outside execute_run (import error, bad node)
                return self._lost(task, job, "error", str(e).strip().splitlines()[-1][:500])
        if self.settings.cluster == "local":
            if job.done():
                reason, message = "killed", f"submitit local job ended without a result ({job.state})"
                return self._lost(task, job, reason, message)
            return None
        if queue.holds(job.job_id):
            return None
        state = _accounting_state(job.job_id)
        reason = SLURM_REASONS.get(state.split()[0], "lost") if state else "lost"
        return self._lost(task, job, reason, f"Slurm job {job.job_id} ended without a result "
                                              f"(state: {state or 'unknown; sacct unavailable'})")

    def _lost(self, task: RunTask, job: Any, reason: str, message: str) -> dict[str, Any]:
        logs = "\n".join(x for x in (_safe(job.stdout), _safe(job.stderr)) if x)
        status = record_lost_worker(task.run_dir, reason, message, extra_log=logs,
                                    stale_after_s=self.stale_after_s)
        return {**status, "run_id": task.run_id}


class _SlurmQueue:
    """Which jobs ``squeue`` still lists (pending, running, requeued), refreshed every few seconds."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._ids: set[str] = set()
        self._checked = -float("inf")

    def holds(self, job_id: str) -> bool:
        """True while Slurm still has the job (or squeue cannot be asked)."""
        if not self.enabled:
            return True
        if time.monotonic() - self._checked > QUEUE_CHECK_S:
            try:
                out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True,
                                     timeout=60, check=True).stdout
            except (OSError, subprocess.SubprocessError):
                return True  # cannot tell: keep waiting
            self._ids = {line.strip() for line in out.splitlines() if line.strip()}
            self._checked = time.monotonic()
        return job_id in self._ids


def _accounting_state(job_id: str) -> str | None:
    """The job's final state from sacct (None when accounting is off or does not know it)."""
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    states = [line.strip() for line in out.splitlines() if line.strip()]
    return states[-1] if states else None


def _safe(read: Any) -> str | None:
    try:
        return read()
    except OSError:
        return None


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise MissingDependencyError("submitit", "slurm") from None
    return submitit
