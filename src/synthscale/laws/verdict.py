"""Whether the data support a fitted law: a verdict (ok, weak, unusable) with its reasons.

A fit can converge and still say nothing: a loss that does not fall with tokens gives an
exponent pinned at zero or a "law" that is a step; four points cannot pin three
parameters; a floor E the data never approach sits at its bound. ``judge_fit`` applies
the rules below (docs/laws.md, "Verdicts") to a fitted law and its data. Downstream
(speedups, best ratios, findings, plots) uses only ok and weak laws.

unusable (the law must not be used):
- the loss does not fall along the law's axis (tokens for data and ratio laws, params for
  model laws, both for Chinchilla) beyond noise: the least-squares slope of log loss on
  the log axis (other variables as covariates) is not negative with t <= -TREND_T, or the
  loss at the largest axis value is above the lowest loss at a smaller one by more than
  RISE_SIGMAS noise standard errors;
- an exponent below EXPONENT_MIN_USABLE (pinned near its lower bound EXPONENT_FLOOR: the
  fit found no decrease) or above EXPONENT_CEILING (a step, not a power law).

weak (usable, marked):
- a parameter at a bound of the optimisation (E at its floor: the data show no floor);
- a direction the data cannot determine: the Gauss-Newton curvature at the optimum
  (columns scaled to unit norm) has an eigenvalue below SINGULAR_EIGEN, or a bootstrap
  interval spans more than CI_DECADES_MAX decades (E, A, B) or EXPONENT_CI_DECADES_MAX
  decades (exponents);
- fewer than POINTS_PER_PARAM points per parameter;
- a leave-largest-out relative error above HOLDOUT_MAX (default 2%), or no such check;
- the optimiser did not report convergence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthscale.laws.data import LawData
from synthscale.laws.forms import Form

OK, WEAK, UNUSABLE = "ok", "weak", "unusable"
VERDICTS = (OK, WEAK, UNUSABLE)

EXPONENT_FLOOR = 1e-3  # exponents are bounded below by this in the fit (alpha, beta > 0)
EXPONENT_MIN_USABLE = 0.02  # below: the law is flat over any practical range (unusable)
EXPONENT_CEILING = 2.0  # above: a step, not a power law (the top of the Hoffmann start grid)
TREND_T = 2.0  # the slope of log loss on log axis must have t <= -TREND_T
RISE_SIGMAS = 2.0  # a rise at the top of the axis beyond this many noise standard errors
NOISE_REL = 0.005  # noise of a mean loss when replicates do not show more (0.5% of the loss)
SINGULAR_EIGEN = 1e-7  # smallest eigenvalue of the scaled curvature below this: undetermined
CI_DECADES_MAX = 3.0  # a 95% interval of E, A or B wider than this many decades
EXPONENT_CI_DECADES_MAX = 1.0  # a 95% interval of an exponent wider than a factor of 10
POINTS_PER_PARAM = 2.0
HOLDOUT_MAX = 0.02  # leave-largest-out mean relative error

_EXPONENTS = ("alpha", "beta")
_SCALES = {"a": "A", "b": "B", "e": "E"}
_AXES = {"data": ("tokens",), "model": ("params",), "chinchilla": ("params", "tokens"),
         "ratio_data": ("tokens",), "ratio": ("tokens",)}
_AXIS_WORD = {"tokens": "tokens D", "params": "parameters N"}
_AXIS_SYMBOL = {"tokens": "D", "params": "N"}


@dataclass(frozen=True)
class Verdict:
    """A fit's verdict and the reasons behind it (the unusable ones first)."""

    verdict: str
    reasons: tuple[str, ...]
    blocking: tuple[str, ...] = ()  # the reasons that make it unusable (the first of ``reasons``)

    @property
    def usable(self) -> bool:
        """True for ok and weak laws: these may feed speedups, best ratios and findings."""
        return self.verdict != UNUSABLE

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reasons": list(self.reasons)}

    def summary(self) -> str:
        """``weak: reason; reason`` on one line."""
        return self.verdict + (f": {'; '.join(self.reasons)}" if self.reasons else "")


def unusable(reason: str) -> Verdict:
    """The verdict of a law that could not be fitted at all."""
    return Verdict(UNUSABLE, (reason,), (reason,))


