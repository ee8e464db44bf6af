"""The law fits of analysis.json: the data law per recipe and model, the model law per budget.

Each fit entry carries its parameters with intervals, holdout check and verdict (or the
error of a law that could not be fitted); the helpers here also shape the entries of the
ratio laws (analysis_ratios).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthscale.errors import SynthscaleError
from synthscale.laws.fit import FitError, LawData, LawFit, fit_laws
from synthscale.laws.results import NATURAL
from synthscale.laws.verdict import UNUSABLE, unusable

MIN_MODEL_SIZES = 3  # sizes a model law L(N) = E + A N^-alpha (three parameters) needs at one budget


@dataclass(frozen=True)
class RecipeKey:
    """One fitted condition: a recipe (kind and ratio) by generator, on one model size."""

    recipe: str
    kind: str
    ratio: float
    model: str
    generator: str | None

    def label(self) -> str:
        """How errors and seeds name this condition: 'recipe R (generator) model M'."""
        gen = f" ({self.generator})" if self.generator else ""
        return f"recipe {self.recipe}{gen} model {self.model}"

    def fields(self) -> dict:
        """The condition as analysis.json entry fields."""
        return {
            "recipe": self.recipe,
            "kind": self.kind,
            "ratio": self.ratio,
            "model": self.model,
            "generator": self.generator,
        }


def derived_seed(seed: int, *parts) -> int:
    """A seed for one sub-analysis, derived from the study seed and its name (stable)."""
    crc = zlib.crc32(repr(parts).encode("utf-8"))
    return int(np.random.SeedSequence([seed, crc]).generate_state(1)[0])


def recipe_groups(rows: pd.DataFrame) -> list[tuple[RecipeKey, pd.DataFrame]]:
    """The rows of each (recipe, generator, model), keyed; natural is kind natural at ratio 0."""
    out = []
    keyed = rows.assign(_gen=rows["generator"].fillna(""))
    for (recipe, gen, model), frame in keyed.groupby(["recipe", "_gen", "model"], sort=True):
        kind = NATURAL if recipe == NATURAL else str(frame["kind"].iloc[0])
        ratio = 0.0 if recipe == NATURAL else float(frame["ratio"].iloc[0])
        out.append((RecipeKey(str(recipe), kind, ratio, str(model), gen or None), frame.drop(columns="_gen")))
    return out


def fit_recipes(groups, bootstrap: int, seed: int) -> tuple[list[dict], dict[RecipeKey, LawFit], dict]:
    """Data-law fit entries for every (recipe, generator, model), fitted as one batch.

    Returns the entries, the fitted laws, and every key's Verdict (unusable with the
    error for a law that could not be fitted)."""
    entries, datasets, keys, verdicts = [], [], [], {}
    for key, frame in groups:
        base = {
            **key.fields(),
            "form": "data",
            "n_points": int(len(frame)),
            "n_runs": int(frame["run_id"].nunique()),
            "tokens_min": float(frame["tokens"].min()),
            "tokens_max": float(frame["tokens"].max()),
        }
        entries.append(base)
        try:
            datasets.append(
                LawData.from_frame(frame, loss="loss", tokens="tokens", groups="run_id", source=key.label())
            )
            keys.append((key, base))
        except SynthscaleError as err:
            base.update(failed_fields(err))
            verdicts[key] = unusable(short_error(err))
    results = fit_laws(
        datasets, "data", bootstrap=bootstrap, seeds=[derived_seed(seed, k.label()) for k, _ in keys], holdout="largest"
    )
    fits = {}
    for (key, entry), result in zip(keys, results):
        if isinstance(result, FitError):
            entry.update(failed_fields(result))
            verdicts[key] = unusable(short_error(result))
            continue
        fits[key] = result
        verdicts[key] = result.verdict
        entry.update(fit_fields(result))
    return entries, fits, verdicts


def _params_column(rows: pd.DataFrame) -> str | None:
    """The column N is read from: non-embedding parameters (the paper's N), else total."""
    for col in ("params_nonembedding", "params_total"):
        if col in rows.columns and pd.to_numeric(rows[col], errors="coerce").gt(0).all():
            return col
    return None


def fit_model_laws(rows: pd.DataFrame, bootstrap: int, seed: int) -> list[dict]:
    """Model-law entries L(N) = E + A N^-alpha: one per (recipe, generator) and budget that
    at least MIN_MODEL_SIZES model sizes trained (the same token count), fitted as one batch.

    Each entry names the sizes (``models``, smallest first) and the budget (``tokens``);
    its ``model`` field is ``"all"``. None when the table has fewer sizes."""
    col = _params_column(rows)
    if col is None or rows["model"].nunique() < MIN_MODEL_SIZES:
        return []
    keyed = rows.assign(_gen=rows["generator"].fillna(""), _n=pd.to_numeric(rows[col], errors="coerce"))
    entries, datasets, keys = [], [], []
    for (recipe, gen, tokens), frame in keyed.groupby(["recipe", "_gen", "tokens"], sort=True):
        if frame["model"].nunique() < MIN_MODEL_SIZES:
            continue
        sizes = frame.groupby("model")["_n"].first().sort_values()
        key = RecipeKey(str(recipe), NATURAL if recipe == NATURAL else str(frame["kind"].iloc[0]),
                        0.0 if recipe == NATURAL else float(frame["ratio"].iloc[0]), "all", gen or None)
        label = f"recipe {recipe}{f' ({gen})' if gen else ''} at D={float(tokens):g}"
        entry = {
            **key.fields(),
            "form": "model",
            "tokens": float(tokens),
            "models": [str(m) for m in sizes.index],
            "n_points": int(len(frame)),
            "n_runs": int(frame["run_id"].nunique()),
            "params_min": float(sizes.min()),
            "params_max": float(sizes.max()),
            "params_column": col,
        }
        entries.append(entry)
        try:
            datasets.append(LawData.from_frame(frame, loss="loss", params=col, groups="run_id", source=label))
            keys.append((label, entry))
        except SynthscaleError as err:
            entry.update(failed_fields(err))
    results = fit_laws(datasets, "model", bootstrap=bootstrap, seeds=[derived_seed(seed, k) for k, _ in keys],
                       holdout="largest")
    for (_, entry), result in zip(keys, results):
        if isinstance(result, FitError):
            entry.update(failed_fields(result))
        else:
            entry.update(fit_fields(result))
    return entries


def fit_fields(fit: LawFit) -> dict:
    """The entry fields of a fitted law: verdict, parameters with intervals, holdout check."""
    summary = fit.to_dict()
    return {
        "verdict": summary["verdict"],
        "reasons": summary["reasons"],
        "params": summary["params"],
        "objective": fit.objective,
        "converged": fit.converged,
        "message": fit.message,
        "bootstrap": summary["bootstrap"],
        "ci_note": ci_note(fit),
        "ci_caveat": ci_caveat(fit),
        "holdout": fit.holdout,
    }


def ci_note(fit: LawFit) -> str | None:
    """Why a fit has no bootstrap intervals, and what would give them (None when it has them)."""
    if fit.boot_thetas is None:
        return "no bootstrap was run (analysis.bootstrap = 0); set it to 200 or more for intervals"
    if fit.valid_boot_thetas() is not None:
        return None
    if fit.boot_degenerate:
        return ("every resample of the runs is the data itself (one run reads every budget: one seed of a "
                "WSD study), so there is no interval; 2+ seeds per condition give one")
    return (f"only {fit.n_boot_valid} of {len(fit.boot_thetas)} resamples of the runs could be refitted "
            f"(a resample that drops a budget the law needs cannot be fitted); more budgets or 2+ seeds "
            f"per condition give an interval")


def ci_caveat(fit: LawFit) -> str | None:
    """What an interval from too few distinct resamples of the runs is (None when the intervals are real)."""
    if not fit.coarse_intervals:
        return None
    return (f"the runs allow only {fit.boot_distinct} distinct resamples (2-3 runs per condition), so an "
            f"interval is the spread of that many refits (with 2 seeds: each seed alone and both), not a 95% "
            f"interval; 4+ seeds per condition give one")


def failed_fields(err: Exception) -> dict:
    """The entry fields of a law that could not be fitted: unusable, with the error."""
    return {
        "verdict": UNUSABLE,
        "reasons": [short_error(err)],
        "params": None,
        "objective": None,
        "converged": False,
        "error": str(err),
    }


def short_error(err: Exception) -> str:
    """An error as a reason: without the 'recipe X model Y: ' source prefix."""
    text = str(err)
    return text.split(": ", 1)[1] if text.startswith("recipe ") and ": " in text else text
