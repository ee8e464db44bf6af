"""analysis.json from a results table: data laws, speedups over natural, best ratios.

For the metric rows (domain ``mean`` by default) of the results table:

- ``fits``: the data law L(D) = E + B D^-beta per (recipe, generator, model), with
  bootstrap intervals (runs resampled with replacement) and a leave-largest-budget-out
  check. A recipe whose law cannot be fitted gets an entry with ``error`` instead. With
  3 or more model sizes, also the model law L(N) = E + A N^-alpha (form ``model``, N the
  non-embedding parameters) per (recipe, generator) at each budget the sizes share, with
  a leave-largest-size-out check.
- ``speedups``: every non-natural recipe over ``natural`` of the same model, at each
  trained budget and on a grid up to twice the largest, token and compute-inclusive.
- ``best_ratio``: per synthetic kind, model and trained budget, the trained ratio with the
  lowest mean loss (r = 0 is natural) and, with >= 3 ratios, r* of the ratio law.
- ``ratio_fits``: the ratio laws L(D, r) behind ``ratio_fit``.

The pieces live beside this module: analysis_fits (the laws), analysis_speedups and
analysis_ratios (the rows read off them); results (the table's columns and metric rows).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from synthscale._io import write_json
from synthscale.errors import InputError
from synthscale.laws._json import json_ready
from synthscale.laws.analysis_fits import fit_model_laws, fit_recipes, recipe_groups
from synthscale.laws.analysis_ratios import ratio_rows
from synthscale.laws.analysis_speedups import speedup_rows, train_flops_per_token
from synthscale.laws.fit import CI_LEVEL, FitOptions
from synthscale.laws.results import metric_rows
from synthscale.laws.speedup import MAX_EXTRAPOLATION, SPEEDUP_RANGE
from synthscale.progress import progress_bar


def analyze_results(
    results_df: pd.DataFrame,
    *,
    metric_domain: str = "mean",
    bootstrap: int = 200,
    seed: int = 0,
    generator_flops: float | Mapping[str, float] | None = None,
    max_extrapolation: float = MAX_EXTRAPOLATION,
    progress: bool = False,
) -> dict:
    """The analysis.json structure (docs/contracts.md) for a results table.

    ``generator_flops`` is the generator's FLOPs per synthetic token: one number for all,
    or a mapping looked up by recipe, then generator name, then kind (see
    ``speedup.generator_flops_per_token``). Without it the compute-inclusive speedup is null.
    ``max_extrapolation``: how far beyond natural's trained budgets its law is read before a
    speedup is reported as a bound (speedup.bounded_speedup).
    """
    if not max_extrapolation >= 1:
        raise InputError(f"max_extrapolation={max_extrapolation!r}: expected a factor >= 1", path="analysis")
    rows, warnings = metric_rows(results_df, metric_domain)
    with progress_bar("fitting laws", 3, enabled=progress) as advance:
        fit_entries, fits, verdicts = fit_recipes(recipe_groups(rows), bootstrap, seed)
        fit_entries += fit_model_laws(rows, bootstrap, seed)
        advance(description="recipe laws")
        ratio_entries, best_entries = ratio_rows(rows, bootstrap, seed)
        advance(description="ratio laws")
        speedups = speedup_rows(fits, verdicts, rows, generator_flops, max_extrapolation)
        advance(description="speedups")
    analysis = {
        "metric": metric_domain,
        "conventions": _conventions(rows, bootstrap, seed, max_extrapolation),
        "fits": fit_entries,
        "speedups": speedups,
        "best_ratio": best_entries,
        "ratio_fits": ratio_entries,
        "warnings": warnings,
    }
    return json_ready(analysis)


def write_analysis(path, analysis: dict) -> None:
    """Write ``analysis`` as canonical JSON, atomically (non-finite numbers become null)."""
    write_json(path, json_ready(analysis))


def _conventions(rows: pd.DataFrame, bootstrap: int, seed: int, max_extrapolation: float) -> dict:
    flops = {model: train_flops_per_token(frame) for model, frame in rows.groupby("model")}
    return {
        "law": "L(D) = E + B * D^-beta per recipe and model; with 3+ model sizes, L(N) = E + A * N^-alpha per "
        "recipe at each budget the sizes share (N: non-embedding parameters); ratio law L(D, r) per kind and model",
        "fit": {
            "loss": "huber",
            "delta": FitOptions().delta,
            "reduction": "sum",
            "residual": "log(L_pred) - log(L)",
            "optimizer": "L-BFGS-B from the Hoffmann et al. (2022) start grid",
        },
        "bootstrap": {"n": bootstrap, "unit": "run_id", "within": "recipe", "level": CI_LEVEL, "seed": seed},
        "params": "params_nonembedding (N without embeddings) where a law uses N",
        "flops": {m: None if f is None else {"per_token": f[0], "convention": f[1]} for m, f in flops.items()},
        "speedup": "D_nat(L_X(D)) / D; extrapolated: D outside the recipe's trained budgets; "
        "natural_extrapolated: D_nat outside natural's trained budgets",
        "verdicts": "every law is ok, weak or unusable by the rules of docs/laws.md (Verdicts); speedups, "
        "best ratios and findings use only ok and weak laws",
        "max_extrapolation": max_extrapolation,
        "bounds": f"a speedup whose natural-token figure lies beyond {max_extrapolation:g}x natural's trained "
        f"budgets, or outside [{SPEEDUP_RANGE[0]:g}, {SPEEDUP_RANGE[1]:g}], is reported as a bound",
        "compute_speedup": "speedup * f / (f + g * r * generated_fraction), f = training FLOPs/token, "
        "g = generator FLOPs per synthetic token",
    }
