"""Where the workers of a split generation run: local processes, Ray tasks or submitit (Slurm) jobs.

Every launcher starts one worker per part (``PartTask``) and reports the parts whose worker
ended; every worker runs ``worker.run_worker_task`` on its part's task file. This is small on
purpose and parallel to study/executors (which run training runs, not generation parts):
generate cannot import study, which imports generate.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..devices import visible_gpus
from ..errors import ConfigError, MissingDependencyError
from .parts import LOG_FILE, PartTask
from .worker import run_worker_task


class SubmititJob:
    """What a submitit job runs: ``run_worker_task``; requeued on preemption or time-out (the part resumes)."""

    def __call__(self, task_path: str) -> dict[str, Any]:
        return run_worker_task(task_path)

    def checkpoint(self, task_path: str) -> Any:
        """Called by submitit before Slurm stops the job: resubmit the same part."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(SubmititJob(), task_path)


class Launcher:
    """Starts one worker per task and reports each that ended: ``poll()`` -> {part: failure or None}."""

    def start(self, tasks: list[PartTask]) -> None:
        """Start a worker for every task."""
        raise NotImplementedError

    def poll(self) -> dict[int, str | None]:
        """The parts whose worker ended since the last call, with why it failed (None: it returned)."""
        raise NotImplementedError

    def stop(self) -> None:
        """End every worker still running and release the executor."""

    def logs_hint(self, out: Path) -> str:
        """Where the workers' output is, for error messages."""
        return "see the Ray worker logs"


def make_launcher(executor: str, out: Path, options: dict[str, Any], ray_address: str | None,
                   slurm: dict[str, Any] | None) -> Launcher:
    gpus = gpus_per_worker(options)
    if executor == "local":
        return LocalLauncher(gpus)
    if executor == "ray":
        return RayLauncher(ray_address, gpus)
    return SlurmLauncher(out / "slurm", gpus, slurm or {})


def gpus_per_worker(options: dict[str, Any]) -> int:
    """GPUs one worker's engine needs: vLLM's tensor-parallel size, 1 for transformers off the CPU, else 0."""
    backend = options.get("backend")
    if backend == "vllm":
        return int(options.get("tensor_parallel_size") or 1)
    if backend == "transformers" and str(options.get("device") or "auto") != "cpu":
        return 1
    return 0


