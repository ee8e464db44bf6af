"""Plan a study: expand the spec's grid into runs, each with a stable run id.

A run is one (model size, recipe, token budget, seed). Its id is a hash of everything
that determines its numbers (data hashes, tokenizer, model shape, training rules), so a
rerun of the same study, or an identical run in another study, trains nothing twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .._io import stable_hash
from .spec import NATURAL, StudySpec


@dataclass(frozen=True)
class RecipePoint:
    """One mixture: synthetic kinds at total synthetic fraction ``ratio`` of training tokens."""

    kinds: tuple[str, ...]
    ratio: float

    @property
    def name(self) -> str:
        """``natural`` for r = 0, else ``KIND@R`` (R with 3 significant digits)."""
        if not self.kinds or self.ratio == 0:
            return NATURAL
        return f"{'+'.join(self.kinds)}@{self.ratio:.3g}"

    @property
    def kind(self) -> str:
        """``natural`` or the synthetic kinds joined by ``+``."""
        return NATURAL if not self.kinds or self.ratio == 0 else "+".join(self.kinds)

    def weights(self) -> dict[str, float]:
        """Token fraction of each source: natural 1 - r, the kinds sharing r equally."""
        if self.name == NATURAL:
            return {NATURAL: 1.0}
        out = {NATURAL: 1.0 - self.ratio} if self.ratio < 1 else {}
        for k in self.kinds:
            out[k] = self.ratio / len(self.kinds)
        return out


@dataclass
class PlannedRun:
    """A run of the grid with its resolved settings (what ``config.json`` holds)."""

    run_id: str
    recipe: str
    kind: str
    ratio: float
    weights: dict[str, float]
    model: str
    tokens: int
    seed: int
    generator: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def recipe_points(spec: StudySpec) -> list[RecipePoint]:
    """Every distinct mixture of the spec; all r = 0 points collapse into ``natural``."""
    points: dict[str, RecipePoint] = {}
    for recipe in spec.recipes:
        kinds = tuple(recipe.kinds)
        for r in recipe.ratios:
            p = RecipePoint(kinds, float(r)) if kinds and r > 0 else RecipePoint((), 0.0)
            points.setdefault(p.name, p)
    return list(points.values())


def plan_runs(spec: StudySpec, data_key: dict[str, Any], generators: dict[str, str],
              run_settings) -> list[PlannedRun]:
    """Expand the grid (models x recipes x budgets x seeds) into PlannedRuns.

    ``data_key`` identifies the prepared data (tokenizer and shard hashes) and enters
    every run id; ``generators`` maps synthetic kind -> generator name;
    ``run_settings(model, tokens, seed)`` returns the resolved model and training settings.
    """
    # wsd: one run per recipe trained to the largest budget; the smaller budgets are its
    # decay branches (run_settings puts them in the training settings)
    budgets = spec.budgets[-1:] if spec.training.schedule == "wsd" else spec.budgets
    runs = []
    for model in spec.models:
        for point in recipe_points(spec):
            for tokens in budgets:
                for seed in spec.seeds:
                    settings = run_settings(model, tokens, seed)
                    weights = point.weights()
                    identity = {
                        "weights": weights,
                        "data": {k: data_key["sources"][k] for k in weights},
                        "tokenizer": data_key["tokenizer"],
                        "eval": data_key["eval"],
                        "settings": settings,
                        "mixture_seed": spec.seed,
                    }
                    gens = sorted({generators.get(k, "") for k in point.kinds if point.name != NATURAL})
                    runs.append(PlannedRun(
                        run_id=f"{model}-{point.name.replace('@', '-').replace('+', '_')}-{tokens}-s{seed}-"
                               + stable_hash(identity, 8),
                        recipe=point.name, kind=point.kind, ratio=point.ratio if point.name != NATURAL else 0.0,
                        weights=weights, model=model, tokens=tokens, seed=seed,
                        generator="+".join(g for g in gens if g) or ("" if point.name == NATURAL else "unknown"),
                        settings=settings,
                    ))
    return runs


@dataclass
class PlanEstimate:
    """Tokens, FLOPs and time of a plan's runs, from the executor's assumed throughput (executor.time)."""

    runs: int
    to_run: int
    tokens: int  # tokens the runs still to run train (wsd: decay branches included)
    flops: float  # their training FLOPs
    compute_s: float  # sum of run times at the assumed throughput of each run's resources
    wall_s: float | None  # with the local executor on this machine: about this long
    parallel: int | None  # runs at once assumed for wall_s
    all_tokens: int = 0  # the same for every run of the plan, done or not
    all_flops: float = 0.0


def estimate_plan(runs: list[PlannedRun], spec: StudySpec, done: set[str] | None = None) -> PlanEstimate:
    """Estimate what running ``runs`` costs (runs in ``done`` are counted in ``all_*`` only).

    Times use ``executor.time`` (cpu_gflops per core, gpu_tflops per GPU: assumptions, not
    measurements) and the resource rule of each model; ``wall_s`` is given for the local
    executor: the FLOPs over this machine's cores (or GPUs) at the same rates.
    """
    from .executors.base import cpu_cores, flops_per_second, resource_rule

    done = done or set()
    est = PlanEstimate(runs=len(runs), to_run=0, tokens=0, flops=0.0, compute_s=0.0, wall_s=None, parallel=None)
    decay = spec.training.decay_frac if spec.training.schedule == "wsd" else 0.0
    gpu_runs = False
    for run in runs:
        train = run.settings["train"]
        tokens = int(run.tokens + sum(decay * b for b in train.get("budgets") or []))
        flops = float(run.settings["train_flops_per_token"]) * tokens
        est.all_tokens += tokens
        est.all_flops += flops
        if run.run_id in done:
            continue
        rule = resource_rule(run.settings, spec.executor)
        gpu_runs |= bool(rule.gpus)
        est.to_run += 1
        est.tokens += tokens
        est.flops += flops
        est.compute_s += flops / flops_per_second(rule, spec.executor)
    if spec.executor.kind == "local" and est.to_run:
        from .executors.local import visible_gpus

        gpus = len(visible_gpus()) if gpu_runs else 0
        if gpus:
            est.parallel = min(est.to_run, spec.executor.workers or gpus)
            est.wall_s = est.compute_s / est.parallel
        else:
            est.parallel = min(est.to_run, spec.executor.workers or cpu_cores())
            est.wall_s = est.flops / (cpu_cores() * spec.executor.time.cpu_gflops * 1e9)
    return est
