"""Fit a law to points: the robust grid fit, bootstrap intervals, leave-largest-out check."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synthscale.errors import ConfigError
from synthscale.laws._json import json_ready
from synthscale.laws.data import (FitError, LawData, check_identifiable, distinct_resamples, identifiable_rows,
                                  resample_weights)
from synthscale.laws.forms import Form, get_form
from synthscale.laws.objective import LOSSES, REDUCTIONS, LogLossObjective, ProblemSet
from synthscale.laws.optimize import minimize_problems, polish
from synthscale.laws.verdict import Verdict, exponent_lower_bounds, judge_fit

CI_LEVEL = 0.95
E_FLOOR = 1e-6  # E is kept >= E_FLOOR * min(loss): a fit heading for E -> 0 stops there
BOOT_MAX_ITER = 300  # iteration cap of bootstrap refits (the fits themselves: 600, then L-BFGS-B)
BOOT_KEEP_BEST_AFTER = 50
MIN_VALID_REPLICATES = 20  # fewer usable bootstrap refits than this: no interval
# fewer distinct resamples of the runs than this (2 or 3 runs per condition): an interval is only the spread of
# the few refits they allow (for 2 seeds: each seed alone and both), not a 95% interval; it is kept and marked
MIN_DISTINCT_RESAMPLES = 20


@dataclass(frozen=True)
class FitOptions:
    """How a law is fitted. Defaults follow Hoffmann et al. (2022) / Besiroglu et al. (2024)."""

    loss: str = "huber"  # "huber" on log residuals, or "lsq" (plain least squares on log residuals)
    delta: float = 1e-3
    reduction: str = "sum"  # "sum" over points (published), or "mean"
    tie_exponents: bool = False  # chinchilla form: alpha = beta
    prune: bool = True  # prune the start grid after a few iterations (see optimize.py)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"fit option loss={self.loss!r}: expected one of {', '.join(LOSSES)}")
        if self.reduction not in REDUCTIONS:
            raise ConfigError(f"fit option reduction={self.reduction!r}: expected one of {', '.join(REDUCTIONS)}")
        if not self.delta > 0:
            raise ConfigError(f"fit option delta={self.delta!r}: expected a positive number")


@dataclass(frozen=True)
class LawFit:
    """A fitted law: the best parameters, how the fit went, and bootstrap replicates."""

    form: Form
    theta: np.ndarray
    objective: float
    converged: bool
    message: str
    n_points: int
    n_starts: int
    best_start: np.ndarray
    candidates: np.ndarray
    options: FitOptions
    ranges: dict[str, tuple[float, float]]
    columns: dict[str, str]
    boot_thetas: np.ndarray | None = None  # [B, P]; NaN rows: replicate not identifiable
    holdout: dict | None = None
    verdict: Verdict | None = None  # whether the data support the law (laws/verdict.py)
    # how many different resamples of the runs exist (distinct_resamples); 1: every resample is the data itself
    boot_distinct: int | None = None

    @property
    def boot_degenerate(self) -> bool:
        """Every resample of the runs is the data itself (one run in each stratum, e.g. one seed): no interval."""
        return self.boot_distinct == 1

    @property
    def coarse_intervals(self) -> bool:
        """The intervals exist but come from fewer than MIN_DISTINCT_RESAMPLES distinct resamples."""
        return self.boot_distinct is not None and self.boot_distinct < MIN_DISTINCT_RESAMPLES \
            and self.valid_boot_thetas() is not None

    @property
    def params(self) -> dict[str, float]:
        """Natural-scale parameters (E, A, B, alpha, beta, ...)."""
        return dict(zip(self.form.natural_names(), map(float, self.form.natural(self.theta))))

    @property
    def n_boot_valid(self) -> int:
        """Bootstrap replicates that could be refitted."""
        return 0 if self.boot_thetas is None else int(np.isfinite(self.boot_thetas).all(axis=1).sum())

    def valid_boot_thetas(self) -> np.ndarray | None:
        """The usable bootstrap replicates [B', P], or None when too few, or all the same, for an interval."""
        if self.boot_thetas is None or self.n_boot_valid < MIN_VALID_REPLICATES or self.boot_degenerate:
            return None
        return self.boot_thetas[np.isfinite(self.boot_thetas).all(axis=1)]

    def intervals(self, level: float = CI_LEVEL) -> dict[str, tuple[float, float]] | None:
        """Percentile bootstrap intervals of every natural parameter, or None."""
        boot = self.valid_boot_thetas()
        if boot is None:
            return None
        nat = self.form.natural(boot)
        method = "linear" if np.isfinite(nat).all() else "nearest"  # inf (overflowed B) kept by rank
        lo, hi = np.quantile(nat, [(1 - level) / 2, (1 + level) / 2], axis=0, method=method)
        return {name: (float(a), float(b)) for name, a, b in zip(self.form.natural_names(), lo, hi)}

    def predict(self, **variables: float | np.ndarray) -> np.ndarray:
        """Predicted loss at the given variables (params=, tokens=, ratio=)."""
        n = max(np.size(v) for v in variables.values())
        x = {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)) for k, v in variables.items()}
        return self.form.predict(self.theta, x)

    def to_dict(self) -> dict:
        """JSON-ready summary: form, objective, convergence, params with intervals."""
        ci = self.intervals()
        return json_ready(
            {
                "form": self.form.name,
                **(self.verdict.to_dict() if self.verdict else {}),
                "variables": list(self.form.variables),
                "columns": dict(self.columns),
                "n_points": self.n_points,
                "objective": self.objective,
                "converged": self.converged,
                "message": self.message,
                "method": {
                    "loss": self.options.loss,
                    "delta": self.options.delta if self.options.loss == "huber" else None,
                    "reduction": self.options.reduction,
                    "residual": "log(L_pred) - log(L)",
                    "optimizer": "L-BFGS-B",
                    "n_starts": self.n_starts,
                    "best_start": dict(zip(self.form.theta_names, map(float, self.best_start))),
                    "tied_exponents": self.form.tied,
                },
                "ranges": {k: list(v) for k, v in self.ranges.items()},
                "params": {
                    name: {"value": value, "ci": list(ci[name]) if ci else None} for name, value in self.params.items()
                },
                "bootstrap": None
                if self.boot_thetas is None
                else {
                    "n": int(len(self.boot_thetas)),
                    "n_valid": self.n_boot_valid,
                    "n_distinct": self.boot_distinct,
                    "level": CI_LEVEL,
                    "method": "percentile",
                },
                "holdout": self.holdout,
            }
        )


