"""The study spec's executor section: where runs execute (local, Slurm, Ray) and with what resources."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .spec_base import Strict


class ResourceRule(Strict):
    """Resources of one run whose model has at most ``max_params`` non-embedding parameters."""

    max_params: float | None = Field(None, gt=0, description="largest model (non-embedding params) of this rule")
    gpus: int = Field(0, ge=0, description="GPUs per run (more than 1: launched with torchrun)")
    cpus: int = Field(4, ge=1, description="CPU cores per run (also its torch threads)")
    mem_gb: float = Field(16, gt=0, description="host memory per run")


def default_resources() -> list[ResourceRule]:
    return [
        ResourceRule(max_params=20e6, gpus=0, cpus=4, mem_gb=8),  # the cpu-* rungs: a CPU job is enough
        ResourceRule(max_params=1.2e9, gpus=1, cpus=8, mem_gb=64),
        ResourceRule(gpus=1, cpus=16, mem_gb=128),
    ]


class TimeRule(Strict):
    """Wall time asked per run: overhead + safety * train FLOPs / throughput, clamped."""

    gpu_tflops: float = Field(100.0, gt=0, description="sustained TFLOP/s of one GPU (utilisation included)")
    cpu_gflops: float = Field(10.0, gt=0, description="sustained GFLOP/s of one CPU core")
    safety: float = Field(2.0, ge=1)
    overhead_min: float = Field(10.0, ge=0, description="start-up, data loading and evaluation")
    min_min: int = Field(10, ge=1)
    max_min: int = Field(2880, ge=1)


class SlurmSettings(Strict):
    """Slurm through submitit: one job array per resource class, throttled."""

    cluster: Literal["slurm", "local"] = Field("slurm", description="'local' runs the jobs with submitit's "
                                               "LocalExecutor on this machine (same code path, for tests)")
    folder: str | None = Field(None, description="job scripts and logs; STUDY/slurm when omitted")
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = Field(32, ge=1, description="at most this many runs of an array at once")
    max_requeues: int = Field(3, ge=0, description="requeues after preemption or time-out")
    signal_delay_s: int = Field(120, ge=10, description="warning signal this long before the time limit")
    setup: list[str] = Field(default_factory=list, description="shell lines run before each job (module load ...)")
    sbatch: dict[str, str | int | bool] = Field(default_factory=dict, description="any other sbatch option")
    python: str | None = Field(None, description="python command on the nodes; this interpreter when omitted")


class RaySettings(Strict):
    """Ray: runs as tasks with resource requests."""

    address: str | None = Field(None, description="'auto', 'ray://HOST:10001' or an IP:port; a local "
                                "instance when omitted")
    namespace: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="environment variables of the tasks")


class ExecutorSettings(Strict):
    """Where and how the runs execute (none of this enters run ids)."""

    kind: Literal["local", "slurm", "ray"] = "local"
    workers: int | None = Field(None, ge=1, description="local: runs at once; one per GPU, else one per "
                                "core (capped by the runs to do) when omitted")
    heartbeat_s: float = Field(30.0, gt=0, description="how often a worker refreshes its claim of a run")
    stale_after_s: float = Field(600.0, gt=0, description="a claim from another host with no heartbeat for "
                                 "this long is taken over")
    resources: list[ResourceRule] = Field(default_factory=default_resources, min_length=1,
                                          description="slurm/ray: first rule whose max_params fits the model")
    time: TimeRule = Field(default_factory=TimeRule)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    ray: RaySettings = Field(default_factory=RaySettings)

    @model_validator(mode="after")
    def _heartbeat_below_timeout(self) -> "ExecutorSettings":
        if self.stale_after_s < 3 * self.heartbeat_s:
            raise ValueError(f"stale_after_s ({self.stale_after_s:g}) must be at least 3 x heartbeat_s "
                             f"({self.heartbeat_s:g})")
        return self
