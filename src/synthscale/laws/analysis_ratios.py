"""The best-ratio rows of analysis.json: per synthetic kind, model and trained budget.

The grid's best trained ratio (r = 0 is natural) with a bootstrap interval and, for a
kind with 3 or more ratios, r* of its ratio law L(D, r) (``ratio_fits``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthscale.errors import SynthscaleError
from synthscale.laws.analysis_fits import derived_seed, failed_fields, fit_fields
from synthscale.laws.fit import FitError, LawData, LawFit, fit_laws
from synthscale.laws.ratio import best_ratio_from_grid, judged_best_ratio
from synthscale.laws.results import NATURAL


def ratio_rows(rows: pd.DataFrame, bootstrap: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Ratio-law fits and best-ratio entries for every synthetic kind and model."""
    cases = []  # (kind, model, frame with natural as ratio 0)
    for kind in sorted(k for k in rows["kind"].astype(str).unique() if k != NATURAL):
        for model in sorted(rows["model"].astype(str).unique()):
            frame = rows[(rows["model"].astype(str) == model) & ((rows["kind"] == kind) | (rows["recipe"] == NATURAL))]
            frame = frame.assign(ratio=np.where(frame["recipe"] == NATURAL, 0.0, frame["ratio"]))
            if frame["ratio"].nunique() >= 2:
                cases.append((kind, model, frame))
    law_cases = [c for c in cases if c[2]["ratio"].nunique() >= 3]
    laws = _fit_ratio_laws(law_cases, bootstrap, seed)
    law_entries, best_entries = [], []
    for kind, model, frame in cases:
        entry, law = laws.get((kind, model), (None, None))
        if entry is not None:
            law_entries.append(entry)
        for tokens, cells in frame.groupby("tokens", sort=True):
            if cells["ratio"].nunique() < 2:
                continue
            per_run = cells.groupby(["ratio", "run_id"], as_index=False)["loss"].mean()
            r_grid, ci_grid = best_ratio_from_grid(
                per_run, bootstrap=bootstrap, seed=derived_seed(seed, kind, model, float(tokens))
            )
            best = {
                "kind": kind,
                "model": model,
                "tokens": float(tokens),
                "ratio_grid": r_grid,
                "ci_grid": ci_grid,
                "ci_grid_note": None if ci_grid is not None else (
                    "no bootstrap was run (analysis.bootstrap = 0)" if bootstrap <= 0
                    else "one run per ratio at this budget: train 2+ seeds per condition for an interval"),
                "ratios": sorted(map(float, cells["ratio"].unique())),
                "ratio_fit": None,
                "ci": None,
            }
            if entry is not None:
                best.update(_fitted_ratio(law, entry, float(tokens), r_grid, best["ratios"]))
            best_entries.append(best)
    return law_entries, best_entries


def _fitted_ratio(law: LawFit | None, entry: dict, tokens: float, grid_best: float, ratios: list[float]) -> dict:
    """r* of a kind's ratio law at one budget, by the rules of ``ratio.judged_best_ratio``
    (only from an ok or weak law, a bound at or beyond the trained ratios, agreement with
    the grid's best ratio)."""
    if law is None:
        return {"ratio_fit": None, "ci": None, "ratio_fit_note": "no law: " + entry.get("error", "no ratio law")}
    judged = judged_best_ratio(law, tokens, ratios, grid_best, reasons=list(law.verdict.blocking))
    return {
        "ratio_fit": judged["value"],
        "ratio_fit_bound": judged["bound"],
        "ci": judged["ci"],
        "ratio_fit_verdict": judged["verdict"],
        "agrees_with_grid": judged["agrees"],
        "ratio_fit_note": judged["note"],
    }


def _fit_ratio_laws(cases, bootstrap: int, seed: int) -> dict:
    """(kind, model) -> (entry, LawFit | None) for the ratio law L(D, r) of each case."""
    out, datasets, keys = {}, [], []
    for kind, model, frame in cases:
        label = f"kind {kind} model {model}"
        entry = {
            "kind": kind,
            "model": model,
            "form": "ratio_data",
            "n_points": int(len(frame)),
            "ratios": sorted(map(float, frame["ratio"].unique())),
        }
        out[(kind, model)] = (entry, None)
        try:
            datasets.append(
                LawData.from_frame(
                    frame, loss="loss", tokens="tokens", ratio="ratio", groups="run_id", strata="recipe", source=label
                )
            )
            keys.append((kind, model, label))
        except SynthscaleError as err:
            entry.update(failed_fields(err))
    results = fit_laws(
        datasets, "ratio_data", bootstrap=bootstrap, seeds=[derived_seed(seed, k[2]) for k in keys], holdout="largest"
    )
    for (kind, model, _), result in zip(keys, results):
        entry = out[(kind, model)][0]
        if isinstance(result, FitError):
            entry.update(failed_fields(result))
            continue
        entry.update(fit_fields(result), tokens_min=result.ranges["tokens"][0], tokens_max=result.ranges["tokens"][1])
        out[(kind, model)] = (entry, result)
    return out