def fit_law(
    data: LawData,
    form: str | Form = "data",
    *,
    options: FitOptions | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    holdout: str | None = None,
    starts: np.ndarray | None = None,
) -> LawFit:
    """Fit ``form`` to ``data`` from the default start grid (or ``starts``).

    ``bootstrap`` > 0 refits that many resamples of the runs (with replacement, within
    strata) for percentile intervals; ``holdout="largest"`` refits without the points at
    the largest value of the form's main axis and reports how well it predicts them.
    Raises FitError when the law cannot be fitted.
    """
    (result,) = fit_laws(
        [data], form, options=options, bootstrap=bootstrap, seeds=[seed], holdout=holdout, starts=starts
    )
    if isinstance(result, FitError):
        raise result
    return result


def fit_laws(
    datasets: Sequence[LawData],
    form: str | Form = "data",
    *,
    options: FitOptions | None = None,
    bootstrap: int = 0,
    seeds: Sequence[int] | None = None,
    holdout: str | None = None,
    starts: np.ndarray | None = None,
) -> list[LawFit | FitError]:
    """Fit the same form to several datasets at once (one result, or FitError, per dataset).

    The datasets are solved as one batch (see optimize.py), which is much faster than
    fitting them one by one. ``seeds`` gives each dataset's bootstrap seed (default 0, 1, ...).
    """
    options = options or FitOptions()
    form = form if isinstance(form, Form) else get_form(form, tie_exponents=options.tie_exponents)
    if bootstrap < 0:
        raise ConfigError(f"bootstrap={bootstrap}: expected a non-negative number of replicates")
    if holdout not in (None, "largest"):
        raise ConfigError(f"holdout={holdout!r}: expected 'largest' or nothing")
    seeds = list(range(len(datasets))) if seeds is None else list(seeds)
    grid = form.start_grid() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    results: list[LawFit | FitError | None] = [None] * len(datasets)
    fittable = []
    for i, data in enumerate(datasets):
        try:
            check_identifiable(data, form)
            fittable.append(i)
        except FitError as err:
            results[i] = err
    if not fittable:
        return results
    fitted = [datasets[i] for i in fittable]
    objectives = [_objective(d, form, options) for d in fitted]
    stacked = LogLossObjective.stacked(objectives)
    lower = np.array([lower_bounds(d, form) for d in fitted])
    # The fits and their leave-largest-out refits run as one batch (the fits come first).
    reports, held_which, held_weights = _holdout_problems(fitted, form) if holdout else ([None] * len(fitted), [], [])
    which = list(range(len(fitted))) + held_which
    problems = ProblemSet(stacked, which, [np.ones(d.n_points) for d in fitted] + held_weights)
    sol = minimize_problems(problems, grid, lower=lower[which], prune=options.prune)
    for j, train, theta in zip(held_which, held_weights, sol.theta[len(fitted) :]):
        reports[j].update(_holdout_errors(fitted[j].select(train == 0), form, theta))
    boots = (
        _bootstrap(fitted, stacked, form, sol, lower, bootstrap, [seeds[i] for i in fittable]) if bootstrap else None
    )
    for j, i in enumerate(fittable):
        data = fitted[j]
        if not np.isfinite(sol.objective[j]):
            results[i] = FitError(f"{data.source}: no start reached a finite objective for the {form.name} law")
            continue
        best = polish(objectives[j], sol.theta[j], lower=lower[j], batch_converged=bool(sol.converged[j]))
        fit = LawFit(
            form=form,
            theta=best.theta,
            objective=best.objective,
            converged=best.converged,
            message=best.message,
            n_points=data.n_points,
            n_starts=len(grid),
            best_start=sol.start[j],
            candidates=sol.candidates[j],
            options=options,
            ranges={k: (float(v.min()), float(v.max())) for k, v in data.variables().items()},
            columns=dict(data.columns),
            boot_thetas=None if boots is None else boots[j],
            holdout=reports[j],
            boot_distinct=None if boots is None else distinct_resamples(data),
        )
        verdict = judge_fit(
            form,
            fit.theta,
            data,
            lower=lower[j],
            converged=fit.converged,
            message=fit.message,
            holdout=fit.holdout,
            intervals=fit.intervals(),
        )
        results[i] = dataclasses.replace(fit, verdict=verdict)
    return results


