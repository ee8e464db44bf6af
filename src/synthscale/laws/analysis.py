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
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthscale._io import write_json
from synthscale.errors import InputError, SynthscaleError
from synthscale.laws._json import json_ready
from synthscale.laws.fit import CI_LEVEL, FitError, FitOptions, LawData, LawFit, fit_laws
from synthscale.laws.ratio import best_ratio_from_grid, judged_best_ratio
from synthscale.laws.speedup import MAX_EXTRAPOLATION, SPEEDUP_RANGE, bounded_speedup, compute_factor, speedup_at_tokens
from synthscale.laws.verdict import OK, UNUSABLE, WEAK, unusable

REQUIRED_COLUMNS = ("recipe", "kind", "ratio", "model", "tokens", "domain", "loss", "run_id")
NATURAL = "natural"
GRID_POINTS = 12  # log-spaced budgets from the smallest trained to EXTRAPOLATE x the largest
EXTRAPOLATE = 2.0
MIN_MODEL_SIZES = 3  # sizes a model law L(N) = E + A N^-alpha (three parameters) needs at one budget


@dataclass(frozen=True)
class RecipeKey:
    recipe: str
    kind: str
    ratio: float
    model: str
    generator: str | None

    def label(self) -> str:
        gen = f" ({self.generator})" if self.generator else ""
        return f"recipe {self.recipe}{gen} model {self.model}"

    def fields(self) -> dict:
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
    rows, warnings = _metric_rows(results_df, metric_domain)
    with _progress(progress, 3) as advance:
        fit_entries, fits, verdicts = _fit_recipes(_recipe_groups(rows), bootstrap, seed)
        fit_entries += _fit_model_laws(rows, bootstrap, seed)
        advance("recipe laws")
        ratio_entries, best_entries = _best_ratios(rows, bootstrap, seed)
        advance("ratio laws")
        speedups = _all_speedups(fits, verdicts, rows, generator_flops, max_extrapolation)
        advance("speedups")
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


def _metric_rows(df: pd.DataFrame, metric_domain: str) -> tuple[pd.DataFrame, list[str]]:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"results table lacks column(s) {', '.join(missing)}", path="results")
    rows = df[df["domain"].astype(str) == metric_domain].copy()
    if rows.empty:
        domains = ", ".join(sorted(df["domain"].astype(str).unique())[:10])
        raise InputError(f"no rows with domain '{metric_domain}' (domains: {domains})", path="results")
    rows["loss"] = pd.to_numeric(rows["loss"], errors="coerce")
    rows["tokens"] = pd.to_numeric(rows["tokens"], errors="coerce")
    rows["ratio"] = pd.to_numeric(rows["ratio"], errors="coerce").fillna(0.0)
    bad = ~(np.isfinite(rows["loss"]) & (rows["loss"] > 0) & np.isfinite(rows["tokens"]) & (rows["tokens"] > 0))
    warnings = [
        f"dropped run {r.run_id} ({r.recipe}, tokens={r.tokens}): loss {r.loss!r} is not a positive finite number"
        for r in rows[bad].itertuples()
    ]
    rows = rows[~bad]
    if "generator" not in rows.columns:
        rows["generator"] = None
    rows["generator"] = rows["generator"].map(lambda g: None if g is None or pd.isna(g) or str(g) == "" else str(g))
    return rows, warnings


def _recipe_groups(rows: pd.DataFrame) -> list[tuple[RecipeKey, pd.DataFrame]]:
    out = []
    keyed = rows.assign(_gen=rows["generator"].fillna(""))
    for (recipe, gen, model), frame in keyed.groupby(["recipe", "_gen", "model"], sort=True):
        kind = NATURAL if recipe == NATURAL else str(frame["kind"].iloc[0])
        ratio = 0.0 if recipe == NATURAL else float(frame["ratio"].iloc[0])
        out.append((RecipeKey(str(recipe), kind, ratio, str(model), gen or None), frame.drop(columns="_gen")))
    return out


def _fit_recipes(groups, bootstrap: int, seed: int) -> tuple[list[dict], dict[RecipeKey, LawFit], dict]:
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
            base.update(_failed(err))
            verdicts[key] = unusable(_short_error(err))
    results = fit_laws(
        datasets, "data", bootstrap=bootstrap, seeds=[derived_seed(seed, k.label()) for k, _ in keys], holdout="largest"
    )
    fits = {}
    for (key, entry), result in zip(keys, results):
        if isinstance(result, FitError):
            entry.update(_failed(result))
            verdicts[key] = unusable(_short_error(result))
            continue
        fits[key] = result
        verdicts[key] = result.verdict
        entry.update(_fit_fields(result))
    return entries, fits, verdicts


