"""The Ray executor: each run is a Ray task asking for the resources of its model size.

``executor.ray.address`` picks the cluster: ``auto`` (the cluster this machine belongs
to), ``ray://HOST:10001`` (Ray Client) or ``IP:PORT``; when omitted, a local Ray
instance is started for the study and stopped after it (its requests are capped at
this machine's cores and GPUs). Run folders must be on a file system every node sees,
and synthscale must be importable on every node (same environment, or ``ray.env``).

A task is never retried by Ray (``max_retries=0``): a worker that crashes, is killed by
Ray's memory monitor or loses its node has its run marked failed here, and
``--retry-failed`` decides about retries, as with every executor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ...devices import visible_gpus
from ...errors import ConfigError, MissingDependencyError
from ..execute import execute_run
from ..run_folder import record_lost_worker
from ..spec_executor import RaySettings
from .base import Executor, OutcomeFn, Resources, RunTask, TickFn, cpu_cores

POLL_S = 0.5


def ray_run(run_dir: str, threads: int, nproc: int, heartbeat_s: float, stale_after_s: float) -> dict[str, Any]:
    """The body of every Ray task: ``execute_run`` on one run folder."""
    return execute_run(run_dir, threads=threads, nproc=nproc, heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)


class RayExecutor(Executor):
    """Runs the tasks as Ray tasks on an existing cluster or a local instance."""

    kind = "ray"

    def __init__(self, settings: RaySettings, *, heartbeat_s: float, stale_after_s: float):
        super().__init__(heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)
        self.settings = settings

    def describe(self) -> str:
        """One line: which cluster."""
        return f"ray ({self.settings.address or 'local instance'})"

    def run(self, tasks: Sequence[RunTask], on_outcome: OutcomeFn, on_tick: TickFn | None = None) -> None:
        """Submit one Ray task per run and report each as it ends."""
        if not tasks:
            return
        ray = _import_ray()
        local = self.settings.address is None
        self._connect(ray, local)
        try:
            remote = ray.remote(ray_run)
            refs = {}
            for task in tasks:
                res = self._request(task.resources, local)
                options = {"num_cpus": res.cpus, "num_gpus": res.gpus, "max_retries": 0,
                           "name": f"synthscale:{task.run_id}"}
                if not local:
                    options["memory"] = int(res.mem_gb * 2**30)
                ref = remote.options(**options).remote(str(task.run_dir), res.cpus, max(1, res.gpus),
                                                       self.heartbeat_s, self.stale_after_s)
                refs[ref] = task
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    task = refs.pop(ref)
                    on_outcome(self._outcome(ray, ref, task))
                if on_tick:
                    on_tick()
        finally:
            ray.shutdown()

    def _connect(self, ray: Any, local: bool) -> None:
        kwargs: dict[str, Any] = {"namespace": self.settings.namespace, "log_to_driver": False,
                                  "logging_level": "warning", "include_dashboard": False}
        if self.settings.env:
            kwargs["runtime_env"] = {"env_vars": dict(self.settings.env)}
        if local:
            kwargs["num_cpus"] = cpu_cores()
        try:  # "local" always starts a fresh instance, even if another Ray runs on this machine
            ray.init(address=self.settings.address or "local", **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = self.settings.address or "a local instance"
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(f"executor.ray.address: cannot start or reach {where}: {reason}") from None

    def _request(self, res: Resources, local: bool) -> Resources:
        """The resources to ask for; a local instance caps them at this machine's size."""
        if not local:
            return res
        return Resources(gpus=min(res.gpus, len(visible_gpus())), cpus=min(res.cpus, cpu_cores()),
                         mem_gb=res.mem_gb, time_min=res.time_min)

    def _outcome(self, ray: Any, ref: Any, task: RunTask) -> dict[str, Any]:
        try:
            return {**ray.get(ref), "run_id": task.run_id}
        except ray.exceptions.RayError as e:
            reason = _reason(ray, e)
            message = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:400]}"
            status = record_lost_worker(task.run_dir, reason, message, stale_after_s=self.stale_after_s)
            return {**status, "run_id": task.run_id}


def _reason(ray: Any, error: Exception) -> str:
    exc = ray.exceptions
    if isinstance(error, getattr(exc, "OutOfMemoryError", ())):
        return "out_of_memory"
    if isinstance(error, getattr(exc, "NodeDiedError", ())) or isinstance(error, getattr(exc, "ObjectLostError", ())):
        return "node_fail"
    if isinstance(error, getattr(exc, "TaskCancelledError", ())):
        return "cancelled"
    if isinstance(error, getattr(exc, "WorkerCrashedError", ())):
        return "killed"
    return "error"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    return ray
