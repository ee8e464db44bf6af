"""Executors: where the runs of a study execute (local process pool, Slurm via submitit, Ray).

Every executor runs the same function, ``synthscale.study.execute.execute_run``, on the
same run folders; see base.py for the interface. Heavy dependencies (submitit, ray) are
imported only by the executor that needs them.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from ..spec_executor import ExecutorSettings
from .base import Executor, Resources, RunTask, resources_for

KINDS = ("local", "slurm", "ray")


def make_executor(settings: ExecutorSettings, study_dir: Path, study_name: str, *, kind: str | None = None,
                  workers: int | None = None, threads: int | None = None) -> Executor:
    """The executor the spec's ``executor`` section (or the ``kind``/``workers`` overrides) asks for."""
    kind = kind or settings.kind
    claim_timing = {"heartbeat_s": settings.heartbeat_s, "stale_after_s": settings.stale_after_s}
    if kind == "local":
        from .local import LocalExecutor

        return LocalExecutor(workers or settings.workers, threads, **claim_timing)
    if kind == "slurm":
        from .slurm import SlurmExecutor

        return SlurmExecutor(settings.slurm, study_dir / "slurm", f"synthscale-{study_name}", **claim_timing)
    if kind == "ray":
        from .ray import RayExecutor

        return RayExecutor(settings.ray, **claim_timing)
    raise ConfigError(f"--executor: unknown executor '{kind}' (choose from {', '.join(KINDS)})")


__all__ = ["KINDS", "Executor", "Resources", "RunTask", "make_executor", "resources_for"]