def _params_column(rows: pd.DataFrame) -> str | None:
    """The column N is read from: non-embedding parameters (the paper's N), else total."""
    for col in ("params_nonembedding", "params_total"):
        if col in rows.columns and pd.to_numeric(rows[col], errors="coerce").gt(0).all():
            return col
    return None


def _fit_model_laws(rows: pd.DataFrame, bootstrap: int, seed: int) -> list[dict]:
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
            entry.update(_failed(err))
    results = fit_laws(datasets, "model", bootstrap=bootstrap, seeds=[derived_seed(seed, k) for k, _ in keys],
                       holdout="largest")
    for (_, entry), result in zip(keys, results):
        if isinstance(result, FitError):
            entry.update(_failed(result))
        else:
            entry.update(_fit_fields(result))
    return entries


def _fit_fields(fit: LawFit) -> dict:
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
        "holdout": fit.holdout,
    }


def ci_note(fit: LawFit) -> str | None:
    """Why a fit has no bootstrap intervals, and what would give them (None when it has them)."""
    if fit.boot_thetas is None:
        return "no bootstrap was run (analysis.bootstrap = 0); set it to 200 or more for intervals"
    if fit.valid_boot_thetas() is not None:
        return None
    return (f"only {fit.n_boot_valid} of {len(fit.boot_thetas)} resamples of the runs could be refitted "
            f"(a resample that drops a budget the law needs cannot be fitted); more budgets or 2+ seeds "
            f"per condition give an interval")


def _failed(err: Exception) -> dict:
    return {
        "verdict": UNUSABLE,
        "reasons": [_short_error(err)],
        "params": None,
        "objective": None,
        "converged": False,
        "error": str(err),
    }


def _short_error(err: Exception) -> str:
    """An error as a reason: without the 'recipe X model Y: ' source prefix."""
    text = str(err)
    return text.split(": ", 1)[1] if text.startswith("recipe ") and ": " in text else text


def _all_speedups(
    fits: dict[RecipeKey, LawFit], verdicts: dict, rows: pd.DataFrame, generator_flops, max_extrapolation: float
) -> list[dict]:
    """Speedup rows of every synthetic recipe over natural of the same model.

    Only ok and weak laws give numbers; a recipe whose own or natural's law is unusable
    gets one row per trained budget with ``status: "no law"`` and the reason."""
    naturals = {k.model: k for k in verdicts if k.recipe == NATURAL}
    out = []
    for key in sorted(verdicts, key=lambda k: (k.model, k.recipe, k.generator or "")):
        if key.recipe == NATURAL or key.model not in naturals:
            continue
        frame = rows[(rows["recipe"] == key.recipe) & (rows["model"] == key.model)]
        if key.generator is not None:
            frame = frame[frame["generator"] == key.generator]
        trained = np.unique(frame["tokens"].to_numpy(dtype=float))
        nat_key = naturals[key.model]
        problems = [f"{who}: {'; '.join(verdicts[k].blocking)}" for who, k in (("this recipe", key), ("natural", nat_key))
                    if not verdicts[k].usable]
        if problems:
            for tokens in trained:
                out.append({**key.fields(), "tokens": float(tokens), "trained": True, "loss": None,
                            "status": "no law", "note": "no law: " + " | ".join(problems), "speedup": None,
                            "bound": None, "ci": None, "ci_bounds": None, "speedup_compute": None,
                            "ci_compute": None, "law_verdict": UNUSABLE})
            continue
        fit, natural = fits[key], fits[nat_key]
        law_verdict = WEAK if WEAK in (verdicts[key].verdict, verdicts[nat_key].verdict) else OK
        flops = _train_flops_per_token(rows[rows["model"] == key.model])
        gen = _lookup_generator_flops(generator_flops, key)
        corpus = _synthetic_corpus_tokens(frame, key.ratio)
        for tokens in _budget_grid(trained):
            est = speedup_at_tokens(fit, natural, tokens)
            fields = bounded_speedup(est, tokens, natural.ranges["tokens"], max_extrapolation)
            row = {
                **key.fields(),
                "tokens": tokens,
                "trained": bool(np.isclose(trained, tokens, rtol=1e-9).any()),
                "loss": float(fit.predict(tokens=tokens)[0]),
                "status": "bound" if fields["bound"] is not None else ("ok" if fields["speedup"] is not None
                                                                       else "no value"),
                **fields,
                "law_verdict": law_verdict,
                "ci_note": ci_note(fit) or ci_note(natural),
            }
            factor = None
            if flops is not None and gen is not None:
                generated = 1.0 if corpus is None or key.ratio == 0 else min(1.0, corpus / (key.ratio * tokens))
                factor = compute_factor(ratio=key.ratio, train_flops_per_token=flops[0],
                                        generator_flops_per_token=gen, generated_fraction=generated)
            row["speedup_compute"] = None if factor is None or row["speedup"] is None else row["speedup"] * factor
            row["bound_compute"] = (None if factor is None or row["bound"] is None
                                    else {"op": row["bound"]["op"], "value": row["bound"]["value"] * factor})
            row["ci_compute"] = (None if factor is None or row["ci"] is None
                                 else [None if v is None else v * factor for v in row["ci"]])
            row["flops"] = None if flops is None else flops[1]
            out.append(row)
    return out