def _objective(data: LawData, form: Form, options: FitOptions) -> LogLossObjective:
    return LogLossObjective(
        form.designs(data.variables()),
        np.log(data.loss),
        loss=options.loss,
        delta=options.delta,
        reduction=options.reduction,
    )


def _bootstrap(
    datasets, objective: LogLossObjective, form: Form, sol, lower: np.ndarray, n: int, seeds: Sequence[int]
) -> list[np.ndarray]:
    """Refit ``n`` run-level resamples of every dataset; per dataset [n, P], NaN rows where a
    resample is not identifiable. Each refit starts from the dataset's optimum and the other
    local optima found for it."""
    n_starts = max(len(c) for c in sol.candidates)
    which, weights, starts, where = [], [], [], []
    for j, data in enumerate(datasets):
        w = resample_weights(data, n, np.random.default_rng(seeds[j]))
        valid = np.flatnonzero(identifiable_rows(data, form, w))
        cands = np.vstack([sol.theta[j], sol.candidates[j][1:]])
        cands = np.vstack([cands, np.repeat(cands[:1], n_starts - len(cands), axis=0)])
        which += [j] * len(valid)
        weights += list(w[valid])
        starts += [cands] * len(valid)
        where.append(valid)
    out = [np.full((n, form.n_params), np.nan) for _ in datasets]
    if not which:
        return out
    problems = ProblemSet(objective, which, weights)
    # After BOOT_KEEP_BEST_AFTER iterations only each resample's best start goes on; a
    # resample still improving after BOOT_MAX_ITER (E drifting to 0) is used as it stands.
    sol_b = minimize_problems(
        problems,
        np.array(starts),
        lower=lower[which],
        prune=False,
        n_candidates=1,
        max_iter=BOOT_MAX_ITER,
        dominated=(BOOT_KEEP_BEST_AFTER, 1.0),
    )
    theta = np.where(np.isfinite(sol_b.objective)[:, None], sol_b.theta, np.nan)
    split = np.cumsum([len(v) for v in where])[:-1]
    for j, (rows, part) in enumerate(zip(where, np.split(theta, split))):
        out[j][rows] = part
    return out


def _holdout_problems(datasets: Sequence[LawData], form: Form):
    """Leave-largest-out refits: per dataset, train weights without the points at the
    largest value of the form's main axis (tokens for data and ratio laws, params for
    model and Chinchilla laws). Returns (reports, dataset of each refit, train weights)."""
    axis = form.holdout_axis
    reports, which, weights = [], [], []
    for j, data in enumerate(datasets):
        values = getattr(data, axis)
        test = np.isclose(values, values.max(), rtol=1e-9, atol=0.0)
        reports.append(
            {"axis": axis, "value": float(values.max()), "n_train": int((~test).sum()), "n_test": int(test.sum())}
        )
        try:
            check_identifiable(data.select(~test), form)
        except FitError as err:
            reports[j]["error"] = str(err)
            continue
        which.append(j)
        weights.append((~test).astype(float))
    return reports, which, weights


def _holdout_errors(held: LawData, form: Form, theta: np.ndarray) -> dict:
    """How well a refit without the held-out points predicts them."""
    pred = form.predict(theta, held.variables())
    rel = np.abs(pred - held.loss) / held.loss
    return {
        "rel_error_mean": float(rel.mean()),
        "rel_error_max": float(rel.max()),
        "predicted_mean": float(pred.mean()),
        "observed_mean": float(held.loss.mean()),
    }


def lower_bounds(data: LawData, form: Form) -> np.ndarray:
    """Lower bounds on theta: exponents >= EXPONENT_FLOOR (alpha, beta > 0 is part of the
    fit, not only a check) and e >= log(E_FLOOR * min loss) for forms with a constant E.

    Without the E bound a law whose data show no floor drifts towards E = 0 for ever; with
    it the fit stops where E no longer matters. It is far below any fitted E of real data.
    """
    lower = exponent_lower_bounds(form)
    if "e" in form.theta_names and "e_r1" not in form.theta_names:
        lower[form.theta_names.index("e")] = np.log(E_FLOOR * float(data.loss.min()))
    return lower