class LocalLauncher(Launcher):
    """K processes on this machine; each gets its own GPUs (CUDA_VISIBLE_DEVICES) when there are GPUs."""

    def __init__(self, gpus_per_worker: int):
        self.gpus_per_worker = gpus_per_worker
        self.procs: dict[int, subprocess.Popen] = {}
        self.logs: dict[int, Path] = {}

    def start(self, tasks: list[PartTask]) -> None:
        """Start ``python -m synthscale.generate.worker TASK`` per task, output to the part's worker.log."""
        visible = visible_gpus() if self.gpus_per_worker else []
        if visible and len(tasks) * self.gpus_per_worker > len(visible):
            raise ConfigError(f"--workers {len(tasks)} with {self.gpus_per_worker} GPU(s) each needs "
                              f"{len(tasks) * self.gpus_per_worker} GPUs; {len(visible)} are visible")
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // len(tasks)))
        src = str(Path(__file__).resolve().parents[2])  # where the synthscale package lives
        for i, task in enumerate(tasks):
            env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                   "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
            if visible:
                g = self.gpus_per_worker
                env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[i * g:(i + 1) * g])
            log = task.dir / LOG_FILE
            with open(log, "ab") as f:
                self.procs[task.part] = subprocess.Popen(
                    [sys.executable, "-m", "synthscale.generate.worker", str(task.path)], env=env,
                    stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
            self.logs[task.part] = log

    def poll(self) -> dict[int, str | None]:
        """Parts whose process exited, with the signal or exit code and the log's last line."""
        ended: dict[int, str | None] = {}
        for part, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[part]
            ended[part] = None if code == 0 else _exit_reason(code, self.logs[part])
        return ended

    def logs_hint(self, out: Path) -> str:
        """The parts' worker.log files."""
        return f"logs: {out}/parts/part-*/{LOG_FILE}"

    def stop(self) -> None:
        """Terminate the processes still running (SIGTERM, then SIGKILL after 10 s)."""
        for proc in self.procs.values():
            proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def _die_with_parent() -> None:
    """In a local worker (Linux): be killed when the launching process dies, rather than run on orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _exit_reason(code: int, log: Path) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker killed by {name}"
    try:
        lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    last = lines[-1].strip().removeprefix("error: ")[:300] if lines else ""
    return f"worker exited with code {code}" + (f": {last}" if last else "")


class RayLauncher(Launcher):
    """K Ray tasks (``max_retries=0``: a lost worker is reported, and a rerun resumes its part)."""

    def __init__(self, address: str | None, gpus_per_worker: int, num_cpus: int | None = None):
        self.address, self.gpus_per_worker, self.num_cpus = address, gpus_per_worker, num_cpus
        self.ray: Any = None
        self.refs: dict[Any, int] = {}

    def start(self, tasks: list[PartTask]) -> None:
        """Connect (or start a local instance sized to the tasks) and submit one task per part."""
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", "ray") from None
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "warning"}
        gpus = self.gpus_per_worker
        if self.address is None:  # a fresh local instance, even if another Ray runs on this machine
            cpus = self.num_cpus or max(1, min(len(tasks), os.cpu_count() or 1))
            kwargs.update(include_dashboard=False, num_cpus=cpus)
            gpus = min(gpus, len(visible_gpus())) if gpus else 0
        try:
            ray.init(address=self.address or "local", **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(f"--executor ray: cannot start or reach {self.address or 'a local instance'}: "
                              f"{reason}") from None
        self.ray = ray
        remote = ray.remote(run_worker_task)
        for task in tasks:
            ref = remote.options(num_cpus=1, num_gpus=gpus, max_retries=0,
                                 name=f"synthscale-generate:part-{task.part}").remote(str(task.path))
            self.refs[ref] = task.part

    def poll(self) -> dict[int, str | None]:
        """Parts whose Ray task ended, with the Ray error if it failed."""
        ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        ended: dict[int, str | None] = {}
        for ref in ready:
            part = self.refs.pop(ref)
            try:
                self.ray.get(ref)
                ended[part] = None
            except Exception as e:  # a RayError: the task raised, its worker died, or its node was lost
                ended[part] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}"
        return ended

    def stop(self) -> None:
        """Cancel what still runs and disconnect (a local instance is shut down)."""
        if self.ray is None:
            return
        for ref in self.refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished or gone: shutting down below ends it anyway
                pass
        self.refs.clear()
        self.ray.shutdown()
        self.ray = None


class SlurmLauncher(Launcher):
    """K submitit jobs (a job array on Slurm; ``cluster: local`` runs them with submitit's local executor)."""

    GENERIC = ("timeout_min", "mem_gb", "cpus_per_task", "gpus_per_node", "nodes", "tasks_per_node", "name")

    def __init__(self, folder: Path, gpus_per_worker: int, params: dict[str, Any]):
        self.folder, self.gpus_per_worker = folder, gpus_per_worker
        self.params = dict(params)
        self.jobs: dict[int, Any] = {}

    def start(self, tasks: list[PartTask]) -> None:
        """Submit one job per part (an array on Slurm)."""
        try:
            import submitit
        except ImportError:
            raise MissingDependencyError("submitit", "slurm") from None
        params = dict(self.params)
        cluster = params.pop("cluster", "slurm")
        params.setdefault("name", "synthscale-generate")
        params.setdefault("timeout_min", 24 * 60)
        if self.gpus_per_worker:
            params.setdefault("gpus_per_node", self.gpus_per_worker)
        try:
            executor = submitit.AutoExecutor(folder=self.folder, cluster=cluster)
            executor.update_parameters(**params)
        except (RuntimeError, ValueError, AssertionError, NameError) as e:
            raise ConfigError(f"--executor slurm: {str(e).splitlines()[0]}") from None
        paths = [str(t.path) for t in tasks]
        jobs = executor.map_array(SubmititJob(), paths) if cluster == "slurm" else \
            [executor.submit(SubmititJob(), p) for p in paths]
        self.jobs = {t.part: job for t, job in zip(tasks, jobs)}

    def poll(self) -> dict[int, str | None]:
        """Parts whose job ended, with submitit's error if it failed."""
        ended: dict[int, str | None] = {}
        for part, job in list(self.jobs.items()):
            if not job.done():
                continue
            del self.jobs[part]
            try:
                job.result()
                ended[part] = None
            except Exception as e:  # the job raised, was killed, or ended without a result
                lines = [line for line in str(e).splitlines() if line.strip()]
                ended[part] = f"submitit job {job.job_id}: {lines[-1].strip()[:300] if lines else type(e).__name__}"
        return ended

    def logs_hint(self, out: Path) -> str:
        """submitit's job logs."""
        return f"logs: {self.folder}/*_log.err"

    def stop(self) -> None:
        """Cancel the jobs still queued or running."""
        for job in self.jobs.values():
            try:
                job.cancel(check=False)
            except Exception:  # already ended
                pass
        deadline = time.monotonic() + 10
        while any(not job.done() for job in self.jobs.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.jobs.clear()