def exponent_lower_bounds(form: Form) -> np.ndarray:
    """Lower bounds that keep every exponent of ``form`` positive (-inf elsewhere)."""
    return np.array([EXPONENT_FLOOR if n in _EXPONENTS else -np.inf for n in form.theta_names])


def judge_fit(
    form: Form,
    theta: np.ndarray,
    data: LawData,
    *,
    lower: np.ndarray,
    converged: bool,
    message: str = "",
    holdout: dict | None = None,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> Verdict:
    """Apply the verdict rules (module docstring) to a fitted law."""
    bad, weak = [], []
    bad += _trend_reasons(form, data)
    natural = dict(zip(form.natural_names(), form.natural(theta)))
    for name in _EXPONENTS:
        if name not in natural or (form.tied and name == "beta"):
            continue
        value = float(natural[name])
        if value < EXPONENT_MIN_USABLE:
            bad.append(f"{name} = {value:.3g} is pinned near 0 (below {EXPONENT_MIN_USABLE:g}): no power-law decrease")
        elif value > EXPONENT_CEILING:
            bad.append(f"{name} = {value:.3g} is above the ceiling {EXPONENT_CEILING:g}: a step, not a power law")
    for i, name in enumerate(form.theta_names):
        if np.isfinite(lower[i]) and name not in _EXPONENTS and theta[i] <= lower[i] + 1e-6:
            label = _SCALES.get(name, name)
            weak.append(f"{label} at its lower bound ({np.exp(lower[i]):.3g}): the data show no floor")
    weak += _curvature_reasons(form, theta, data)
    weak += _interval_reasons(intervals)
    if data.n_points < POINTS_PER_PARAM * form.n_params:
        weak.append(f"{data.n_points} points for {form.n_params} parameters "
                    f"(fewer than {POINTS_PER_PARAM:g} per parameter)")
    weak += _holdout_reasons(holdout)
    if not converged:
        weak.append(f"the optimiser did not converge ({message.strip()})")
    if bad:
        return Verdict(UNUSABLE, tuple(bad + weak), tuple(bad))
    return Verdict(WEAK if weak else OK, tuple(weak))


def _trend_reasons(form: Form, data: LawData) -> list[str]:
    """The loss must fall along each axis of the law beyond noise."""
    log_loss = np.log(data.loss)
    axes = _AXES.get(form.name, ())
    covariates = []
    for v in form.variables:
        values = getattr(data, v)
        if v in axes:
            covariates.append(np.log(values))
        elif v == "ratio":
            covariates += [values, values**2]
        else:
            covariates.append(np.log(values))
    x = np.column_stack([np.ones(data.n_points), *covariates])
    x, keep = _independent_columns(x)
    coef, dof, se = _ols(x, log_loss)
    reasons = []
    column = 1
    for v in form.variables:
        width = 2 if v == "ratio" else 1
        if v in axes and keep[column]:
            j = int(np.sum(keep[:column]))
            slope = coef[j]
            t = slope / se[j] if se is not None and se[j] > 0 else (-np.inf if slope < 0 else np.inf)
            if not (slope < 0 and t <= -TREND_T):
                word = "rises" if slope >= 0 else "does not fall beyond noise"
                t_text = f", t = {t:.2g}" if np.isfinite(t) else ""
                reasons.append(f"loss {word} with {_AXIS_WORD[v]} (slope of log loss on log {_AXIS_SYMBOL[v]} "
                               f"{slope:.3g}{t_text})")
            elif form.name != "chinchilla":  # a two-axis law is judged by its partial slopes
                reasons += _rise_at_top(data, v)
        column += width
    return reasons


def _rise_at_top(data: LawData, axis: str) -> list[str]:
    """Loss at the largest axis value above the lowest loss at a smaller value, beyond noise
    (within each group of points that share the other variables)."""
    values = getattr(data, axis)
    present = [v for v in ("params", "tokens", "ratio") if v != axis and getattr(data, v) is not None]
    others = [getattr(data, v) for v in present]
    names = [{"params": "N", "tokens": "D", "ratio": "r"}[v] for v in present]
    keys = list(zip(*others)) if others else [()] * data.n_points
    for key in sorted(set(keys)):
        rows = np.array([k == key for k in keys])
        levels = np.unique(values[rows])
        if len(levels) < 2:
            continue
        means, noise = [], []
        for level in levels:
            loss = data.loss[rows & (values == level)]
            spread = float(loss.std(ddof=1) / np.sqrt(len(loss))) if len(loss) > 1 else 0.0
            means.append(float(loss.mean()))
            noise.append(max(spread, NOISE_REL * float(loss.mean())))
        lowest = int(np.argmin(means[:-1]))
        rise = means[-1] - means[lowest]
        if rise > RISE_SIGMAS * np.hypot(noise[-1], noise[lowest]):
            where = "" if not key else " (at " + ", ".join(f"{n} = {v:.3g}" for n, v in zip(names, key)) + ")"
            return [f"loss rises at the top of {_AXIS_WORD[axis]}{where}: {means[-1]:.4g} at {levels[-1]:.3g} "
                    f"vs {means[lowest]:.4g} at {levels[lowest]:.3g}"]
    return []


def _curvature_reasons(form: Form, theta: np.ndarray, data: LawData) -> list[str]:
    """A direction of theta the data do not pin down: the scaled Gauss-Newton matrix
    J^T J (J = d log L_pred / d theta) has a near-zero eigenvalue."""
    designs = form.designs(data.variables())  # [K, n, P]
    u = np.einsum("knp,p->kn", designs, theta)
    weights = np.exp(u - u.max(axis=0))
    weights /= weights.sum(axis=0)
    jac = np.einsum("kn,knp->np", weights, designs)
    norms = np.linalg.norm(jac, axis=0)
    if (norms <= 1e-300).any():
        names = [_SCALES.get(n, n) for n, z in zip(form.theta_names, norms <= 1e-300) if z]
        return [f"the data do not determine {', '.join(names)} (no effect on the fit)"]
    scaled = jac / norms
    eigval, eigvec = np.linalg.eigh(scaled.T @ scaled)
    if eigval[0] >= SINGULAR_EIGEN * eigval[-1]:
        return []
    direction = eigvec[:, 0]
    top = np.argsort(-np.abs(direction))[:2]
    names = " and ".join(_SCALES.get(form.theta_names[i], form.theta_names[i]) for i in sorted(top))
    return [f"the data do not determine {names} separately (near-singular curvature, "
            f"eigenvalue ratio {max(eigval[0], 0.0) / eigval[-1]:.1e})"]


def _interval_reasons(intervals: dict[str, tuple[float, float]] | None) -> list[str]:
    reasons = []
    for name, (lo, hi) in (intervals or {}).items():
        limit = EXPONENT_CI_DECADES_MAX if name in _EXPONENTS else CI_DECADES_MAX
        if name not in _EXPONENTS and name not in _SCALES.values():
            continue  # r-coefficients are signed: no decades to count
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0:
            reasons.append(f"the 95% interval of {name} is unbounded")
            continue
        decades = float(np.log10(hi / lo))
        if decades > limit:
            reasons.append(f"the 95% interval of {name} spans {decades:.1f} decades (limit {limit:g})")
    return reasons


def _holdout_reasons(holdout: dict | None) -> list[str]:
    if holdout is None:
        return []
    if "rel_error_mean" not in holdout:
        return ["no leave-largest-out check (too few points without the largest)"]
    error = float(holdout["rel_error_mean"])
    if error > HOLDOUT_MAX:
        return [f"leave-largest-out error {error:.1%} > {HOLDOUT_MAX:.0%}"]
    return []


def _independent_columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop columns that are constant or linearly dependent on earlier ones."""
    keep = np.zeros(x.shape[1], dtype=bool)
    chosen: list[int] = []
    for j in range(x.shape[1]):
        trial = x[:, chosen + [j]]
        if np.linalg.matrix_rank(trial, tol=1e-9 * max(1.0, np.abs(trial).max())) == len(chosen) + 1:
            chosen.append(j)
            keep[j] = True
    return x[:, chosen], keep


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Least-squares coefficients, residual degrees of freedom and standard errors
    (None when there are no degrees of freedom left)."""
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    dof = len(y) - x.shape[1]
    if dof <= 0:
        return coef, dof, None
    resid = y - x @ coef
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.pinv(x.T @ x)
    return coef, dof, np.sqrt(np.maximum(np.diag(cov), 0.0))
