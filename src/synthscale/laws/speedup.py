"""Speedups read off fitted laws, with bootstrap intervals.

A law that depends on tokens D gives, at fixed model size and ratio, the data law
``L(D) = E + B D^-beta`` (forms.Form.data_law). Natural's inverse,
``D_nat(L) = (B / (L - E))^(1 / beta)``, is the number of natural tokens needed to reach
loss L; it is infinite when L <= E (natural never gets there).

- Token speedup of recipe X at budget D: ``D_nat(L_X(D)) / D``.
- Token speedup at loss L: ``D_nat(L) / D_X(L)``.
- Compute-inclusive speedup: natural's training FLOPs over X's training FLOPs plus the
  generator's FLOPs for the synthetic tokens X used; with the same model (same training
  FLOPs per token f) and g generator FLOPs per synthetic token generated, it is
  ``speedup * f / (f + g * r * generated_fraction)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthscale.errors import ConfigError
from synthscale.laws._json import finite_or_none
from synthscale.laws.fit import CI_LEVEL, LawFit

MAX_EXTRAPOLATION = 4.0  # natural's law is read at most this factor beyond its trained budgets
SPEEDUP_RANGE = (0.01, 100.0)  # a speedup outside this range is printed as a bound


@dataclass(frozen=True)
class Estimate:
    """A derived number: point value (inf allowed), percentile interval, extrapolation flags."""

    value: float
    ci: tuple[float, float] | None
    extrapolated: bool = False
    natural_extrapolated: bool = False
    tokens_natural: float | None = None

    @property
    def infinite(self) -> bool:
        return bool(np.isinf(self.value))

    def to_dict(self) -> dict:
        """JSON-ready: an infinite value is null with ``infinite: true``."""
        return {
            "value": finite_or_none(self.value),
            "infinite": self.infinite,
            "ci": None if self.ci is None else [finite_or_none(v) for v in self.ci],
            "extrapolated": self.extrapolated,
            "natural_extrapolated": self.natural_extrapolated,
            "tokens_natural": finite_or_none(self.tokens_natural),
        }


def data_law_loss(E, B, beta, tokens) -> np.ndarray:
    """L(D) = E + B * D^-beta (broadcasting)."""
    return np.asarray(E) + np.asarray(B) * np.asarray(tokens, dtype=float) ** -np.asarray(beta)


def data_law_tokens(E, B, beta, loss) -> np.ndarray:
    """Tokens the law needs to reach ``loss``: (B / (L - E))^(1/beta); inf when L <= E.

    NaN where the law does not decrease (beta <= 0).
    """
    E, B, beta, loss = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (E, B, beta, loss)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gap = loss - E
        log_tokens = (np.log(B) - np.log(np.where(gap > 0, gap, 1.0))) / beta
        out = np.where(gap > 0, np.exp(log_tokens), np.inf)
    return np.where(beta > 0, out, np.nan)


def speedup_at_tokens(
    fit: LawFit, natural: LawFit, tokens: float, *, params: float | None = None, ratio: float | None = None
) -> Estimate:
    """Token speedup of ``fit``'s recipe over natural at budget ``tokens``.

    ``params``/``ratio`` fix the other variables when a law depends on them (``ratio``
    applies to ``fit``; natural is evaluated at ratio 0).
    """

    def speedups(theta_x, theta_nat):
        loss_x = data_law_loss(*fit.form.data_law(theta_x, params, ratio), tokens)
        d_nat = data_law_tokens(*natural.form.data_law(theta_nat, params, _nat_ratio(natural)), loss_x)
        return d_nat / tokens, d_nat

    value, d_nat = speedups(fit.theta, natural.theta)
    ci = _paired_interval(fit, natural, lambda x, n: speedups(x, n)[0])
    return Estimate(
        value=float(value),
        ci=ci,
        extrapolated=not _inside(tokens, fit.ranges["tokens"]),
        natural_extrapolated=not _inside(float(d_nat), natural.ranges["tokens"]),
        tokens_natural=float(d_nat),
    )


def speedup_at_loss(
    fit: LawFit, natural: LawFit, loss: float, *, params: float | None = None, ratio: float | None = None
) -> Estimate:
    """Token speedup at a target loss: natural's tokens to reach it over the recipe's.

    Infinite when natural cannot reach the loss; NaN when the recipe cannot.
    """

    def speedups(theta_x, theta_nat):
        d_x = data_law_tokens(*fit.form.data_law(theta_x, params, ratio), loss)
        d_nat = data_law_tokens(*natural.form.data_law(theta_nat, params, _nat_ratio(natural)), loss)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(np.isinf(d_x), np.nan, d_nat / d_x), d_x, d_nat

    value, d_x, d_nat = speedups(fit.theta, natural.theta)
    ci = _paired_interval(fit, natural, lambda x, n: speedups(x, n)[0])
    return Estimate(
        value=float(value),
        ci=ci,
        extrapolated=not _inside(float(d_x), fit.ranges["tokens"]),
        natural_extrapolated=not _inside(float(d_nat), natural.ranges["tokens"]),
        tokens_natural=float(d_nat),
    )


def bounded_speedup(
    estimate: Estimate, tokens: float, natural_range: tuple[float, float], max_extrapolation: float = MAX_EXTRAPOLATION
) -> dict:
    """The JSON fields of a token speedup at budget ``tokens``, within what the data support.

    The natural-token figure D_nat is trusted within ``max_extrapolation`` of natural's
    trained budgets ``natural_range``, and the speedup within SPEEDUP_RANGE. Beyond either,
    the value is reported as a bound: ``speedup`` null and ``bound`` {"op": ">" | "<",
    "value": x}, with a ``note`` saying why; interval endpoints are clipped to the same
    limits and marked in ``ci_bounds`` (">" / "<" / null per endpoint). A recipe whose loss
    is below natural's fitted E (natural never gets there) is a ">" bound.
    """
    low = max(SPEEDUP_RANGE[0], natural_range[0] / max_extrapolation / tokens)
    high = min(SPEEDUP_RANGE[1], natural_range[1] * max_extrapolation / tokens)
    value = float(estimate.value)
    bound, note = None, None
    if estimate.infinite:
        bound, note = {"op": ">", "value": high}, "natural never reaches this loss under its law (below its E)"
    elif not np.isfinite(value):
        note = "the law gives no natural-token figure here"
    elif value > high:
        bound = {"op": ">", "value": high}
        note = (f"natural would need more than {max_extrapolation:g}x its largest trained budget"
                if high < SPEEDUP_RANGE[1] else f"beyond {SPEEDUP_RANGE[1]:g}x")
    elif value < low:
        bound = {"op": "<", "value": low}
        note = (f"natural reaches this loss below 1/{max_extrapolation:g} of its smallest trained budget"
                if low > SPEEDUP_RANGE[0] else f"below {SPEEDUP_RANGE[0]:g}x")
    ci, ci_bounds = None, None
    if estimate.ci is not None:
        ci, ci_bounds = [], []
        for end in estimate.ci:
            end = float(end)
            if np.isnan(end):
                ci.append(None)
                ci_bounds.append(None)
            elif end > high:
                ci.append(high)
                ci_bounds.append(">")
            elif end < low:
                ci.append(low)
                ci_bounds.append("<")
            else:
                ci.append(end)
                ci_bounds.append(None)
    return {
        "speedup": None if bound is not None or not np.isfinite(value) else value,
        "bound": bound,
        "note": note,
        "infinite": estimate.infinite,
        "ci": ci,
        "ci_bounds": ci_bounds,
        "limits": [low, high],
        "extrapolated": estimate.extrapolated,
        "natural_extrapolated": estimate.natural_extrapolated,
        "tokens_natural": finite_or_none(estimate.tokens_natural) if bound is None else None,
    }


def compute_factor(
    *, ratio: float, train_flops_per_token: float, generator_flops_per_token: float, generated_fraction: float = 1.0
) -> float:
    """The factor f / (f + g r x) that turns a token speedup into a compute-inclusive one."""
    if train_flops_per_token <= 0 or generator_flops_per_token < 0:
        raise ConfigError("FLOPs per token must be positive (generator FLOPs non-negative)")
    return train_flops_per_token / (
        train_flops_per_token + generator_flops_per_token * ratio * min(1.0, generated_fraction)
    )


def compute_inclusive(
    estimate: Estimate,
    *,
    ratio: float,
    train_flops_per_token: float,
    generator_flops_per_token: float,
    generated_fraction: float = 1.0,
) -> Estimate:
    """Scale a token speedup to count the generator's FLOPs for the synthetic tokens.

    ``generated_fraction`` is the share of the synthetic tokens trained on that had to be
    generated (1 / epochs when the synthetic corpus repeats, else 1).
    """
    factor = compute_factor(
        ratio=ratio,
        train_flops_per_token=train_flops_per_token,
        generator_flops_per_token=generator_flops_per_token,
        generated_fraction=generated_fraction,
    )
    scale = lambda v: v * factor  # noqa: E731
    return Estimate(
        value=scale(estimate.value),
        ci=None if estimate.ci is None else (scale(estimate.ci[0]), scale(estimate.ci[1])),
        extrapolated=estimate.extrapolated,
        natural_extrapolated=estimate.natural_extrapolated,
        tokens_natural=estimate.tokens_natural,
    )


def generator_flops_per_token(
    generator_params: float, prompt_tokens: float = 0.0, completion_tokens: float = 1.0
) -> float:
    """Forward FLOPs per generated token: 2 * N_gen per processed token, prompt amortised.

    ``prompt_tokens``/``completion_tokens`` are totals from the generation metadata (the
    rephrased document is in the prompt). Attention FLOPs are left out.
    """
    if generator_params <= 0 or completion_tokens <= 0 or prompt_tokens < 0:
        raise ConfigError("generator params and completion tokens must be positive")
    return 2.0 * generator_params * (prompt_tokens + completion_tokens) / completion_tokens


def percentile_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """Percentile interval of bootstrap values (NaN dropped, +-inf kept by nearest rank)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    q = [(1 - level) / 2, (1 + level) / 2]
    method = "linear" if np.isfinite(values).all() else "nearest"
    lo, hi = np.quantile(values, q, method=method)
    return float(lo), float(hi)


def _paired_interval(fit: LawFit, natural: LawFit, stat) -> tuple[float, float] | None:
    """Interval of ``stat(theta_x, theta_nat)`` over paired bootstrap replicates."""
    bx, bn = fit.valid_boot_thetas(), natural.valid_boot_thetas()
    if bx is None or bn is None:
        return None
    n = min(len(bx), len(bn))
    return percentile_interval(stat(bx[:n], bn[:n]))


def _nat_ratio(natural: LawFit) -> float | None:
    return 0.0 if "ratio" in natural.form.variables else None


def _inside(value: float, bounds: tuple[float, float], rtol: float = 1e-9) -> bool:
    lo, hi = bounds
    return bool(np.isfinite(value) and lo * (1 - rtol) <= value <= hi * (1 + rtol))
