"""Tables simulated from known laws: for checking that fits recover what they should."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from synthscale.errors import ConfigError
from synthscale.laws.forms import Form, get_form
from synthscale.laws.results import NATURAL


def simulate_points(
    form: str | Form,
    params: Mapping[str, float],
    variables: Mapping[str, np.ndarray],
    *,
    noise: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """Losses from a law with natural parameters ``params`` (E, A, B, alpha, beta, ...)
    at ``variables``, times log-normal noise of standard deviation ``noise``."""
    form = form if isinstance(form, Form) else get_form(form)
    theta = []
    for name in form.theta_names:
        natural = {"a": "A", "b": "B", "e": "E"}.get(name, name)
        if natural not in params:
            raise ConfigError(f"simulate: the {form.name} law needs parameter '{natural}'")
        value = float(params[natural])
        theta.append(np.log(value) if natural in ("A", "B", "E") else value)
    x = {k: np.asarray(v, dtype=float) for k, v in variables.items()}
    rng = np.random.default_rng(seed)
    clean = form.predict(np.array(theta), x)
    return clean * np.exp(rng.normal(0.0, noise, size=clean.shape))


def simulate_results(
    recipes: Mapping[str, Mapping[str, float]],
    budgets: Sequence[float],
    *,
    seeds: int = 1,
    noise: float = 0.01,
    seed: int = 0,
    model: str = "toy",
    params_total: int = 1_000_000,
    params_nonembedding: int = 800_000,
    domains: Sequence[str] = ("web", "wiki"),
) -> pd.DataFrame:
    """A results table (docs/contracts.md columns) whose ``mean`` losses follow data laws.

    ``recipes`` maps a recipe name (``natural`` or ``KIND@R``) to {E, B, beta}. Each
    (recipe, budget, seed) is one run; per-domain losses scatter around the mean.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for recipe, law in recipes.items():
        kind, ratio = (NATURAL, 0.0) if recipe == NATURAL else _parse_recipe(recipe)
        for budget in budgets:
            for s in range(seeds):
                run_id = f"{recipe}-{model}-{int(budget)}-s{s}"
                mean = (law["E"] + law["B"] * float(budget) ** -law["beta"]) * np.exp(rng.normal(0.0, noise))
                offsets = rng.normal(0.0, 0.05, size=len(domains))
                offsets -= offsets.mean()
                per_domain = {d: mean + o for d, o in zip(domains, offsets)}
                for domain, loss in [*per_domain.items(), ("mean", mean)]:
                    rows.append(
                        {
                            "study": "simulated",
                            "run_id": run_id,
                            "recipe": recipe,
                            "kind": kind,
                            "ratio": ratio,
                            "generator": None if kind == NATURAL else "sim-gen",
                            "model": model,
                            "params_total": params_total,
                            "params_nonembedding": params_nonembedding,
                            "tokens": float(budget),
                            "train_flops": 6.0 * params_total * float(budget),
                            "domain": domain,
                            "loss": float(loss),
                            "bpb": float(loss) / np.log(2) / 4.0,
                            "seed": s,
                            "epochs_natural": 1.0,
                            "epochs_synthetic": 0.0 if kind == NATURAL else 1.0,
                        }
                    )
    return pd.DataFrame(rows)


def _parse_recipe(recipe: str) -> tuple[str, float]:
    kind, sep, ratio = recipe.partition("@")
    try:
        value = float(ratio)
    except ValueError:
        value = -1.0
    if not sep or not kind or not 0.0 < value <= 1.0:
        raise ConfigError(f"recipe '{recipe}': expected 'natural' or 'KIND@R' with 0 < R <= 1")
    return kind, value