def _budget_grid(trained: np.ndarray) -> list[float]:
    grid = np.geomspace(trained.min(), EXTRAPOLATE * trained.max(), GRID_POINTS)
    budgets = np.unique(np.concatenate([trained, grid]))
    keep = [budgets[0]]
    for b in budgets[1:]:
        if not np.isclose(b, keep[-1], rtol=1e-6):
            keep.append(b)
    return [float(b) for b in keep]


def _best_ratios(rows: pd.DataFrame, bootstrap: int, seed: int) -> tuple[list[dict], list[dict]]:
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
            entry.update(_failed(err))
    results = fit_laws(
        datasets, "ratio_data", bootstrap=bootstrap, seeds=[derived_seed(seed, k[2]) for k in keys], holdout="largest"
    )
    for (kind, model, _), result in zip(keys, results):
        entry = out[(kind, model)][0]
        if isinstance(result, FitError):
            entry.update(_failed(result))
            continue
        entry.update(_fit_fields(result), tokens_min=result.ranges["tokens"][0], tokens_max=result.ranges["tokens"][1])
        out[(kind, model)] = (entry, result)
    return out


def _train_flops_per_token(rows: pd.DataFrame) -> tuple[float, str] | None:
    """Training FLOPs per token of a model: exact from train_flops, else 6 * params_total."""
    if "train_flops" in rows.columns:
        per_token = pd.to_numeric(rows["train_flops"], errors="coerce") / rows["tokens"]
        per_token = per_token[np.isfinite(per_token) & (per_token > 0)]
        if len(per_token):
            return float(per_token.median()), "exact"
    if "params_total" in rows.columns:
        n = pd.to_numeric(rows["params_total"], errors="coerce")
        n = n[np.isfinite(n) & (n > 0)]
        if len(n):
            return 6.0 * float(n.median()), "6ND"
    return None


def _lookup_generator_flops(generator_flops, key: RecipeKey) -> float | None:
    if generator_flops is None:
        return None
    if not isinstance(generator_flops, Mapping):
        return float(generator_flops)
    for name in (key.recipe, key.generator, key.kind):
        if name is not None and name in generator_flops:
            return float(generator_flops[name])
    return None


def _synthetic_corpus_tokens(frame: pd.DataFrame, ratio: float) -> float | None:
    """Size of the synthetic corpus in tokens, from the epochs it was repeated for."""
    if ratio <= 0 or "epochs_synthetic" not in frame.columns:
        return None
    epochs = pd.to_numeric(frame["epochs_synthetic"], errors="coerce")
    sizes = ratio * frame["tokens"] / epochs
    sizes = sizes[np.isfinite(sizes) & (sizes > 0) & (epochs >= 1)]
    return float(sizes.median()) if len(sizes) else None


def _conventions(rows: pd.DataFrame, bootstrap: int, seed: int, max_extrapolation: float) -> dict:
    flops = {model: _train_flops_per_token(frame) for model, frame in rows.groupby("model")}
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


@contextlib.contextmanager
def _progress(enabled: bool, total: int):
    if not enabled:
        yield lambda label: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("fitting laws", total=total)
        yield lambda label: bar.update(task, advance=1, description=label)
