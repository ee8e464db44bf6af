"""The best synthetic ratio r*(N, D): from a fitted ratio law, and from a grid of trained ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthscale.errors import ConfigError
from synthscale.laws.fit import CI_LEVEL, LawFit
from synthscale.laws.forms import Form
from synthscale.laws.speedup import Estimate, percentile_interval

_GRID = np.linspace(0.0, 1.0, 1001)
RATIO_EDGE = 0.01  # r* within this fraction of the trained ratio range (at least 1e-3) of its edge is a bound


def argmin_ratio(form: Form, thetas: np.ndarray, tokens: float, params: float | None = None) -> np.ndarray:
    """r in [0, 1] minimising a ratio law at (params, tokens), per row of ``thetas`` [S, P].

    A dense grid (step 1e-3) refined by the vertex of the parabola through the grid
    minimum and its neighbours.
    """
    if "ratio" not in form.variables:
        raise ConfigError(f"the {form.name} law has no ratio variable")
    x = {"tokens": np.full(_GRID.size, float(tokens)), "ratio": _GRID}
    if "params" in form.variables:
        if params is None:
            raise ConfigError(f"the {form.name} law needs params to give r*")
        x["params"] = np.full(_GRID.size, float(params))
    log_loss = np.atleast_2d(form.predict_log(np.atleast_2d(thetas), x))  # [S, grid]
    i = np.argmin(log_loss, axis=1)
    inner = (i > 0) & (i < _GRID.size - 1)
    j = np.clip(i, 1, _GRID.size - 2)
    rows = np.arange(len(i))
    left, mid, right = log_loss[rows, j - 1], log_loss[rows, j], log_loss[rows, j + 1]
    curv = left - 2 * mid + right
    step = _GRID[1] - _GRID[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curv > 0, 0.5 * (left - right) / curv, 0.0)
    return np.where(inner, _GRID[j] + np.clip(shift, -1, 1) * step, _GRID[i])


def best_ratio_from_law(fit: LawFit, tokens: float, params: float | None = None) -> Estimate:
    """r*(N, D) of a fitted ratio law with its bootstrap interval."""
    value = float(argmin_ratio(fit.form, fit.theta, tokens, params)[0])
    boot = fit.valid_boot_thetas()
    ci = None if boot is None else percentile_interval(argmin_ratio(fit.form, boot, tokens, params))
    lo, hi = fit.ranges["tokens"]
    return Estimate(value=value, ci=ci, extrapolated=not (lo <= tokens <= hi))


def best_ratio_from_grid(
    cells: pd.DataFrame, *, bootstrap: int = 0, seed: int = 0
) -> tuple[float, tuple[float, float] | None]:
    """The trained ratio with the lowest mean loss, and a bootstrap interval over runs.

    ``cells`` has one row per run at one budget, with columns ``ratio``, ``run_id`` and
    ``loss``. Each replicate redraws the runs of every ratio with replacement. No interval
    when no ratio has more than one run (nothing to resample).
    """
    means = cells.groupby("ratio")["loss"].mean()
    best = float(means.idxmin())
    groups = [g["loss"].to_numpy(dtype=float) for _, g in cells.groupby("ratio")]
    if bootstrap <= 0 or max(len(g) for g in groups) < 2:
        return best, None
    rng = np.random.default_rng(seed)
    ratios = np.asarray(means.index, dtype=float)
    boot_means = np.column_stack([g[rng.integers(0, len(g), size=(bootstrap, len(g)))].mean(axis=1) for g in groups])
    picks = ratios[np.argmin(boot_means, axis=1)]
    lo, hi = np.quantile(picks, [(1 - CI_LEVEL) / 2, (1 + CI_LEVEL) / 2], method="nearest")
    return best, (float(lo), float(hi))


def judged_best_ratio(
    law: LawFit,
    tokens: float,
    trained_ratios,
    grid_best: float | None,
    params: float | None = None,
    reasons: list[str] | None = None,
) -> dict:
    """r* of a ratio law at (params, tokens), within what the data support (JSON fields).

    Only an ok or weak law gives r* (an unusable one: ``value`` null and a ``no law``
    note). An r* at the edge of the trained ratios (within RATIO_EDGE of their range) or
    beyond it is a ``bound`` ({"op": "<=" | ">=", "value": edge}) with ``value`` null: the
    law's minimum lies there or further out. Interval ends are clipped to the trained
    range (``ci_clipped``). ``agrees``: the trained ratio nearest r* (or, for a bound, the
    edge) is the grid's best ratio, or the grid's best lies inside r*'s interval.
    """
    verdict = law.verdict.verdict if law.verdict is not None else "ok"
    if verdict == "unusable":
        why = "; ".join(reasons if reasons is not None else law.verdict.reasons) or "unusable law"
        return {"value": None, "bound": None, "ci": None, "agrees": None, "verdict": verdict, "note": f"no law: {why}"}
    ratios = np.unique(np.asarray(trained_ratios, dtype=float))
    lo, hi = float(ratios.min()), float(ratios.max())
    tol = max(1e-3, RATIO_EDGE * (hi - lo))
    est = best_ratio_from_law(law, tokens, params)
    bound = None
    if est.value <= lo + tol:
        bound = {"op": "<=", "value": lo}
    elif est.value >= hi - tol:
        bound = {"op": ">=", "value": hi}
    ci = None if bound or est.ci is None else [float(c) for c in np.clip(est.ci, lo, hi)]
    agrees = None
    if grid_best is not None:
        if bound:
            agrees = bool(np.isclose(grid_best, bound["value"]))
        else:
            nearest = ratios[np.argmin(np.abs(ratios - est.value))]
            agrees = bool(np.isclose(nearest, grid_best) or (ci is not None and ci[0] <= grid_best <= ci[1]))
    return {
        "value": None if bound else est.value,
        "bound": bound,
        "ci": ci,
        "ci_clipped": ci is not None and ci != [float(c) for c in est.ci],
        "extrapolated": est.extrapolated,
        "verdict": verdict,
        "agrees": agrees,
        "note": "the law's minimum is at the edge of the trained ratios or beyond" if bound else None,
    }
